"""The report's chapters: one section per chapter of the story, built from saved files.

A demo chapter saves what its section needs with :func:`save_chapter` (``OUT/chNN.json``:
its numbers, and the per-example values its figures are drawn from: distances, queries,
detector scores, per-epoch accuracies). :func:`story_sections` turns the chapter files
found under a run directory into :class:`Section` objects — a sentence of what the
chapter shows, tables with human column names, pictures (PNG bytes) and, for text, diffs
with the edits highlighted — in the story's order. The HTML page and the Markdown summary
render the same sections. Nothing here runs a model or an attack.

:func:`attack_section` does the same for a plain ``advx attack`` run directory.

Example:
    >>> save_chapter("runs/demo", "ch01", {"dataset": "digits", ...})  # doctest: +SKIP
    >>> [s.title for s in story_sections(collect("runs/demo"))]       # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advx.errors import CheckpointError

if TYPE_CHECKING:
    from advx.report.html import Contents

log = logging.getLogger(__name__)

FORMAT = "advx.demo-chapter/1"


# ------------------------------------------------------------------------ saved records
def _plain(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, tuples -> lists, paths -> strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "tolist"):  # tensors and arrays
        return _plain(value.tolist())
    return str(value)


def save_chapter(out: str | os.PathLike[str], chapter: str, data: Mapping[str, Any]) -> Path:
    """Write a demo chapter's results for the report: ``out/<chapter>.json``.

    Args:
        out: the demo's output directory.
        chapter: the chapter's key, e.g. ``"ch05"`` (its module name's prefix).
        data: JSON-friendly numbers and per-example lists (tensors are converted; NaN
            and inf become null). Keep everything the chapter's figures are drawn from:
            the report never recomputes.

    Returns the written path (written atomically).
    """
    from advx.evaluate.records import write_json

    path = Path(out) / f"{chapter}.json"
    write_json(path, {"format": FORMAT, "chapter": chapter, **_plain(dict(data))})
    return path


def load_chapters(root: Path) -> dict[str, dict[str, Any]]:
    """Chapter key -> record of every ``chNN.json`` saved directly under ``root``;
    damaged files are skipped with a warning."""
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(root.glob("ch[0-9][0-9].json")):
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            log.warning("skipping %s: %s", p, e)
            continue
        if isinstance(doc, dict) and doc.get("format") == FORMAT:
            out[str(doc.get("chapter", p.stem))] = doc
    return out


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
            ],  # fmt: skip
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


def _norm(norm: str | None) -> str:
    return {"linf": "L∞", "l2": "L2", "l1": "L1", "l0": "L0"}.get(str(norm), str(norm))


def _picture_file(root: Path, name: str, title: str, alt: str, used: set[Path]) -> Picture | None:
    p = root / name
    if not p.is_file():
        return None
    used.add(p.resolve())
    return Picture(title, p.read_bytes(), alt)


# ------------------------------------------------------------------------- the chapters
Builder = Callable[[dict[str, Any], Path, "Contents", Options, set[Path]], Section | None]
_BUILDERS: dict[str, Builder] = {}


def _chapter(key: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        _BUILDERS[key] = fn
        return fn

    return deco


@_chapter("ch01")
def _train(rec: dict[str, Any], root: Path, c: Contents, o: Options, used: set[Path]) -> Section:
    arch, data = rec.get("arch", "model"), rec.get("dataset", "?")
    s = Section(
        "ch01",
        "1. Train a classifier",
        f"A {arch} trained on {data} for {rec.get('epochs', '?')} epochs classifies "
        f"{pct(rec.get('test_accuracy'))} of the {rec.get('n_test', '?')} test images "
        "correctly. It is the model the next chapters attack.",
    )
    s.tables.append(
        Table(
            ["Model", "Data", "Epochs", "Parameters", "Test images", "Test accuracy"],
            [
                [
                    str(arch),
                    str(data),
                    num(rec.get("epochs")),
                    f"{rec.get('parameters', 0):,}",
                    num(rec.get("n_test")),
                    pct(rec.get("test_accuracy"), 2),
                ]
            ],  # fmt: skip
        )
    )
    pic = _picture_file(root, "ch01_grid.png", "Test images and what the model predicts",
                        "a grid of test images, each titled with the predicted class", used)  # fmt: skip
    if pic:
        pic.caption = "Titles give the prediction; a mistake shows the true class after ✗."
        s.pictures.append(pic)
    return s


def _photo_lede(photo: Mapping[str, Any]) -> str:
    """The ImageNet moment in a sentence, from chapter 2's ``photo`` record."""
    rows = photo.get("photos") or {}
    if not rows:
        return ""
    name, first = next(iter(rows.items()))
    target = photo.get("target", "ostrich")
    need = first.get("eps_needed_255")
    moment = (
        f"A real photo ({name}) that {photo.get('model', 'the ImageNet model')} calls "
        f'"{first.get("top1", "?")}" becomes "{target}" after a change of at most '
        f"{num(need)}/255 per pixel. "
        if need is not None
        else f'The {name} photo did not reach "{target}" within the chapter\'s budgets. '
    )
    if photo.get("n_photos", 0) > 1:
        moment += (
            f"{photo.get('reached_at_4_255', '?')} of {photo['n_photos']} photos reach "
            f'"{target}" at 4/255. '
        )
    return moment


