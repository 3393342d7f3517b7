"""``advx report``: render a run directory into report.html and summary.md.

Reads only what runs saved (never recomputes an attack).
"""

from __future__ import annotations

from pathlib import Path

import typer

from advx.cli._common import print_json, user_errors


def report(
    run_dir: Path = typer.Argument(
        ...,
        metavar="RUN_DIR",
        help="An `advx attack`, `advx eval` or `advx transfer` run, the output of "
        "`advx demo`, or a directory of runs.",
    ),
    out: Path | None = typer.Option(None, help="Where to write the files (default RUN_DIR)."),
    title: str | None = typer.Option(None, help="Page title."),
    galleries: bool = typer.Option(
        True, "--galleries/--no-galleries", help="Draw example galleries from saved inputs."
    ),
    amplification: float | None = typer.Option(
        None,
        "--amplification",
        "--amplify",
        min=0.0,
        help="Multiply perturbations by this factor in example figures (default: per "
        "figure, the largest factor that does not clip; the factor is written on it).",
    ),
    open_: bool = typer.Option(False, "--open", help="Open the page in a web browser."),
    json_out: bool = typer.Option(False, "--json", help="Print the written paths as JSON."),
) -> None:
    """Render saved results as a self-contained HTML page and a Markdown summary.

    A demo directory reads as the story, one section per chapter; an `advx attack` run
    gets its full summary (numbers, examples, curve). Figures are embedded in the page
    and written to report-figures/ for the Markdown; nothing is recomputed.

    Example: advx report runs/attack/pgd --amplification 10 --open
    """
    from advx.report.html import render_report

    with user_errors():
        html, md = render_report(
            run_dir, out=out, title=title, galleries=galleries, amplification=amplification
        )
    if json_out:
        print_json({"html": str(html), "markdown": str(md)})
    else:
        typer.echo(f"wrote {html}\nwrote {md}")
    if open_:
        import webbrowser

        webbrowser.open(html.resolve().as_uri())


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command("report")(report)
