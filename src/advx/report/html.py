"""Render a run directory into a self-contained HTML page and a Markdown summary.

Everything comes from the files the runs saved — the demo's chapter records
(``chNN.json``, see :mod:`advx.report.story`), ``run.json`` + ``results.jsonl`` (+
``examples/``) of evaluations, ``transfer.json`` of transfer matrices, ``result.json`` +
``summary.json`` of ``advx attack`` runs, PNG figures. Nothing is recomputed: a report
made later shows what was measured then.

A demo directory reads as the story: one section per chapter, in order, each with a
sentence of what it shows, tables with human column names and its figures. The page
embeds its figures as base64 PNG (no external files, scripts or fonts), so it can be
mailed or attached to a PR as one file; the Markdown summary has the same sections and
links the same figures, written to ``report-figures/`` next to it.

Example:
    >>> html, md = render_report("runs/eval/cnn-standard")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from advx.errors import CheckpointError, InputError
from advx.io import atomic_write_bytes, atomic_write_text
from advx.jsonio import dumps
from advx.report.sections import Contents as Contents
from advx.report.sections import EvalSection as EvalSection
from advx.report.sections import TransferSection as TransferSection

log = logging.getLogger(__name__)

REPORT_HTML = "report.html"
SUMMARY_MD = "summary.md"
REPORT_JSON = "report.json"
FIGURES_DIR = "report-figures"
_MAX_DEPTH = 3


def _walk(root: Path, name: str) -> list[Path]:
    """Files called ``name`` in ``root`` and its subdirectories (depth-limited, sorted)."""
    found: list[Path] = []
    frontier = [root]
    for _ in range(_MAX_DEPTH + 1):
        nxt: list[Path] = []
        for d in frontier:
            if (d / name).is_file():
                found.append(d / name)
            nxt.extend(
                sorted(
                    p for p in d.iterdir() if p.is_dir() and p.name not in ("examples", FIGURES_DIR)
                )
            )
        frontier = nxt
    return sorted(found)


def collect(root: str | Path, *, figures: bool = True) -> Contents:
    """Find every evaluation run, transfer matrix, ``advx attack`` run and (optionally)
    PNG figure under ``root`` (up to three directory levels deep). Damaged runs are
    listed in ``problems`` instead of failing the whole report."""
    from advx.evaluate.summary import load_run, summarize_dir
    from advx.evaluate.transfer import TransferResult
    from advx.report.story import is_attack_run

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a directory; give the run directory to report on")
    c = Contents(root)
    for p in _walk(root, "run.json"):
        try:
            run = load_run(p.parent)
            rep = summarize_dir(p.parent)
        except CheckpointError as e:
            c.problems.append(str(e))
            continue
        c.evals.append(EvalSection(_rel(p.parent, root), p.parent, run, rep))
    for p in _walk(root, "transfer.json"):
        try:
            c.transfers.append(
                TransferSection(_rel(p.parent, root), p.parent, TransferResult.load(p))
            )
        except CheckpointError as e:
            c.problems.append(str(e))
    for p in _walk(root, "result.json"):
        if is_attack_run(p.parent):
            c.attack_runs.append(p.parent)
    if figures:
        from advx.report.plots import png_base64

        for p in sorted(root.rglob("*.png")):
            parts = p.relative_to(root).parts
            if "examples" in parts or FIGURES_DIR in parts or len(parts) > _MAX_DEPTH + 1:
                continue
            c.figures.append(
                {"title": _rel(p, root), "path": str(p), "uri": png_base64(p.read_bytes())}
            )
    return c


def _rel(p: Path, root: Path) -> str:
    r = p.relative_to(root)
    return str(r) if str(r) != "." else root.name


def _gallery(
    section: EvalSection, *, k: int = 6, max_eps: int = 3, amplify: float | None = None
) -> list[dict[str, str]]:
    """Figures ``original | perturbation | adversarial`` from saved examples (if any)."""
    import torch
    from safetensors.torch import load_file

    from advx.attacks.result import AttackResult, Status
    from advx.report.figures import adversarial_figure
    from advx.report.plots import png_base64
    from advx.threat import ThreatModel

    ex_dir = section.path / "examples"
    if not ex_dir.is_dir():
        return []
    run = section.run
    names = run["target"].get("class_names") or None
    bounds = tuple(run["target"].get("bounds", (0.0, 1.0)))
    norm = run["config"]["norm"]
    slug = {int(s["index"]): s["slug"] for s in run["steps"]}
    out: list[dict[str, str]] = []
    for ei, eps in list(enumerate(section.eps))[:max_eps]:
        xs, advs, ys, preds, steps = [], [], [], [], []
        for f in sorted(ex_dir.glob(f"b*-e{ei}-s*.safetensors")):
            t = load_file(str(f))
            hit = t["pred_adv"] != t["y"]
            if not bool(hit.any()):
                continue
            xs.append(t["x"][hit])
            advs.append(t["x_adv"][hit])
            ys.append(t["y"][hit])
            preds.append(t["pred_adv"][hit])
            steps.extend([slug.get(int(f.stem.rsplit("-s", 1)[1]), "?")] * int(hit.sum()))
            if sum(len(v) for v in ys) >= 20 * k:
                break
        if not xs:
            continue
        x, x_adv = torch.cat(xs), torch.cat(advs)
        y, pred = torch.cat(ys), torch.cat(preds)
        threat = ThreatModel(norm, float(eps), (float(bounds[0]), float(bounds[1])))
        result = AttackResult(
            x_adv=x_adv,
            y=y,
            status=torch.full_like(y, int(Status.SUCCEEDED), dtype=torch.int8),
            pred_clean=y,
            conf_clean=torch.full(y.shape, math.nan),
            pred_adv=pred,
            conf_adv=torch.full(y.shape, math.nan),
            distance=threat.distance(x_adv, x).float(),
            queries=torch.zeros_like(y),
            threat=threat,
            attack="+".join(sorted(set(steps))),
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "g.png"
            try:
                adversarial_figure(
                    x, result, names, k=k, path=path, amplify=amplify,
                    title=f"{section.name}: eps={eps:g} ({norm}), smallest successful perturbations",
                )  # fmt: skip
            except (InputError, ValueError) as e:  # e.g. non-image inputs
                log.info("no gallery for %s: %s", section.name, e)
                return out
            out.append({"eps": f"{eps:g}", "uri": png_base64(path.read_bytes())})
    return out


def _fmt_pct(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{100 * float(v):.1f}%"


def _roles(result: Any) -> dict[str, str]:
    """Papernot roles (dnn, lr, svm, dt, knn) found among the matrix's model names."""
    meta_roles = result.meta.get("roles") if isinstance(result.meta, Mapping) else None
    if isinstance(meta_roles, Mapping):
        return {str(k): str(v) for k, v in meta_roles.items()}
    aliases = {
        "dnn": ("dnn", "mlp", "cnn"),
        "lr": ("lr", "logreg", "logistic"),
        "svm": ("svm", "linear-svm", "linearsvc"),
        "dt": ("dt", "tree", "decision-tree"),
        "knn": ("knn",),
    }
    names = set(result.sources) & set(result.targets)
    roles: dict[str, str] = {}
    for role, keys in aliases.items():
        for nm in sorted(names):
            if nm.lower() in keys:
                roles[role] = nm
                break
    return roles