@_chapter("ch02")
def _whitebox(rec: dict[str, Any], root: Path, c: Contents, o: Options, used: set[Path]) -> Section:
    eps = rec.get("eps")
    runs = rec.get("runs") or []
    by = {r.get("key"): r for r in runs}
    pair = rec.get("pair") or ["?", "?"]
    pgd = by.get("pgd", {})
    tgt = by.get("pgd-targeted", {})
    photo = rec.get("photo") or {}
    lede = _photo_lede(photo) + (
        f"On chapter 1's model, FGSM flips predictions with a change of at most {num(eps)} per "
        f'pixel (on a 0..1 scale); targeted, it turns "{pair[0]}" into "{pair[1]}". PGD '
        f"leaves robust accuracy at {pct(pgd.get('robust_accuracy'))} and reaches "
        f'"{pair[1]}" from "{pair[0]}" {pct(tgt.get("success_rate"), 0)} of the time.'
    )
    title = "2. White-box attacks: " + (
        f"a photo becomes an {photo.get('target', 'ostrich')}; FGSM and PGD"
        if photo.get("photos")
        else "FGSM and PGD, a perturbation too small to see"
    )
    s = Section("ch02", title, lede)
    rows = photo.get("photos") or {}
    if rows:
        s.tables.append(
            Table(
                ["Photo", "True label", "Model says", f"Eps needed to reach {photo.get('target')}"],
                [
                    [
                        str(k),
                        str(r.get("label")),
                        f"{r.get('top1')} ({pct(r.get('top1_prob'), 0)})",
                        "not reached"
                        if r.get("eps_needed_255") is None
                        else f"{num(r.get('eps_needed_255'))}/255",
                    ]
                    for k, r in rows.items()
                ],  # fmt: skip
                caption=f"{photo.get('model', '')} on real photos, targeted PGD",
            )
        )
    for name in [Path(str(f)).name for f in photo.get("figures", [])] + [
        "ch02_imagenet_ostrich.png"
    ]:
        if (root / name).resolve() in used:
            continue
        pic = _picture_file(
            root, name, f"A photo becomes an {photo.get('target', 'ostrich')}",
            "original photo | perturbation (amplified) | adversarial photo, with the top-5 "
            "probabilities before and after", used,
        )  # fmt: skip
        if pic:
            pic.caption = "The perturbation is amplified for display; its factor and size are "
            pic.caption += "written over the middle panel. Red: the target class."
            s.pictures.append(pic)
    if runs:
        s.tables.append(
            Table(
                [
                    "Attack",
                    "Goal",
                    "Images",
                    "Success",
                    "Accuracy after the attack",
                    "Gradient passes per image",
                    "Seconds",
                ],  # fmt: skip
                [
                    [
                        str(r.get("attack", r.get("key", "?"))),
                        str(r.get("goal", "")),
                        num(r.get("n")),
                        pct(r.get("success_rate")),
                        pct(r.get("robust_accuracy")) if r.get("goal") == "untargeted" else "—",
                        num(r.get("mean_queries"), ".1f"),
                        num(r.get("seconds"), ".2f"),
                    ]
                    for r in runs
                ],  # fmt: skip
                caption=f"{rec.get('dataset', '')} test images, {_norm('linf')} eps={num(eps)}; "
                f"clean accuracy {pct(rec.get('clean_accuracy'))}",
            )
        )
    for name, title in (
        ("ch02_fgsm.png", "FGSM, untargeted"),
        ("ch02_fgsm-targeted.png", f"FGSM, targeted: {pair[0]} → {pair[1]}"),
        ("ch02_pgd.png", "PGD, untargeted"),
    ):
        pic = _picture_file(root, name, title, f"{title}: original | perturbation (amplified) | "
                            "adversarial, with predicted classes", used)  # fmt: skip
        if pic:
            s.pictures.append(pic)
    for p in sorted(root.glob("ch02*.png")):  # anything else the chapter drew
        if p.resolve() not in used:
            used.add(p.resolve())
            s.pictures.append(Picture(p.stem.replace("_", " "), p.read_bytes(), p.stem))
    return s


