"""Chapter 9: one report holds all of it.

Renders ``OUT/report.html`` (self-contained), ``OUT/summary.md`` and ``OUT/report.json``
from what the earlier chapters saved under ``OUT``: each chapter's record
(``chNN.json``, see :func:`advx.report.story.save_chapter`), the transfer matrix, the
figures. The page reads in the story's order, one section per chapter. Nothing is
recomputed, and a chapter that did not run (``advx demo --only ...``) keeps the section
of its last run, or has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

TITLE = "9. The report"


def whitebox_record(
    whitebox: Mapping[str, Any],
    clean_accuracy: float | None,
    imagenet: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Chapter 2's record from the numbers it leaves in ``ctx.artifacts["whitebox"]``
    (used when chapter 2 ran but did not save ``ch02.json`` itself: a record older than
    this run's ``ch01.json`` is from an earlier run), with its ImageNet moment
    (``ctx.artifacts["imagenet"]``: per photo, the clean top-1 and the eps needed; the
    figure) when it ran."""
    goals = {"fgsm": "untargeted", "pgd": "untargeted"}
    pair = list(whitebox.get("pair") or ("?", "?"))
    runs = []
    for key, s in (whitebox.get("summaries") or {}).items():
        runs.append(
            {
                **{k: v for k, v in s.items() if not isinstance(v, (list, dict))},
                "key": key,
                "attack": key.split("-")[0].upper(),
                "goal": goals.get(key, f"{pair[0]} → {pair[1]}"),
            }
        )
    fgsm = (whitebox.get("summaries") or {}).get("fgsm", {})
    return {
        "dataset": str(whitebox.get("dataset", "")),
        "eps": whitebox.get("eps"),
        "n": whitebox.get("n"),
        "pair": pair,
        "clean_accuracy": fgsm.get("clean_accuracy", clean_accuracy),
        "runs": runs,
        "photo": None
        if not imagenet
        else {
            **{k: v for k, v in imagenet.items() if k != "figure"},
            "figures": [Path(str(imagenet["figure"])).name] if imagenet.get("figure") else [],
        },
    }


def run(ctx: Any) -> None:
    """Render the report of the whole demo run."""
    from advx.errors import InputError
    from advx.report.html import render_report
    from advx.report.story import save_chapter

    wb = ctx.artifacts.get("whitebox")
    ch01, ch02 = ctx.out / "ch01.json", ctx.out / "ch02.json"
    stale = not ch02.is_file() or (ch01.is_file() and ch02.stat().st_mtime < ch01.stat().st_mtime)
    if isinstance(wb, Mapping) and stale:  # chapter 2 ran now but saved no record of its own
        test = ctx.artifacts.get("test")
        record = whitebox_record(
            wb, ctx.artifacts.get("clean_accuracy"), ctx.artifacts.get("imagenet")
        )
        record["dataset"] = record["dataset"] or str(getattr(test, "name", ""))
        save_chapter(ctx.out, "ch02", record)
    try:
        html, md = render_report(ctx.out, title="advx demo report")
    except InputError as e:
        ctx.console.print(f"[yellow]no report: {e}[/yellow]")
        return
    ctx.console.print(f"report: [bold]{html}[/bold]\nsummary: {md}")
    ctx.artifacts["report"] = {"html": str(html), "markdown": str(md)}