def prepare(
    contents: Contents, *, galleries: bool = True, amplification: float | None = None
) -> Contents:
    """Add the figures (curves, heatmaps, galleries), derived findings, the story's
    chapter sections and the attack runs' sections in place.

    Args:
        galleries: draw example galleries of evaluation runs from saved inputs.
        amplification: factor perturbations are multiplied by in example figures
            (default: the largest that does not clip, written on each figure).
    """
    from advx.evaluate.transfer import papernot_check
    from advx.report.plots import png_base64, robust_curve, transfer_heatmap
    from advx.report.story import Options, attack_section, story_sections

    if amplification is not None and not (math.isfinite(amplification) and amplification > 0):
        raise InputError(f"amplification must be a positive number, got {amplification}")
    options = Options(amplification=amplification)

    for s in contents.evals:
        r = s.report
        if r.n:
            s.curve = png_base64(
                robust_curve(
                    r.eps, r.per_attack, r.robust_accuracy, r.clean_accuracy,
                    title=s.name, norm=s.run["config"]["norm"],
                )
            )  # fmt: skip
        if galleries:
            s.galleries = _gallery(s, amplify=amplification)
    for t in contents.transfers:
        res = t.result
        t.heatmap = png_base64(
            transfer_heatmap(
                res.sources, res.targets, res.matrix,
                title=f"{res.config['attack']} eps={res.config['eps']:g} ({res.config['norm']})",
            )
        )  # fmt: skip
        roles = _roles(res)
        if len(roles) >= 3:
            t.findings = papernot_check(res, roles)
    contents.story = story_sections(contents, options)
    for run in contents.attack_runs:
        try:
            contents.attacks.append(attack_section(run, contents.root, options))
        except CheckpointError as e:
            contents.problems.append(str(e))
            continue
        for name in ("examples.png",):
            contents.used.add((run / name).resolve())
    return contents