@_chapter("ch03")
def _strong(rec: dict[str, Any], root: Path, c: Contents, o: Options, used: set[Path]) -> Section:
    from advx.report.plots import accuracy_at_eps, accuracy_vs_eps

    runs = rec.get("runs") or []
    minimal = rec.get("minimal") or {}
    apgd: dict[str, Any] = next((r for r in runs if r.get("budget") != "none"), {})
    meds = {
        k: statistics.median(d for d, ok in zip(v["distance"], v["succeeded"], strict=True) if ok)
        for k, v in minimal.items()
        if any(v.get("succeeded", []))
    }
    small = min(meds.values()) if meds else None
    flip = min(
        (r.get("success_rate") or 0.0 for r in runs if r.get("budget") == "none"), default=None
    )
    s = Section(
        "ch03",
        "3. Stronger white-box attacks drive robust accuracy to about zero",
        f"APGD-CE leaves {pct(apgd.get('robust_accuracy'))} of {rec.get('n', '?')} test images "
        f"correctly classified at {_norm('linf')} eps={num(rec.get('eps'))}; with no budget "
        f"at all, the minimal attacks (DeepFool, Carlini-Wagner) flip at least {pct(flip, 0)} "
        "of the images they attack, and the curve shows how small a perturbation suffices"
        + (f" (median {_norm('l2')} {num(small)})." if small is not None else "."),
    )
    if runs:
        s.tables.append(
            Table(
                [
                    "Attack",
                    "Budget",
                    "Success",
                    "Accuracy after the attack",
                    "Median perturbation",
                    "Seconds",
                ],  # fmt: skip
                [
                    [
                        str(r.get("attack")),
                        str(r.get("budget")),
                        pct(r.get("success_rate")),
                        pct(r.get("robust_accuracy")),
                        f"{num(r.get('median_distance'))} ({_norm(r.get('norm'))})"
                        if r.get("median_distance") is not None
                        else "—",
                        num(r.get("seconds"), ".1f"),
                    ]
                    for r in runs
                ],  # fmt: skip
            )
        )
    curves = {}
    top = max((max(v["distance"]) for v in minimal.values() if v.get("distance")), default=0.0)
    if top > 0:
        grid = [top * i / 40 for i in range(41)]
        for k, v in minimal.items():
            curves[f"{k} ({_norm(v.get('norm'))})"] = (
                grid,
                accuracy_at_eps(v["distance"], v["succeeded"], v["correct"], grid),
            )
    if curves:
        s.pictures.append(
            Picture(
                "Robust accuracy vs perturbation size",
                accuracy_vs_eps(
                    curves,
                    xlabel="perturbation size (L2)",
                    title="accuracy when the attacker may change the image by up to eps",
                ),  # fmt: skip
                "robust accuracy falling to zero as the allowed L2 perturbation grows, "
                "one line per minimal attack",
                caption="Read from the minimal attacks' per-example distances: an image counts "
                "as robust at eps when the attack needed more than eps to flip it.",
            )
        )
    return s


