"""``advx eval``: robust accuracy of a model under a suite of attacks (AutoAttack-style).

Thin: parses options, opens the model and its data, calls
:func:`advx.evaluate.evaluate`, prints a table (or one JSON object). Under ``torchrun``
each process evaluates its share of the batches and rank 0 merges and prints.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from pathlib import Path
from typing import Any

import typer

from advx.cli._common import print_json, user_errors
from advx.cli._model_options import ModelArgs, model_options
from advx.errors import ConfigError


def _list_suites(json_out: bool, norm: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from advx.evaluate.suites import SUITES, resolve

    rows: list[dict[str, Any]] = []
    for suite in SUITES.values():
        for r in resolve(suite, norm=norm):
            rows.append(
                {
                    "suite": suite.name,
                    "attack": r.step.label,
                    "available": r.available,
                    "reason": r.reason,
                    "note": r.step.note,
                }
            )
    if json_out:
        print_json(
            {
                "suites": {
                    s.name: {"description": s.description, **s.to_dict()} for s in SUITES.values()
                },
                "steps": rows,
            }
        )
        return
    console = Console()
    for suite in SUITES.values():
        table = Table(title=f"{suite.name}: {suite.description}", title_justify="left")
        table.add_column("attack")
        table.add_column("status")
        table.add_column("note", overflow="fold")
        for row in rows:
            if row["suite"] != suite.name:
                continue
            ok = bool(row["available"])
            status = "[green]available" if ok else f"[yellow]skipped: {row['reason']}"
            table.add_row(str(row["attack"]), status, str(row["note"]))
        console.print(table)


def _pct(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{100 * v:.1f}%"


def print_report(report: Any) -> None:
    """Rich table of an :class:`~advx.evaluate.summary.EvalReport`, then the flags."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    eps = report.eps
    table = Table(title=f"robust accuracy on {report.n} examples", title_justify="left")
    table.add_column("after")
    for e in eps:
        table.add_column(f"eps={e:g}", justify="right")
    table.add_row("clean", *[_pct(report.clean_accuracy)] * len(eps))
    for label, per_eps in report.per_attack.items():
        table.add_row(f"+ {label}", *[_pct(per_eps.get(e)) for e in eps])
    table.add_row(
        "[bold]robust (worst case)", *[f"[bold]{_pct(report.robust_accuracy[e])}" for e in eps]
    )
    console.print(table)
    for s in report.steps:
        if not s["available"]:
            console.print(f"[yellow]skipped {s['label']}[/yellow]: {s['reason']}")
    for label, per_eps in report.details.items():
        for e, d in per_eps.items():
            for err in d["errors"]:
                console.print(f"[red]{label} at eps={e:g} failed[/red]: {err}")
            esc = d.get("escalation")
            if esc:  # adaptive suite: where the expensive step ran, and why
                why = ", ".join(f"{k} {v}" for k, v in esc["reasons"].items() if v) or "none"
                console.print(
                    f"{label} at eps={e:g}: escalated {esc['escalated']} of "
                    f"{esc['candidates']} survivors (signs: {why}; --suite standard-full "
                    "runs it on all)"
                )
    fired = [f for f in report.flags if f["triggered"]]
    if fired:
        console.print(
            f"[bold red]{len(fired)} red flag(s)[/bold red] — the numbers above may be upper bounds:"
        )
        for f in fired:
            console.print(f"  [red]✗ {f['title']}[/red]: {f['detail']}")
            console.print(f"    {f['explanation']} (see {f['doc']})", style="dim")
    else:
        checked = sum(1 for f in report.flags if f["triggered"] is not None)
        console.print(f"[green]no red flags[/green] ({checked} checks ran; docs/FLAGS.md)")
    if not report.complete:
        console.print(
            f"[yellow]incomplete: {report.batches_done}/{report.batches_total} batches; "
            "continue with --resume[/yellow]"
        )
    console.print(f"results in {report.run_dir} ({report.seconds:.1f}s of compute)")


