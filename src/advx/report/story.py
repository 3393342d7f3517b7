"""The report's chapters: one section per chapter of the story, built from saved files.

A demo chapter saves what its section needs with :func:`save_chapter` (``OUT/chNN.json``:
its numbers, and the per-example values its figures are drawn from: distances, queries,
detector scores, per-epoch accuracies). :func:`story_sections` turns the chapter files
found under a run directory into :class:`Section` objects — a sentence of what the
chapter shows, tables with human column names, pictures (PNG bytes) and, for text, diffs
with the edits highlighted — in the story's order; one builder per chapter lives in
:mod:`advx.report.chapters`. The HTML page and the Markdown summary render the same
sections. Nothing here runs a model or an attack.

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
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advx.errors import CheckpointError
from advx.report.sections import (
    Builder,
    Diff,
    Options,
    Picture,
    Section,
    Table,
    builders,
    chapter,
    norm_name,
    num,
    pct,
    picture_file,
)

if TYPE_CHECKING:
    from advx.report.sections import Contents

__all__ = [  # the section vocabulary lives in advx.report.sections; re-exported here
    "FORMAT",
    "Builder",
    "Diff",
    "Options",
    "Picture",
    "Section",
    "Table",
    "attack_section",
    "chapter",
    "is_attack_run",
    "load_chapters",
    "norm_name",
    "num",
    "pct",
    "picture_file",
    "save_chapter",
    "story_sections",
]

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


# ------------------------------------------------------------------------------- entries
def story_sections(contents: Contents, options: Options | None = None) -> list[Section]:
    """The sections of every chapter saved under ``contents.root``, in the story's order.

    Figures the sections embed are added to ``contents.used`` so the page does not
    repeat them among the loose figures.
    """
    import advx.report.chapters  # noqa: F401  (registers the chapters' builders)

    o = options or Options()
    recs = load_chapters(contents.root)
    table = builders()
    out = []
    for key in sorted(recs):
        build = table.get(key)
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
    budget = (
        f"{norm_name(norm)} eps={eps:g}" if math.isfinite(eps) else f"{norm_name(norm)}, no budget"
    )
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
        [f"Median perturbation ({norm_name(norm)})", num(info.get("median_distance"), ".4g")],
        [f"Largest perturbation ({norm_name(norm)})", num(info.get("max_distance"), ".4g")],
        [f"Mean {unit} per example", num(info.get("mean_queries"), ".1f")],
        [f"Median {unit} per example", num(info.get("median_queries"), ".1f")],
        ["Seconds", num(info.get("seconds"), ".2f")],
        [
            "Examples (attacked / skipped as already wrong)",
            f"{int(result.attacked.sum())} / {int(result.skipped.sum())}",
        ],
    ]
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
            )
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
                    xlabel=f"eps ({norm_name(norm)})",
                ),
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
                ),
                "share of examples fooled as the query budget grows",
            )
        )
    elif any(succeeded):
        fooled = [d for d, ok in zip(dist, succeeded, strict=True) if ok]
        s.notes.append(
            f"Half of the successful examples needed a perturbation of at most "
            f"{statistics.median(fooled):.4g} ({norm_name(norm)}) of the {eps:g} allowed."
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
                    x,
                    result,
                    names,
                    k=len(idx),
                    indices=idx,
                    path=Path(tmp) / "g.png",
                    amplify=o.amplification,
                )
                return Picture(
                    "Examples",
                    path.read_bytes(),
                    "rows of original | perturbation (amplified) | adversarial example",
                    caption="The smallest successful perturbations; the amplification is "
                    "written over the middle column.",
                )
        except Exception as e:  # a damaged file: fall back to the saved picture
            log.warning("cannot redraw the examples of %s: %s", run, e)
    png = run / "examples.png"
    if png.is_file():
        return Picture("Examples", png.read_bytes(),
                       "rows of original | perturbation (amplified) | adversarial example")  # fmt: skip
    return None