@_chapter("ch04")
def _transfer(rec: dict[str, Any], root: Path, c: Contents, o: Options, used: set[Path]) -> Section:
    tdir = (root / str(rec.get("transfer_dir", "transfer"))).resolve()
    t = next((t for t in c.transfers if t.path.resolve() == tdir), None)
    if t is None:
        return Section("ch04", "4. Transfer: examples crafted on one model fool others",
                       f"No transfer matrix found in {tdir}.")  # fmt: skip
    res = t.result
    off = [v for i, row in enumerate(res.matrix) for j, v in enumerate(row)
           if v is not None and res.sources[i] != res.targets[j]]  # fmt: skip
    agree = sum(1 for f in t.findings if f["holds"])
    checked = sum(1 for f in t.findings if f["holds"] is not None)
    s = Section(
        "ch04",
        "4. Transfer: examples crafted on one model fool others",
        f"{res.config['attack'].upper()} examples (eps={res.config['eps']:g}) crafted on each of "
        f"{len(res.sources)} models — neural and not — fool the other models on average "
        f"{pct(sum(off) / len(off) if off else None)} of the time, without ever touching them."
        + (
            f" {agree} of {checked} findings of Papernot et al. (2016) hold here."
            if checked
            else ""
        ),  # fmt: skip
    )
    rows = []
    for i, src in enumerate(res.sources):
        others = [(v, res.targets[j]) for j, v in enumerate(res.matrix[i])
                  if v is not None and res.targets[j] != src]  # fmt: skip
        best = max(others, default=None)
        rows.append([
            src, pct(res.clean_accuracy.get(src)), pct(res.source_success[i]),
            pct(sum(v for v, _ in others) / len(others) if others else None),
            f"{best[1]} ({pct(best[0], 0)})" if best else "—",
        ])  # fmt: skip
    s.tables.append(
        Table(
            [
                "Crafted on",
                "Clean accuracy",
                "Fools itself (white-box)",
                "Fools the other models (mean)",
                "Fools most",
            ],  # fmt: skip
            rows,
            caption="each model's examples, shown to the others (the full matrix is below)",
        )
    )
    s.transfer = t
    return s


@_chapter("ch05")
def _blackbox(rec: dict[str, Any], root: Path, c: Contents, o: Options, used: set[Path]) -> Section:
    from advx.report.plots import success_by_queries, success_vs_queries

    runs = rec.get("runs") or []
    budget = rec.get("budget")
    sq: dict[str, Any] = next((r for r in runs if r.get("sees") == "probabilities"), {})
    hsj: dict[str, Any] = next((r for r in runs if r.get("sees") == "labels"), {})
    s = Section(
        "ch05",
        "5. Black-box: only the model's outputs, over HTTP, under a query budget",
        f"The model sits behind an HTTP endpoint (Open Inference Protocol). Seeing only "
        f"probabilities, Square fools it on {pct(sq.get('success_rate'), 0)} of the images "
        f"with {num(sq.get('mean_queries'), '.0f')} queries on average; seeing only labels, "
        f"HopSkipJump fools {pct(hsj.get('success_rate'), 0)} within "
        f"{_norm(hsj.get('norm'))} {num(hsj.get('eps'))}. Budget: {num(budget)} queries per "
        "image.",
    )
    if runs:
        s.tables.append(
            Table(
                [
                    "Attack",
                    "Sees",
                    "Budget",
                    "Success",
                    "Mean queries",
                    "Median perturbation",
                    "Seconds",
                ],  # fmt: skip
                [
                    [
                        str(r.get("attack")),
                        str(r.get("sees")),
                        f"{_norm(r.get('norm'))} {num(r.get('eps'))}"
                        if r.get("eps") is not None
                        else "minimal",
                        pct(r.get("success_rate")),
                        num(r.get("mean_queries"), ".0f"),
                        f"{num(r.get('median_distance'))} ({_norm(r.get('norm'))})"
                        if r.get("median_distance") is not None
                        else "—",
                        num(r.get("seconds"), ".1f"),
                    ]
                    for r in runs
                ],  # fmt: skip
                caption=f"{rec.get('n', '?')} test images, {num(budget)} queries per image",
            )
        )
    curves = {
        str(r.get("attack")): success_by_queries(r["queries"], r["succeeded"], r["attacked"])
        for r in runs
        if r.get("queries")
    }
    if curves:
        s.pictures.append(
            Picture(
                "Success vs queries",
                success_vs_queries(
                    curves, budget=budget, title="share of images fooled within a query budget"
                ),  # fmt: skip
                "images fooled (%) as the number of queries per image grows, one step curve "
                "per black-box attack",
                caption="Each image stops at its first success, so its query count is the "
                "budget it needed.",
            )
        )
    return s