def _init_distributed() -> tuple[int, int]:
    """Join the torchrun process group (gloo on CPU) when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    return dist.get_rank(), dist.get_world_size()


@model_options
def eval_command(
    model: str | None = typer.Argument(
        None,
        metavar="MODEL",
        help="Model: a directory (from `advx train` / `advx import`), a TorchScript or ONNX "
        "file, or a Python module:function returning the model.",
    ),
    suite: str = typer.Option(
        "standard", help="Suite name (quick, standard, thorough; see --list) or a JSON file."
    ),
    eps: list[str] = typer.Option(
        [],
        "--eps",
        help="Budget(s), e.g. 0.1 or 8/255, finite; repeat for a sweep (--eps 0.05 --eps 0.1).",
    ),
    norm: str = typer.Option("linf", help="Threat-model norm: linf or l2."),
    n: int = typer.Option(
        1000,
        "--n",
        "-n",
        help="Number of examples (the first N of the split; more than it holds: all of "
        "it, with a warning). Under torchrun write -n: "
        "torchrun's own parser mistakes --n for one of its options.",
    ),
    batch_size: int = typer.Option(250, help="Examples per batch (unit of saving and resuming)."),
    seed: int = typer.Option(0, help="Seed every random choice derives from."),
    out: Path | None = typer.Option(
        None, help="Run directory (default runs/eval/<model>-<suite>-<time>)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out where it stopped."
    ),
    save_examples: bool = typer.Option(
        False, "--save-examples", help="Also save adversarial inputs (for report galleries)."
    ),
    probe: int = typer.Option(
        100, help="Probe batch size of the red-flag checks (0 turns them off)."
    ),
    data: str | None = typer.Option(
        None, help="Evaluation data (dataset name or file); default: the model's dataset."
    ),
    split: str = typer.Option("test", help="Split of the dataset to evaluate on."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object, no table."),
    list_: bool = typer.Option(False, "--list", help="List the suites and exit."),
    stop_after_batches: int | None = typer.Option(
        None, hidden=True, help="Testing hook: stop after this many batches, as if killed."
    ),
    *,
    model_args: ModelArgs,
) -> None:
    """Robust accuracy under a suite of attacks (worst case per example), with red-flag checks.

    Clean accuracy first; then each attack of the suite runs only on the examples still robust. Results stream to RUN_DIR/results.jsonl; --resume continues a killed run. Under torchrun, each process takes its share of the batches and rank 0 merges.

    Example: advx eval runs/demo/models/fashion-mnist-cnn --suite standard --eps 0.1 -n 1000
    """
    with user_errors():
        if list_:
            _list_suites(json_out, norm)
            return
        if model is None:
            raise ConfigError("MODEL is required (or use --list)")
        if not eps:
            raise ConfigError("give at least one --eps, e.g. --eps 0.1 (or 8/255)")
        if resume and out is None:
            raise ConfigError("--resume needs --out, the run directory to continue")
        from advx.cli._targets import open_data, open_target, target_info
        from advx.cli.attack import parse_eps, warn_n
        from advx.evaluate import evaluate

        rank, world = _init_distributed()
        try:
            target = open_target(model, options=model_args.options, device=model_args.device)
            info = target_info(model)
            ds = open_data(data, info, split=split)
            eps_values = [parse_eps(e) for e in eps]
            if rank == 0:
                warn_n(n, len(ds), f"{data or info.get('dataset')} ({split})")
            if out is None:
                stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
                name = Path(model).resolve().name
                out = Path("runs") / "eval" / f"{name}-{Path(suite).stem}-{stamp}"
                if world > 1:
                    raise ConfigError("under torchrun give --out so every rank uses one directory")
            meta = {
                "model": str(model),
                "data": data or info.get("dataset"),
                "split": split,
            }
            with model_args.autocast():
                report = _run(
                    target, ds, eps_values, suite=suite, norm=norm, n=min(n, len(ds)),
                    batch_size=batch_size, seed=seed, run_dir=out, resume=resume,
                    save_examples=save_examples, probe=probe, meta=meta,
                    stop_after_batches=stop_after_batches, show=rank == 0 and not json_out,
                    evaluate=evaluate,
                )  # fmt: skip
        finally:
            if world > 1:
                import torch.distributed as dist

                if dist.is_initialized():
                    dist.destroy_process_group()
        if rank != 0:
            return
        if json_out:
            print_json(report.to_json())
        else:
            print_report(report)
        if not report.complete:
            raise typer.Exit(code=3)


def _run(target: Any, ds: Any, eps: list[float], *, show: bool, evaluate: Any, **kw: Any) -> Any:
    """Call evaluate with a rich progress bar on stderr (rank 0, table mode only)."""
    if not show:
        return evaluate(target, ds, eps=eps, progress=None, **kw)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("evaluating", total=None)

        def progress(done: int, total: int, desc: str) -> None:
            bar.update(task, completed=done, total=total, description=desc)

        return evaluate(target, ds, eps=eps, progress=progress, **kw)


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command("eval")(eval_command)