def _env() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("advx.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pct"] = _fmt_pct
    env.filters["mdcell"] = lambda v: str(v).replace("|", "\\|").replace("\n", " ")
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, default=str)
    env.filters["num"] = lambda v: (
        "—" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
    )
    return env


def render_report(
    run_dir: str | Path,
    *,
    out: str | Path | None = None,
    title: str | None = None,
    notes: Sequence[Mapping[str, Any]] = (),
    galleries: bool = True,
    amplification: float | None = None,
) -> tuple[Path, Path]:
    """Write ``report.html``, ``summary.md`` and ``report.json`` for everything saved
    under ``run_dir``.

    Args:
        run_dir: an evaluation run, a transfer run, or a directory holding several (e.g.
            the demo's output directory).
        out: directory for the two files (default ``run_dir``).
        title: page title (default from the directory name).
        notes: extra sections, each ``{"title": str, "text": str, "numbers": {k: v}}``
            (the demo passes one per chapter).
        galleries: draw example galleries from saved adversarial inputs.
        amplification: factor perturbations are multiplied by in example figures
            (default: per figure, the largest that does not clip; always written on it).

    Returns:
        ``(html_path, markdown_path)``.

    Raises:
        InputError: ``run_dir`` is not a directory or holds no results at all, or
            ``amplification`` is not a positive number.
    """
    from advx.report.story import load_chapters

    root = Path(run_dir)
    contents = collect(root)
    if not (
        contents.evals
        or contents.transfers
        or contents.figures
        or contents.attack_runs
        or load_chapters(root)
        or notes
    ):
        raise InputError(
            f"{root} holds no results (no run.json, transfer.json, result.json, chapter "
            "records or figures); run `advx attack`, `advx eval`, `advx transfer` or "
            "`advx demo` first"
        )
    prepare(contents, galleries=galleries, amplification=amplification)
    ctx = {
        "title": title or f"advx report — {root.resolve().name}",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "c": contents,
        "notes": [dict(n) for n in notes],
        "version": _advx_version(),
    }
    env = _env()
    dest = Path(out) if out is not None else root
    dest.mkdir(parents=True, exist_ok=True)
    _write_figures(contents, dest / FIGURES_DIR)
    html_path = dest / REPORT_HTML
    md_path = dest / SUMMARY_MD
    atomic_write_text(html_path, env.get_template("report.html").render(**ctx))
    atomic_write_text(md_path, env.get_template("summary.md").render(**ctx))
    atomic_write_text(
        dest / REPORT_JSON, dumps(as_json(contents, ctx), indent=2, default=str) + "\n"
    )
    return html_path, md_path


def _write_figures(contents: Contents, folder: Path) -> None:
    """Write every section's figures as PNG files for the Markdown summary to link
    (``folder`` is emptied of earlier reports' figures first)."""
    import re

    sections = [*contents.story, *contents.attacks]
    if folder.is_dir():
        for old in folder.glob("*.png"):
            old.unlink()
    for i, sec in enumerate(sections, start=1):
        for j, pic in enumerate(sec.pictures, start=1):
            slug = re.sub(r"[^a-z0-9]+", "-", pic.title.lower()).strip("-")[:40] or "figure"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{i:02d}-{j}-{slug}.png"
            atomic_write_bytes(path, pic.png)
            pic.file = f"{folder.name}/{path.name}"


def as_json(contents: Contents, ctx: Mapping[str, Any]) -> dict[str, Any]:
    """The machine-readable twin of the page (``report.json``): the story's sections,
    every ``advx attack`` run, every evaluation's summary, every transfer matrix with
    its findings, the notes."""
    return {
        "title": ctx["title"],
        "created": ctx["created"],
        "advx": ctx["version"],
        "story": [s.to_json() for s in contents.story],
        "attacks": [s.to_json() for s in contents.attacks],
        "evals": [
            {"name": s.name, "path": str(s.path), **s.report.to_json()} for s in contents.evals
        ],
        "transfers": [
            {"name": t.name, "path": str(t.path), **t.result.to_json(), "findings": t.findings}
            for t in contents.transfers
        ],
        "notes": ctx["notes"],
        "problems": contents.problems,
    }


def _advx_version() -> str:
    import advx

    return advx.__version__