def _diff_md(d: Mapping[str, Any], names: Sequence[str]) -> str:
    from advx.text.result import TextAttackResult

    r = TextAttackResult.from_dict(dict(d))
    parts = []
    for seg in r.diff():
        parts.append(f"~~{seg.old.strip()}~~ **{seg.new.strip()}**" if seg.changed else seg.old)
    lab = lambda i: names[i] if 0 <= i < len(names) else str(i)  # noqa: E731
    return (
        f"> {''.join(parts).strip()}\n>\n> {lab(r.pred_clean)} ({r.conf_clean:.0%}) → "
        f"{lab(r.pred_adv)} ({r.conf_adv:.0%}); {r.words_changed} word(s) changed, "
        f"{r.queries} queries"
    )


@_chapter("ch06")
def _text(rec: dict[str, Any], root: Path, c: Contents, o: Options, used: set[Path]) -> Section:
    from advx.text.result import TextAttackResult, TextAttackResults, diff_html

    summ = rec.get("summary") or {}
    names = list(rec.get("class_names") or [])
    shown = [rec["shown"]] if rec.get("shown") else []
    first = (
        f"The tweet below, about self-driving cars, flips with {shown[0]['words_changed']} "
        "misspelled word(s). "
        if shown and "words_changed" in shown[0]
        else ""
    )
    s = Section(
        "ch06",
        "6. Text: a few character edits flip a sentiment classifier",
        f"{first}{rec.get('recipe', 'DeepWordBug')} swaps and drops characters until the "
        f"{rec.get('arch')} sentiment model changes its mind: it succeeds on "
        f"{pct(summ.get('success_rate'), 0)} of {summ.get('n', '?')} test tweets, editing "
        f"{num(summ.get('mean_words_changed_pct'), '.0f')}% of the words on average.",
    )
    s.tables.append(
        Table(
            [
                "Recipe",
                "Tweets",
                "Accuracy before",
                "Accuracy after",
                "Success",
                "Words changed (mean)",
                "Queries per tweet",
            ],  # fmt: skip
            [
                [
                    str(rec.get("recipe")),
                    num(summ.get("n")),
                    pct(summ.get("clean_accuracy")),
                    pct(summ.get("robust_accuracy")),
                    pct(summ.get("success_rate")),
                    f"{num(summ.get('mean_words_changed_pct'), '.1f')}%",
                    num(summ.get("mean_queries"), ".0f"),
                ]
            ],  # fmt: skip
            caption=f"{rec.get('arch')} model on {rec.get('dataset')}",
        )
    )
    more: list[dict[str, Any]] = []
    rf = root / str(rec.get("results_file", "ch06-results.json"))
    if rf.is_file():
        try:
            won = [r for r in TextAttackResults.load(rf) if r.succeeded]
            more = [r.to_dict() for r in sorted(won, key=lambda r: r.words_changed)]  # fewest first
        except CheckpointError as e:
            s.notes.append(str(e))
    for d in (shown + [m for m in more if m not in shown])[:6]:
        r = TextAttackResult.from_dict(dict(d))
        s.diffs.append(Diff(diff_html(r, names), _diff_md(d, names)))
    if shown:
        s.notes.append("The first example is a negative tweet about self-driving cars.")
    return s


