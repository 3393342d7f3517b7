"""``advx transfer``: craft on source models, evaluate on target models, print the matrix.

Thin: parses options, opens models and data, calls
:func:`advx.evaluate.transfer.transfer_matrix`, prints a table or JSON, saves
``transfer.json`` for ``advx report``.
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import Any

import typer

from advx.cli._common import print_json, user_errors
from advx.cli._model_options import ModelArgs, model_options
from advx.errors import ConfigError, InputError


def _names(specs: list[str]) -> list[str]:
    """Short unique names for model specs (directory names, or host:port for URLs)."""
    out: list[str] = []
    for s in specs:
        base = (
            s.rstrip("/").rsplit("/", 1)[-1] if not s.startswith("http") else s.split("//", 1)[-1]
        )
        name = base or s
        k = 2
        while name in out:
            name = f"{base}#{k}"
            k += 1
        out.append(name)
    return out


def open_source(spec: str, name: str, model_args: ModelArgs | None = None) -> Any:
    """A source model: the loaded object of a model spec (torch module, the zoo's
    scikit-learn wrapper, an ONNX target); HTTP endpoints only answer queries."""
    if spec.startswith(("http://", "https://")):
        from advx.cli._targets import open_target

        return open_target(spec, name=name)
    from advx.models.external import open_model, spec_kind
    from advx.models.external_loaders import describe_missing

    if spec_kind(spec) is None:
        raise InputError(describe_missing(spec))
    if model_args is None:
        return open_model(spec)
    return open_model(spec, model_args.options, device=model_args.device)


def print_matrix(res: Any) -> None:
    """Rich table of a :class:`~advx.evaluate.transfer.TransferResult`."""
    from rich.console import Console
    from rich.table import Table

    def pct(v: Any) -> str:
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"

    cfg = res.config
    table = Table(
        title=f"transfer success ({cfg['attack']}, eps={cfg['eps']:g} {cfg['norm']}, n={cfg['n']}); "
        "rows craft, columns evaluate",
        title_justify="left",
    )
    table.add_column("source \\ target")
    for t in res.targets:
        table.add_column(t, justify="right")
    table.add_column("on itself", justify="right")
    table.add_column("route")
    for i, s in enumerate(res.sources):
        table.add_row(
            s, *[pct(v) for v in res.matrix[i]], pct(res.source_success[i]), res.routes.get(s, "")
        )
    console = Console()
    console.print(table)
    accs = ", ".join(f"{k} {pct(v)}" for k, v in res.clean_accuracy.items())
    console.print(f"clean accuracy: {accs}", style="dim")
    console.print("a cell counts only examples both models classify correctly", style="dim")


@model_options
def transfer(
    source: list[str] = typer.Option(
        [],
        "--source",
        "-s",
        help="Model to craft on (directory, TorchScript/ONNX file, module:function; repeatable).",
    ),
    target: list[str] = typer.Option(
        [],
        "--target",
        "-t",
        help="Model to evaluate on (as --source, or an http URL; repeatable).",
    ),
    attack: str = typer.Option(
        "pgd", "--attack", "-a", help="Attack slug for gradient sources (e.g. pgd, mi-fgsm)."
    ),
    eps: str = typer.Option(..., help="Budget, e.g. 0.1 or 8/255."),
    norm: str = typer.Option("linf", help="linf or l2."),
    steps: int | None = typer.Option(None, help="Iterations of the attack (when it has steps)."),
    settings: list[str] = typer.Option(
        [], "--set", help="Attack setting key=value (repeatable), e.g. --set diversity_prob=0.5."
    ),
    ensemble: bool = typer.Option(
        False, "--ensemble", help="Craft on the average logits of all sources (one row)."
    ),
    substitute: bool = typer.Option(
        False,
        "--substitute",
        help="Allow query-only sources (forests, kernel SVMs, URLs): craft on an MLP distilled "
        "from their labels of the training split.",
    ),
    n: int = typer.Option(1000, "--n", "-n", help="Number of examples (the first N of the split)."),
    batch_size: int = typer.Option(250, help="Examples per batch."),
    seed: int = typer.Option(0, help="Seed."),
    data: str | None = typer.Option(
        None, help="Data (dataset name or file); default: the first source's dataset."
    ),
    split: str = typer.Option("test", help="Split to evaluate on."),
    out: Path | None = typer.Option(
        None, help="Run directory for transfer.json (default runs/transfer/<time>)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object, no table."),
    *,
    model_args: ModelArgs,
) -> None:
    """Transfer matrix: craft on each source, evaluate on every target.

    A cell is the share of examples both models classify correctly whose adversarial version, crafted on the source, fools the target. Non-neural sources use documented routes (docs/TRANSFER.md).

    Example: advx transfer -s runs/cnn -s runs/mlp -t runs/mlp -t runs/tree --attack mi-fgsm --eps 0.1
    """
    with user_errors():
        if not source or not target:
            raise ConfigError("give at least one --source and one --target")
        from advx.cli._common import parse_float
        from advx.cli._targets import open_data, open_target, target_info
        from advx.cli.attack import build_settings
        from advx.evaluate.provenance import command_line
        from advx.evaluate.transfer import make_source, transfer_matrix

        eps_v = parse_float(eps)
        kw = build_settings(attack, {"steps": steps}, settings)
        kw.pop("eps", None)
        info = target_info(source[0])
        ds = open_data(data, info, split=split)
        train = open_data(data, info, split="train").x if substitute else None
        snames, tnames = _names(source), _names(target)
        srcs: dict[str, Any] = {}
        for spec, name in zip(source, snames, strict=True):
            model = open_source(spec, name, model_args)
            if ensemble:
                srcs[name] = model
            else:
                srcs[name] = make_source(
                    model, name=name, eps=eps_v, attack=attack, norm=norm, settings=kw,
                    input_shape=ds.input_shape, bounds=ds.bounds, num_classes=ds.num_classes,
                    substitute_data=train, seed=seed,
                )  # fmt: skip
        tgts = {
            name: open_target(spec, name=name, options=model_args.options, device=model_args.device)
            for spec, name in zip(target, tnames, strict=True)
        }
        with model_args.autocast():
            res = transfer_matrix(
                srcs, tgts, ds, eps=eps_v, attack=attack, settings=kw, norm=norm,
                n=min(n, len(ds)), batch_size=batch_size, seed=seed, ensemble=ensemble,
                meta={"command": command_line(), "sources": dict(zip(snames, source, strict=True)),
                      "targets": dict(zip(tnames, target, strict=True)),
                      "data": data or info.get("dataset")},
            )  # fmt: skip
        if out is None:
            out = Path("runs") / "transfer" / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = res.save(out)
    if json_out:
        print_json({**res.to_json(), "path": str(path)})
    else:
        print_matrix(res)
        typer.echo(f"saved {path} (render it with: advx report {out})")


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command("transfer")(transfer)
