"""``advx demo``: the story the product tells, end to end, one chapter per module.

Chapters are modules of this package named ``chNN_<topic>`` defining ``TITLE: str`` and
``run(ctx: DemoContext) -> None``; they run in name order. A chapter may read what an
earlier one left in ``ctx.artifacts`` (e.g. the trained model's directory).
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console


@dataclass
class DemoContext:
    """State shared by the chapters of one demo run.

    Attributes:
        out: directory for everything the demo writes (``runs/demo`` by default).
        quick: digits instead of Fashion-MNIST, smaller everything (used by tests).
        console: where chapters print.
        artifacts: values handed from chapter to chapter (model dirs, results...).
        seed: the one seed everything derives from.
    """

    out: Path
    quick: bool = False
    console: Console = field(default_factory=Console)
    artifacts: dict[str, Any] = field(default_factory=dict)
    seed: int = 0


def chapters() -> list[Any]:
    """Chapter modules in the order they run."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("ch"))
    return [importlib.import_module(f"{__name__}.{n}") for n in names]


FOUNDATION = "ch01_train"  # trains or reuses the model the other chapters attack


def run(ctx: DemoContext, only: list[str] | None = None) -> None:
    """Run every chapter (or those whose module name contains one of ``only``).

    Chapter 1 always runs: the others read its model from ``ctx.artifacts``, and with
    its checkpoint already under ``ctx.out`` it only reloads it (about a second).
    """
    ctx.out.mkdir(parents=True, exist_ok=True)
    for chapter in chapters():
        name = chapter.__name__.rsplit(".", 1)[-1]
        if only and name != FOUNDATION and not any(o in name for o in only):
            continue
        ctx.console.rule(f"[bold]{chapter.TITLE}")
        t0 = time.perf_counter()
        chapter.run(ctx)
        ctx.console.print(f"[dim]({time.perf_counter() - t0:.1f}s)[/dim]")