@_chapter("ch07")
def _detect(rec: dict[str, Any], root: Path, c: Contents, o: Options, used: set[Path]) -> Section:
    from advx.report.plots import roc_figure

    na, ad = rec.get("non_adaptive") or {}, rec.get("adaptive") or {}
    atk = rec.get("attack") or {}
    steps = (atk.get("non_adaptive") or {}).get("steps", "?")
    asteps = (atk.get("adaptive") or {}).get("steps", "?")
    s = Section(
        "ch07",
        "7. Reactive defence: a detector, and the adaptive attack that walks past it",
        f"A {rec.get('kind', '')} detector flags {pct(na.get('detection_rate'))} of the PGD "
        f"examples that fool the model, at {pct(rec.get('clean_false_positive_rate'))} false "
        f"alarms on clean images. An attacker who knows it is there gets only "
        f"{pct(ad.get('detection_rate'))} flagged, and the defended system's accuracy under "
        f"attack falls from {pct(na.get('defended_accuracy'))} to "
        f"{pct(ad.get('defended_accuracy'))}.",
    )
    rows = [
        ["clean", "—", f"{pct(rec.get('clean_false_positive_rate'))} (false alarms)",
         pct(rec.get("defended_clean_accuracy"))],
        [f"PGD-{steps} on the bare model", pct(na.get("fooled_model")),
         pct(na.get("detection_rate")), pct(na.get("defended_accuracy"))],
    ]  # fmt: skip
    if ad:
        rows.append([f"adaptive PGD-{asteps} (knows the detector)", pct(ad.get("fooled_model")),
                     pct(ad.get("detection_rate")), pct(ad.get("defended_accuracy"))])  # fmt: skip
    s.tables.append(
        Table(
            [
                "Inputs",
                "Fool the bare model",
                "Flagged by the detector",
                "Accuracy of the defended system",
            ],
            rows,  # fmt: skip
            caption=f"{rec.get('n', '?')} test images of {rec.get('dataset', '')}, "
            f"{_norm('linf')} eps={num(rec.get('eps'))}; a rejection counts as correct",
        ),  # fmt: skip
    )
    cost = rec.get("cost") or {}
    if cost:
        s.notes.append(
            f"What the detector costs: {cost.get('detector_parameters', 0):,} more parameters "
            f"and {cost.get('detector_buffers', 0):,} stored statistics (the model has "
            f"{cost.get('model_parameters', 0):,}), {num(cost.get('latency_ratio'), '.1f')}× "
            "the latency per batch."
        )
    sc = rec.get("scores") or {}
    if sc.get("clean") and (sc.get("non_adaptive") or sc.get("adaptive")):
        pos = {f"PGD-{steps} on the bare model": sc.get("non_adaptive") or [],
               f"adaptive PGD-{asteps}": sc.get("adaptive") or []}  # fmt: skip
        s.pictures.append(
            Picture(
                "The detector's ROC, before and after the adaptive attack",
                roc_figure(
                    sc["clean"],
                    pos,
                    threshold=rec.get("threshold"),
                    title="detector scores: clean vs adversarial inputs",
                ),  # fmt: skip
                "ROC curves: against plain PGD the curve hugs the top left corner; against "
                "the adaptive attack it falls towards the diagonal",
                caption="Dots: the detector's operating threshold (chosen for 5% false "
                "alarms). Adversarial inputs: those that fool the bare model.",
            )
        )
    return s


@_chapter("ch08")
def _advtrain(rec: dict[str, Any], root: Path, c: Contents, o: Options, used: set[Path]) -> Section:
    from advx.report.plots import accuracy_vs_eps, training_curves

    models = rec.get("models") or {}
    std, adv = models.get("standard", {}), models.get("adversarial", {})
    eps = rec.get("eps")
    delta = None
    if std.get("clean") is not None and adv.get("clean") is not None:
        delta = 100 * (adv["clean"] - std["clean"])
    s = Section(
        "ch08",
        "8. Proactive defence: adversarial training",
        f"Training on {rec.get('adv', '').upper()} examples (eps={num(eps)}) lifts accuracy under "
        f"PGD-20 from {pct(std.get('pgd20'))} to {pct(adv.get('pgd20'))}; clean accuracy "
        f"changes by {num(delta, '+.2f')} points ({rec.get('verdict', 'measured')}).",
    )
    s.tables.append(
        Table(
            ["Model", "Clean accuracy", f"Accuracy under PGD-20 at eps={num(eps)}"],
            [
                [str(m.get("label", k)), pct(m.get("clean"), 2), pct(m.get("pgd20"))]
                for k, m in models.items()
            ],  # fmt: skip
            caption=f"{rec.get('arch')} on {rec.get('dataset')}; clean accuracy on the whole test "
            f"split, PGD-20 on {rec.get('n', '?')} test images",
        )
    )
    checks = rec.get("checks") or []
    if checks:
        s.pictures.append(
            Picture(
                "Clean and robust accuracy across adversarial-training epochs",
                training_curves(
                    [int(ch["epoch"]) for ch in checks],
                    {
                        "adversarial: clean": [ch["clean_accuracy"] for ch in checks],
                        "adversarial: under PGD-10": [ch["pgd_accuracy"] for ch in checks],
                    },
                    reference={
                        "standard: clean": std.get("clean"),
                        "standard: under PGD-20": std.get("pgd20"),
                    }
                    if std.get("clean") is not None
                    else None,
                    title="adversarial training, epoch by epoch",
                ),  # fmt: skip
                "line chart: the adversarially trained model's clean and PGD accuracy per "
                "epoch, with the standard model's as dashed lines",
                caption="Per-epoch values: held-out training images checked at each epoch's end "
                "(the overfit guard); dashed: the standard model on the test images.",
            )
        )
    sweep = rec.get("sweep") or {}
    if sweep.get("eps") and sweep.get("accuracy"):
        s.pictures.append(
            Picture(
                "Robust accuracy vs eps, both models",
                accuracy_vs_eps(
                    {k: (sweep["eps"], v) for k, v in sweep["accuracy"].items()},
                    xlabel="eps (L∞)",
                    marked=eps,
                    title="accuracy under PGD-20",
                ),  # fmt: skip
                "robust accuracy against eps for the standard and the adversarially trained "
                "model on one plot",
            )
        )
    return s


