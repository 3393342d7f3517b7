"""``advx demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from advx.cli._common import user_errors


def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Directory for models, figures, report."),
    quick: bool = typer.Option(
        False, "--quick", help="Use the 8x8 digits and tiny settings (under a minute)."
    ),
    only: list[str] = typer.Option(
        [],
        "--only",
        help="Run only chapters whose name contains this, e.g. ch05 (repeatable); chapter 1, "
        "which trains or reloads the model, always runs.",
    ),
    seed: int = typer.Option(0, help="Seed for every random choice."),
) -> None:
    """Tell the whole story: train, attack, transfer, black-box, text, defend, report.

    Trains (or reuses) a Fashion-MNIST CNN and walks through each chapter, writing
    figures and an HTML page under OUT (about 7 minutes on a 2-core laptop CPU; a
    second run reuses the trained models). `--quick` uses digits and finishes in about a
    minute. Example: advx demo --quick --only ch05
    """
    from advx.demo import DemoContext, run

    with user_errors():
        run(DemoContext(out=out, quick=quick, seed=seed), only=only or None)


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command("demo")(demo)
