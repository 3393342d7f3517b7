"""``advx detect``: fit a detector for a saved model, and evaluate it against non-adaptive
and adaptive attacks.

Thin: opens the model and its data, calls :func:`advx.defenses.detectors.train_detector`
or :func:`advx.defenses.adaptive.evaluate_detector`, prints a table (or one JSON object).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from advx.cli._common import print_json, user_errors
from advx.cli._model_options import ModelArgs, model_options

detect_app = typer.Typer(
    name="detect",
    help="Reactive defence: fit a detector of adversarial inputs and attack the defended model.",
    no_args_is_help=True,
)


def _open_model(model_dir: str, model_args: ModelArgs) -> tuple[Any, dict[str, Any]]:
    from advx.cli._targets import target_info
    from advx.errors import CheckpointError, ConfigError
    from advx.models.adapter import Classifier
    from advx.models.external import open_model, spec_kind
    from advx.models.external_loaders import describe_missing

    if spec_kind(model_dir) is None:
        raise CheckpointError(describe_missing(model_dir))
    clf = open_model(model_dir, model_args.options, device=model_args.device)
    if not isinstance(clf, Classifier):
        raise ConfigError(
            f"{model_dir} gives a {type(clf).__name__}; detectors guard torch models (they "
            "need the model's features or gradients): give a checkpoint, a TorchScript file "
            "or a module:function returning an nn.Module"
        )
    return clf, target_info(model_dir)


@detect_app.command("train")
@model_options
def train_command(
    model_dir: str = typer.Argument(
        ...,
        metavar="MODEL",
        help="Model: a directory (from `advx train` / `advx import`), a TorchScript file, or "
        "a Python module:function returning the model.",
    ),
    detector: str = typer.Option(
        "squeeze", "--detector", help="Detector kind: squeeze, binary or mahalanobis."
    ),
    out: Path = typer.Option(..., "--out", help="Directory to write the detector into."),
    attack: str = typer.Option(
        "pgd", help="Attack the binary detector learns from (registered attack name)."
    ),
    eps: str = typer.Option("0.1", help="Budget of that attack (linf), e.g. 0.1 or 8/255."),
    fpr: float = typer.Option(0.05, help="False-positive rate on clean inputs for the threshold."),
    n: int = typer.Option(5000, "--n", help="Training examples used (first N of the train split)."),
    layer: str | None = typer.Option(
        None, help="binary/mahalanobis: input, penultimate or a module name of the model."
    ),
    squeezers: str | None = typer.Option(
        None, help="squeeze: comma-separated squeezers, e.g. bits:1,median:2."
    ),
    epochs: int | None = typer.Option(None, help="binary: training epochs of the detector."),
    data: str | None = typer.Option(
        None, help="Training data (dataset name or file); default: the model's dataset."
    ),
    seed: int = typer.Option(0, help="Seed of the split, the attack and the detector."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    *,
    model_args: ModelArgs,
) -> None:
    """Fit and calibrate a detector for MODEL_DIR; write it to --out.

    Example: advx detect train runs/demo/model --detector binary --eps 0.1 --out runs/det
    """
    with user_errors():
        from advx.cli._common import parse_float
        from advx.cli._targets import open_data
        from advx.defenses.detectors import train_detector

        clf, info = _open_model(model_dir, model_args)
        ds = open_data(data, info, split="train", limit=n)
        settings: dict[str, Any] = {}
        if layer is not None:
            settings["layer"] = layer
        if squeezers is not None:
            settings["squeezers"] = [s.strip() for s in squeezers.split(",") if s.strip()]
        if epochs is not None:
            settings["epochs"] = epochs
        with model_args.autocast():
            det = train_detector(
                clf, ds.x.to(clf.device), ds.y.to(clf.device), kind=detector, attack=attack, eps=parse_float(eps), fpr=fpr,
                seed=seed, **settings,
            )  # fmt: skip
        det.save(out)
        summary = {
            "detector": det.kind,
            "out": str(out),
            "settings": det.settings(),
            "threshold": det.threshold,
            "calibration": det.calibration,
        }
        if json_out:
            print_json(summary)
        else:
            typer.echo(
                f"{det.kind} detector written to {out}: threshold {det.threshold:.4g} "
                f"(clean false-positive rate {det.calibration['measured_fpr']:.1%} on "
                f"{det.calibration['n']} held-out examples)"
            )


def _pct(v: float | None) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def print_detector_report(rep: Any) -> None:
    """Rich table of a :class:`~advx.defenses.adaptive.DetectorReport`."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=f"{rep.kind} detector, eps={rep.eps:g}, {rep.n} test examples", title_justify="left"
    )
    table.add_column("")
    table.add_column("fools the model", justify="right")
    table.add_column("detected", justify="right")
    table.add_column("defended accuracy", justify="right")
    table.add_row(
        "clean",
        "—",
        f"{_pct(rep.clean_false_positive_rate)} (false alarms)",
        _pct(rep.defended_clean_accuracy),
    )
    rows = [("non-adaptive", rep.non_adaptive)]
    if rep.adaptive is not None:
        rows.append(("adaptive", rep.adaptive))
    for label, o in rows:
        table.add_row(
            label, _pct(o.fooled_model), _pct(o.detection_rate), _pct(o.defended_accuracy)
        )
    console.print(table)
    c = rep.cost
    console.print(
        f"bare model accuracy {_pct(rep.clean_accuracy)}; cost: "
        f"{c['detector_parameters']:,} detector parameters (+{c['detector_buffers']:,} stored "
        f"statistics) on top of {c['model_parameters']:,}, "
        f"{c['defended_ms_per_batch']:.1f} ms vs {c['model_ms_per_batch']:.1f} ms per batch of "
        f"{c['batch_size']} (x{c['latency_ratio']:.2f})"
    )


