"""Chapter 9: one report holds all of it.

Renders ``OUT/report.html`` (self-contained), ``OUT/summary.md`` and ``OUT/report.json``
from what the earlier chapters saved under ``OUT`` (evaluation runs, the transfer matrix,
figures) and the numbers they left in ``ctx.artifacts``. Nothing is recomputed, and a
chapter that did not run (``advx demo --only ...``) simply has no section.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

TITLE = "9. The report"

_MAX_NUMBERS = 24


def _scalar(v: Any) -> bool:
    if isinstance(v, bool):
        return True
    if isinstance(v, (int, str)):
        return not isinstance(v, str) or len(v) <= 80
    return isinstance(v, float) and not math.isnan(v)


def _numbers(value: Any, prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """Scalar leaves of nested dicts (two levels), keyed by their dotted path."""
    out: dict[str, Any] = {}
    if _scalar(value):
        out[prefix or "value"] = value
    elif isinstance(value, Mapping) and depth < 3:
        for k, v in value.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            out.update(_numbers(v, key, depth + 1))
    return out


def notes_from(artifacts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One note per artifact holding plain numbers or strings (tensors, models, paths
    and figures are left to the sections built from files)."""
    notes: list[dict[str, Any]] = []
    for key, value in artifacts.items():
        if key in ("model", "test", "transfer"):
            continue
        nums = _numbers(value)
        if nums:
            items = list(nums.items())[:_MAX_NUMBERS]
            notes.append({"title": key.replace("_", " "), "numbers": dict(items)})
    transfer = artifacts.get("transfer")
    if isinstance(transfer, Mapping) and transfer.get("findings"):
        agree = sum(1 for f in transfer["findings"] if f["holds"])
        checked = sum(1 for f in transfer["findings"] if f["holds"] is not None)
        notes.append(
            {
                "title": "transfer vs Papernot et al. (2016)",
                "text": f"{agree} of {checked} qualitative findings of the paper hold on this run "
                "(details in the transfer section).",
            }
        )
    return notes


def run(ctx: Any) -> None:
    """Render the report of the whole demo run."""
    from advx.errors import InputError
    from advx.report.html import render_report

    notes = notes_from(ctx.artifacts)
    try:
        html, md = render_report(ctx.out, title="advx demo report", notes=notes)
    except InputError as e:
        ctx.console.print(f"[yellow]no report: {e}[/yellow]")
        return
    ctx.console.print(f"report: [bold]{html}[/bold]\nsummary: {md}")
    ctx.artifacts["report"] = {"html": str(html), "markdown": str(md)}