# ------------------------------------------------------------------------------- entries
def story_sections(contents: Contents, options: Options | None = None) -> list[Section]:
    """The sections of every chapter saved under ``contents.root``, in the story's order.

    Figures the sections embed are added to ``contents.used`` so the page does not
    repeat them among the loose figures.
    """
    o = options or Options()
    recs = load_chapters(contents.root)
    out = []
    for key in sorted(recs):
        build = _BUILDERS.get(key)
        if build is None:
            continue
        try:
            sec = build(recs[key], contents.root, contents, o, contents.used)
        except (KeyError, TypeError, ValueError) as e:  # a record from another version
            contents.problems.append(f"cannot render chapter {key}: {e!r}")
            continue
        if sec is not None:
            out.append(sec)
    return out


def is_attack_run(path: Path) -> bool:
    """True for a directory written by ``advx attack`` (result + summary)."""
    return (path / "result.json").is_file() and (path / "summary.json").is_file()


def attack_section(run: Path, root: Path, options: Options | None = None) -> Section:
    """The full summary of one ``advx attack`` run directory: what was attacked and how,
    a table of the measured numbers, the examples (redrawn from the saved clean inputs
    with the chosen amplification, or the run's own ``examples.png``), and the curve the
    run's per-example results give (accuracy vs perturbation size for minimal attacks,
    success vs queries for black-box ones).

    Raises:
        CheckpointError: the run's files are damaged.
    """
    from advx.attacks.result import AttackResult
    from advx.report.plots import (
        accuracy_at_eps,
        accuracy_vs_eps,
        success_by_queries,
        success_vs_queries,
    )

    o = options or Options()
    try:
        info = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {run / 'summary.json'}: {e}") from e
    result = AttackResult.load(run)
    name = str(run.relative_to(root)) if run != root else run.name
    slug, norm, eps = info.get("attack", result.attack), result.threat.norm, result.eps
    budget = f"{_norm(norm)} eps={eps:g}" if math.isfinite(eps) else f"{_norm(norm)}, no budget"
    cfg = info.get("config") or {}
    s = Section(
        f"attack-{name}",
        f"Attack: {slug} on {Path(str(info.get('model', '?'))).name}",
        f"{slug} ({budget}) on {info.get('n', len(result))} {info.get('data', '')} "
        f"{info.get('split', '')} examples of {info.get('model', '?')}: accuracy "
        f"{pct(info.get('clean_accuracy'))} before the attack, {pct(info.get('robust_accuracy'))} "
        f"after; the attack succeeded on {pct(info.get('success_rate'))} of the examples it "
        "attacked.",
    )
    unit = "passes" if _access(info, slug) == "gradients" else "queries"
    rows = [
        ["Clean accuracy", pct(info.get("clean_accuracy"))],
        ["Accuracy under attack", pct(info.get("robust_accuracy"))],
        ["Success rate (of attacked examples)", pct(info.get("success_rate"))],
        [f"Median perturbation ({_norm(norm)})", num(info.get("median_distance"), ".4g")],
        [f"Largest perturbation ({_norm(norm)})", num(info.get("max_distance"), ".4g")],
        [f"Mean {unit} per example", num(info.get("mean_queries"), ".1f")],
        [f"Median {unit} per example", num(info.get("median_queries"), ".1f")],
        ["Seconds", num(info.get("seconds"), ".2f")],
        ["Examples (attacked / skipped as already wrong)",
         f"{int(result.attacked.sum())} / {int(result.skipped.sum())}"],
    ]  # fmt: skip
    if info.get("targets"):
        rows.insert(3, ["Targets", str(info["targets"])])
    s.tables.append(Table(["Measure", "Value"], rows, caption=f"{slug}, {budget}"))
    settings = {k: v for k, v in cfg.items() if v is not None}
    if settings:
        s.tables.append(
            Table(
                ["Setting", "Value"],
                [[k, num(v)] for k, v in sorted(settings.items())],
                caption="the attack's settings",
            )  # fmt: skip
        )
    pic = _attack_gallery(run, result, info, o)
    if pic is not None:
        s.pictures.append(pic)
    correct = (result.pred_clean == result.y).tolist()
    succeeded = result.succeeded.tolist()
    dist = result.distance.float().tolist()
    if not math.isfinite(eps) and any(succeeded):
        top = max(d for d, ok in zip(dist, succeeded, strict=True) if ok)
        grid = [top * i / 40 for i in range(41)]
        s.pictures.append(
            Picture(
                "Accuracy vs perturbation size",
                accuracy_vs_eps(
                    {slug: (grid, accuracy_at_eps(dist, succeeded, correct, grid))},
                    xlabel=f"eps ({_norm(norm)})",
                ),  # fmt: skip
                "accuracy under attack as the allowed perturbation grows",
                caption="From the per-example distances of this minimal attack.",
            )
        )
    elif unit == "queries" and any(succeeded):
        qs = result.queries.tolist()
        att = result.attacked.tolist()
        s.pictures.append(
            Picture(
                "Success vs queries",
                success_vs_queries(
                    {slug: success_by_queries(qs, succeeded, att)}, budget=cfg.get("max_queries")
                ),  # fmt: skip
                "share of examples fooled as the query budget grows",
            )
        )
    elif any(succeeded):
        fooled = [d for d, ok in zip(dist, succeeded, strict=True) if ok]
        s.notes.append(
            f"Half of the successful examples needed a perturbation of at most "
            f"{statistics.median(fooled):.4g} ({_norm(norm)}) of the {eps:g} allowed."
        )
    return s


