"""The vocabulary of the report's sections, shared by :mod:`advx.report.story` (which
collects them) and :mod:`advx.report.chapters` (one builder per demo chapter).

A :class:`Section` is a sentence of what a chapter or run shows, tables with human column
names (:class:`Table`), figures as PNG bytes (:class:`Picture`) and, for text, diffs with
the edits highlighted (:class:`Diff`). :func:`chapter` registers a chapter's builder;
:func:`builders` lists them; :class:`Contents` is what a run directory holds (filled by
:func:`advx.report.html.collect`). Nothing here runs a model or an attack, or reads a run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


# ------------------------------------------------------------------ what a run directory holds
@dataclass
class EvalSection:
    """One evaluation run, ready for the templates."""

    name: str
    path: Path
    run: dict[str, Any]
    report: Any  # advx.evaluate.summary.EvalReport
    curve: str | None = None  # data URI
    galleries: list[dict[str, str]] = field(default_factory=list)

    @property
    def eps(self) -> list[float]:
        """The run's eps values."""
        return list(self.report.eps)


@dataclass
class TransferSection:
    """One transfer matrix, ready for the templates."""

    name: str
    path: Path
    result: Any  # advx.evaluate.transfer.TransferResult
    heatmap: str | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Contents:
    """What a run directory holds."""

    root: Path
    evals: list[EvalSection] = field(default_factory=list)
    transfers: list[TransferSection] = field(default_factory=list)
    figures: list[dict[str, str]] = field(default_factory=list)  # title, path, uri
    problems: list[str] = field(default_factory=list)
    attack_runs: list[Path] = field(default_factory=list)
    story: list[Any] = field(default_factory=list)  # advx.report.story.Section, in order
    attacks: list[Any] = field(default_factory=list)  # Section per `advx attack` run
    used: set[Path] = field(default_factory=set)  # figure files a section shows

    @property
    def loose_figures(self) -> list[dict[str, str]]:
        """PNG files no section shows."""
        return [f for f in self.figures if Path(f["path"]).resolve() not in self.used]

    @property
    def standalone_transfers(self) -> list[TransferSection]:
        """Transfer matrices no chapter of the story presents."""
        shown = {id(s.transfer) for s in self.story if s.transfer is not None}
        return [t for t in self.transfers if id(t) not in shown]


# ------------------------------------------------------------------------- the sections
@dataclass
class Table:
    """A table with human column names; cells are display strings."""

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Picture:
    """A figure: PNG bytes, a title and the alternative text a reader without the image
    gets."""

    title: str
    png: bytes
    alt: str
    caption: str = ""
    file: str | None = None  # set when written next to the summary

    @property
    def uri(self) -> str:
        """``data:`` URI for a self-contained page."""
        from advx.report.plots import png_base64

        return png_base64(self.png)


@dataclass
class Diff:
    """A text attack's example: HTML with ``<del>``/``<ins>`` and a Markdown twin."""

    html: str
    markdown: str


@dataclass
class Section:
    """One section of the report (a chapter of the story, or one attack run)."""

    key: str
    title: str
    lede: str
    tables: list[Table] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)
    diffs: list[Diff] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    transfer: Any = None  # the TransferSection this chapter presents, if any

    def to_json(self) -> dict[str, Any]:
        """The machine-readable twin (pictures by title and file only)."""
        return {
            "key": self.key,
            "title": self.title,
            "lede": self.lede,
            "tables": [
                {"caption": t.caption, "columns": t.columns, "rows": t.rows} for t in self.tables
            ],
            "figures": [{"title": p.title, "file": p.file} for p in self.pictures],
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Options:
    """How sections are drawn: ``amplification`` of perturbations in example figures
    (None: the largest factor that does not clip)."""

    amplification: float | None = None


def pct(v: Any, digits: int = 1) -> str:
    """``0.953`` -> ``"95.3%"``; None/NaN -> ``"—"``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{100 * float(v):.{digits}f}%"


def num(v: Any, fmt: str = ".3g") -> str:
    """A number for a table cell; None/NaN -> ``"—"``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return format(v, fmt) if isinstance(v, float) else str(v)


def norm_name(norm: str | None) -> str:
    """``"linf"`` -> ``"L∞"`` (and L2, L1, L0) for headings and sentences."""
    return {"linf": "L∞", "l2": "L2", "l1": "L1", "l0": "L0"}.get(str(norm), str(norm))


def picture_file(root: Path, name: str, title: str, alt: str, used: set[Path]) -> Picture | None:
    """The PNG ``root/name`` a chapter saved, as a :class:`Picture` (None if absent);
    marks it in ``used`` so the page does not show it again among loose figures."""
    p = root / name
    if not p.is_file():
        return None
    used.add(p.resolve())
    return Picture(title, p.read_bytes(), alt)


# ------------------------------------------------------------------------- the chapters
Builder = Callable[[dict[str, Any], Path, "Contents", Options, set[Path]], Section | None]
_BUILDERS: dict[str, Builder] = {}


def chapter(key: str) -> Callable[[Builder], Builder]:
    """Register a builder of chapter ``key``'s section (see :mod:`advx.report.chapters`)."""

    def deco(fn: Builder) -> Builder:
        _BUILDERS[key] = fn
        return fn

    return deco


def builders() -> dict[str, Builder]:
    """Chapter key -> its registered builder (those of :mod:`advx.report.chapters` once
    that module is imported)."""
    return dict(_BUILDERS)