@detect_app.command("eval")
@model_options
def eval_command(
    model_dir: str = typer.Argument(
        ...,
        metavar="MODEL",
        help="Model: a directory, a TorchScript file or a module:function (as for train).",
    ),
    det_dir: Path = typer.Argument(..., help="Detector directory (from `advx detect train`)."),
    adaptive: bool = typer.Option(
        False, "--adaptive", help="Also run the adaptive attack (PGD through the detector, BPDA)."
    ),
    eps: str | None = typer.Option(
        None, help="Attack budget (linf); default the eps the detector was trained for, or 0.1."
    ),
    attack: str = typer.Option("pgd", help="Non-adaptive attack, crafted on the bare model."),
    steps: int = typer.Option(20, help="Steps of the non-adaptive attack."),
    adaptive_steps: int = typer.Option(100, help="Steps of the adaptive attack."),
    n: int = typer.Option(500, "--n", help="Test examples (first N of the split)."),
    data: str | None = typer.Option(
        None, help="Test data (dataset name or file); default: the model's dataset."
    ),
    split: str = typer.Option("test", help="Split of the dataset to evaluate on."),
    seed: int = typer.Option(0, help="Seed of the attacks' random starts."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object, no table."),
    *,
    model_args: ModelArgs,
) -> None:
    """Detection rate at the calibrated false-positive rate, and the defended system's
    accuracy, under a non-adaptive attack and (--adaptive) an adaptive one.

    Example: advx detect eval runs/demo/model runs/det --adaptive
    """
    with user_errors():
        from advx.cli._common import parse_float
        from advx.cli._targets import open_data
        from advx.defenses.adaptive import evaluate_detector
        from advx.defenses.detectors import load_detector

        clf, info = _open_model(model_dir, model_args)
        det = load_detector(det_dir, clf)
        ds = open_data(data, info, split=split, limit=n)
        budget = parse_float(eps) if eps is not None else float(det.calibration.get("eps", 0.1))
        with model_args.autocast():
            rep = evaluate_detector(
                clf, det, ds.x.to(clf.device), ds.y.to(clf.device), eps=budget, attack=attack, steps=steps, adaptive=adaptive,
                adaptive_steps=adaptive_steps, seed=seed,
            )  # fmt: skip
        if json_out:
            print_json(rep.to_json())
        else:
            print_detector_report(rep)


def register(app: typer.Typer) -> None:
    """Add ``advx detect`` to the CLI."""
    app.add_typer(detect_app, name="detect")