def _access(info: Mapping[str, Any], slug: str) -> str:
    """The access level the attack needed (saved by newer runs; else the registry's)."""
    if info.get("access"):
        return str(info["access"])
    try:
        from advx.attacks import get

        cls: Any = get(slug).cls
        return str(cls.access.name.lower())
    except Exception:  # an attack this advx does not know
        return "queries"


def _attack_gallery(run: Path, result: Any, info: Mapping[str, Any], o: Options) -> Picture | None:
    """Examples of an attack run, redrawn when its clean inputs were saved."""
    from advx.report.figures import EXAMPLES_FILE, adversarial_figure

    ex = run / EXAMPLES_FILE
    names = info.get("class_names") or None
    if ex.is_file():
        from safetensors.torch import load_file

        try:
            t = load_file(str(ex))
            idx = t["index"].long()
            x = result.x_adv.clone()
            x[idx] = t["x"].to(x.dtype)
            with tempfile.TemporaryDirectory() as tmp:
                path = adversarial_figure(
                    x, result, names, k=len(idx), indices=idx, path=Path(tmp) / "g.png",
                    amplify=o.amplification,
                )  # fmt: skip
                return Picture(
                    "Examples", path.read_bytes(),
                    "rows of original | perturbation (amplified) | adversarial example",
                    caption="The smallest successful perturbations; the amplification is "
                    "written over the middle column.",
                )  # fmt: skip
        except Exception as e:  # a damaged file: fall back to the saved picture
            log.warning("cannot redraw the examples of %s: %s", run, e)
    png = run / "examples.png"
    if png.is_file():
        return Picture("Examples", png.read_bytes(),
                       "rows of original | perturbation (amplified) | adversarial example")  # fmt: skip
    return None
