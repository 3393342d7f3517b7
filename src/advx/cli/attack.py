"""``advx attack``: run one registered attack on a saved model and report the numbers.

Settings map onto the attack's frozen dataclass: the generic options (``--steps``,
``--step-size``, ``--restarts``, ``--loss``...) apply only when the attack has that
setting, and ``--set key=value`` reaches any setting, typed by the dataclass field.
Unknown keys are a :class:`~advx.errors.ConfigError`, never silently ignored.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer

from advx.cli._common import parse_float, print_json, user_errors
from advx.cli._model_options import ModelArgs, model_options
from advx.errors import ConfigError

if TYPE_CHECKING:
    from advx.attacks.base import Attack

TARGET_HELPERS = ("random", "least-likely", "next")
_BOOL = {"true": True, "yes": True, "on": True, "1": True,
         "false": False, "no": False, "off": False, "0": False}  # fmt: skip


def parse_eps(raw: str) -> float:
    """An eps from the command line (``0.1``, ``8/255``): a finite number >= 0.

    ``inf`` is refused by every command alike: an unbounded attack is a minimal attack
    run without ``--eps`` (cw, deepfool, fab...), or eps equal to the width of the
    input bounds (1 on [0, 1] pixels) for linf."""
    value = parse_float(raw)
    if not math.isfinite(value) or value < 0:
        raise ConfigError(
            f"--eps {raw}: eps must be finite and >= 0; for an unbounded attack run a minimal "
            "attack (cw, deepfool, fab) without --eps, or give the width of the input bounds "
            "(e.g. --eps 1 for linf on [0, 1])"
        )
    return value


def warn_n(n: int, available: int, what: str) -> None:
    """Say on stderr that ``--n`` asks for more examples than ``what`` holds (all are
    used then)."""
    if n > available:
        typer.secho(
            f"warning: --n {n} is more than the {available} examples of {what}; using all "
            f"{available}",
            fg=typer.colors.YELLOW,
            err=True,
        )


def _parse_as(raw: str, tp: Any) -> Any:
    """Convert ``raw`` to type ``tp``; ValueError if it does not fit."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if raw.strip().lower() in ("none", "null") and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _parse_as(raw, a)
            except ValueError:
                continue
        raise ValueError(raw)
    if origin is typing.Literal:
        if raw in args:
            return raw
        raise ValueError(raw)
    if tp is bool:
        try:
            return _BOOL[raw.strip().lower()]
        except KeyError:
            raise ValueError(raw) from None
    if tp is int:
        return int(raw)
    if tp is float:
        try:
            return parse_float(raw)
        except ConfigError:
            raise ValueError(raw) from None
    if tp is str:
        return raw
    if origin in (tuple, list, collections.abc.Sequence):
        item = args[0] if args else str
        parts = [p for p in raw.split(",") if p.strip()]
        if not parts or (origin is not tuple and "," not in raw):
            raise ValueError(raw)  # a lone number is the scalar alternative of the union
        return tuple(_parse_as(p, item) for p in parts)
    raise ValueError(raw)


def attack_fields(cls: type) -> dict[str, Any]:
    """The settings of an attack class: field name -> resolved type."""
    try:
        hints = typing.get_type_hints(cls)
    except NameError:  # an annotation names a type-checking-only import
        hints = {}
    # unresolvable annotations: accept a bool, int, float or string, in that order
    loose = bool | int | float | str
    return {f.name: hints.get(f.name, loose) for f in dataclasses.fields(cls) if f.init}


def build_settings(slug: str, options: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Merge generic options (None = not given) and ``key=value`` assignments into the
    keyword arguments of attack ``slug``; :class:`ConfigError` on keys the attack lacks
    or values that do not parse as the field's type."""
    from advx.attacks import get

    entry = get(slug)
    fields = attack_fields(entry.cls)
    valid = ", ".join(sorted(fields))
    settings: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if key not in fields:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"{flag} does not apply to attack {slug!r}; its settings: {valid}")
        settings[key] = value
    for item in assignments:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        if key not in fields:
            raise ConfigError(f"attack {slug!r} has no setting {key!r}; its settings: {valid}")
        try:
            settings[key] = _parse_as(raw, fields[key])
        except ValueError:
            raise ConfigError(
                f"--set {key}={raw}: expected a value of type {fields[key]}"
            ) from None
    return settings


def _cls(entry: Any) -> type[Attack]:
    """The attack class of a registry entry (typed)."""
    return cast("type[Attack]", entry.cls)


def _list_attacks(json_out: bool) -> None:
    from rich.console import Console

    from advx.attacks import entries

    rows: list[dict[str, Any]] = [
        {
            "slug": e.slug,
            "access": _cls(e).access.name.lower(),
            "norms": list(_cls(e).norms),
            "minimal": bool(_cls(e).minimal),
            "summary": e.summary,
        }
        for e in entries()
    ]
    if json_out:
        print_json({"attacks": rows})
        return
    console = Console(soft_wrap=True)  # one line per attack, greppable
    width = max(len(r["slug"]) for r in rows)
    for r in rows:
        console.print(
            f"[bold]{r['slug']:<{width}}[/bold]  {r['access']:<9}  {','.join(r['norms']):<11}  "
            f"{r['summary']}",
            highlight=False,
        )


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    """JSON has no inf/NaN: unbounded eps (minimal attacks) and undefined values -> None."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in d.items()}


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if pct:
        return f"{100 * v:.1f}%"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@model_options
def attack(
    model: str | None = typer.Argument(
        None,
        metavar="MODEL",
        help="Model directory (as written by `advx train` or `advx import`), a pretrained "
        "ImageNet model (efficientnet-lite0, -lite1, -lite2), a TorchScript or ONNX file, a "
        "Python module:function (or file.py:function) returning the model, or the URL of a "
        "model server speaking the Open Inference Protocol (advx serve, MLServer...).",
    ),
    model_name: str | None = typer.Option(
        None,
        "--model-name",
        help="URL only: the model's name on the server (default: its only model).",
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="ADVX_API_KEY", help="URL only: the server's API key."
    ),
    labels_only: bool = typer.Option(
        False,
        "--labels-only",
        help="URL only: ask the server for labels only (decision-based attacks).",
    ),
    attack_slug: str = typer.Option("pgd", "--attack", "-a", help="Attack slug (--list)."),
    eps: str | None = typer.Option(
        None,
        help="Budget in the norm, e.g. 0.1 or 8/255 (optional for minimal attacks); finite "
        "(inf is refused, as by advx eval).",
    ),
    norm: str | None = typer.Option(None, help="linf, l2, l1 or l0 (default: the attack's)."),
    steps: int | None = typer.Option(None, help="Iterations (attacks that iterate)."),
    step_size: float | None = typer.Option(None, help="Absolute step size."),
    rel_step_size: float | None = typer.Option(None, help="Step size as a fraction of eps."),
    restarts: int | None = typer.Option(None, help="Random restarts."),
    loss: str | None = typer.Option(None, help="Loss: ce, margin or dlr."),
    max_queries: int | None = typer.Option(None, help="Per-example query budget."),
    settings: list[str] = typer.Option(
        [], "--set", help="Any attack setting as key=value (repeatable), e.g. --set steps=50."
    ),
    n: int = typer.Option(
        1000,
        "--n",
        help="Number of examples (the first N of the split); more than the split holds: "
        "all of it, with a warning.",
    ),
    batch_size: int = typer.Option(250, help="Examples attacked per batch."),
    targets: str | None = typer.Option(
        None,
        help="Targeted attack: random, least-likely, next, or one class (name or index; "
        "examples of that class are left out). Default: untargeted.",
    ),
    seed: int = typer.Option(0, help="Seed of the attack's random choices."),
    early_stop: bool = typer.Option(
        True, "--early-stop/--no-early-stop", help="Stop each example at its first success."
    ),
    data: str | None = typer.Option(
        None, help="Evaluation data (dataset name or file); default: the model's dataset."
    ),
    split: str = typer.Option("test", help="Split of the dataset to attack."),
    images: str | None = typer.Option(
        None,
        "--images",
        help="Your own photos instead of --data: a folder, file or glob ('shots/*.jpg') of "
        "JPEG/PNG images, resized and centre-cropped to the model's input; each is labelled "
        "with the model's own prediction (so clean accuracy is 100% by definition).",
    ),
    out: Path | None = typer.Option(
        None, help="Run directory for results, summary.json and examples.png."
    ),
    figure_k: int = typer.Option(6, "--figure-k", help="Rows in examples.png."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object, no table."),
    list_: bool = typer.Option(False, "--list", help="List the attacks and exit."),
    *,
    model_args: ModelArgs,
) -> None:
    """Attack a model with one attack and report clean/robust accuracy and costs.

    Example: advx attack runs/demo/model --attack pgd --eps 0.1 --steps 20

    Example: advx attack efficientnet-lite0 --images photos/ --targets ostrich --eps 4/255

    Your own model: advx attack net.pt --input-shape 1,8,8 --data digits (TorchScript; also
    net.onnx, mymodels.py:make; see the README, "Attack your own model").
    """
    with user_errors():
        if list_:
            _list_attacks(json_out)
            return
        if model is None:
            raise ConfigError("MODEL is required (or use --list)")
        options: dict[str, Any] = {
            "eps": None if eps is None else parse_eps(eps),
            "norm": norm,
            "steps": steps,
            "step_size": step_size,
            "rel_step_size": rel_step_size,
            "restarts": restarts,
            "loss": loss,
            "max_queries": max_queries,
            "seed": seed,
            "early_stop": early_stop,
        }
        run_attack(
            model,
            attack_slug,
            build_settings(attack_slug, options, settings),
            n=n,
            batch_size=batch_size,
            targets=targets,
            data=data,
            split=split,
            out=out,
            figure_k=figure_k,
            json_out=json_out,
            model_name=model_name,
            api_key=api_key,
            labels_only=labels_only,
            images=images,
            model_args=model_args,
        )


def _target_labels(spec: str | None, class_names: tuple[str, ...]) -> tuple[Any, int | None]:
    """(targets argument for the attack, fixed class or None)."""
    if spec is None or spec.lower() == "none":
        return None, None
    if spec in TARGET_HELPERS:
        return spec, None
    from advx.attacks.base import class_index
    from advx.errors import InputError

    try:
        fixed = class_index(spec, class_names)  # case-insensitive; close matches on error
    except InputError as e:
        raise ConfigError(f"--targets: {e}") from None
    if not 0 <= fixed < len(class_names):
        raise ConfigError(f"--targets {spec}: the model has classes 0..{len(class_names) - 1}")
    return None, fixed


def _open_images(images: str | None, target: Any) -> Any:
    """``--images`` (or, with None, the bundled ``photos``) at the target's resolution."""
    from advx.data.photos import load_images, load_photos

    shape = tuple(target.input_shape)
    if len(shape) != 3 or shape[0] != 3 or shape[1] != shape[2]:
        raise ConfigError(
            f"--images needs a model taking square RGB images (3, S, S); this one takes {shape}"
        )
    if images is None:
        return load_photos(size=shape[1])
    return load_images(images, size=shape[1], model=target)


def run_attack(
    model: str,
    slug: str,
    settings: dict[str, Any],
    *,
    n: int,
    batch_size: int,
    targets: str | None,
    data: str | None,
    split: str,
    out: Path | None,
    figure_k: int,
    json_out: bool,
    model_name: str | None = None,
    api_key: str | None = None,
    labels_only: bool = False,
    images: str | None = None,
    model_args: ModelArgs | None = None,
) -> dict[str, Any]:
    """Body of ``advx attack`` after option parsing; returns the summary dict."""
    import time

    from rich.console import Console
    from rich.table import Table

    from advx.attacks import AttackResult, attack_dataset, create, get
    from advx.attacks.dataset import clear_parts
    from advx.cli._targets import open_data, open_target, target_info
    from advx.evaluate.identity import run_identity
    from advx.io import atomic_write_text
    from advx.jsonio import dumps
    from advx.metrics import summary
    from advx.targets import Access

    if n < 1 or batch_size < 1:
        raise ConfigError("--n and --batch-size must be >= 1")
    entry = get(slug)
    if isinstance(settings.get("eps"), tuple):
        raise ConfigError("advx attack takes a single eps; use advx evaluate for eps sweeps")
    atk = create(slug, **settings)
    from advx.cli._model_options import parse_model_args
    from advx.models.external import default_name, require_access

    margs = model_args or parse_model_args({"device": "cpu"})
    target = open_target(
        model, model_name=model_name, api_key=api_key, labels_only=labels_only,
        options=margs.options, device=margs.device,
    )  # fmt: skip
    need = _cls(entry).access
    require_access(target, need, what=f"attack {slug!r}", spec=model)
    info = target_info(model, model_name=model_name, api_key=api_key)
    helper, fixed = _target_labels(targets, target.class_names)
    if images is not None:
        if data is not None:
            raise ConfigError("give either --data or --images, not both")
        ds = _open_images(images, target)
    else:
        ds = open_data(data, info, split=split)
        if ds.name == "photos" and ds.input_shape != target.input_shape:
            ds = _open_images(None, target)  # the bundled photos at the model's resolution
    x, y = ds.x, ds.y
    if fixed is not None:
        keep = y != fixed
        x, y = x[keep], y[keep]
    warn_n(n, len(y), f"{ds.name} ({split})")
    x, y = x[:n], y[:n]
    run_dir = (
        out
        or Path("runs")
        / "attack"
        / f"{default_name(model)}-{slug}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    # the library's batching path: progress, per-example seeds (the batch size does not
    # change the result), each finished batch saved so Ctrl-C loses only the one in flight
    with margs.autocast():
        result = cast(
            AttackResult,  # one eps (checked above): never a sweep
            attack_dataset(
                atk, target, (x, y), targets=fixed if fixed is not None else helper,
                batch_size=batch_size, progress=not json_out, out=run_dir,
            ),
        )  # fmt: skip
    stats = _finite(summary(result))
    result.save(run_dir)
    clear_parts(run_dir)
    files = {"result": "result.safetensors", "summary": "summary.json"}
    if len(target.input_shape) == 3 and target.input_shape[0] in (1, 3) and result.attacked.any():
        from advx.report.figures import adversarial_figure, save_examples

        adversarial_figure(x, result, target.class_names, k=figure_k, path=run_dir / "examples.png")
        files["figure"] = "examples.png"
        files["examples"] = save_examples(x, result, run_dir, k=max(figure_k, 8)).name
    record = {
        **stats,
        "model": str(model),
        "data": ds.name,
        "labels": "model predictions" if images is not None else "dataset",
        "split": split,
        "targets": targets,
        "access": need.name.lower(),
        "class_names": list(target.class_names),
        "config": atk.config,
        "files": files,
        "identity": run_identity(
            target,
            lambda a, b: (x[a:b], y[a:b]),
            n=len(y),
            data_name=ds.name,
            split=split,
            indices=f"first {len(y)}" + (f" not of class {fixed}" if fixed is not None else ""),
        ),
    }
    atomic_write_text(run_dir / "summary.json", dumps(record, indent=2, default=str))
    if json_out:
        print_json({**stats, "out": str(run_dir)})
        return stats
    unit = "passes" if need == Access.GRADIENTS else "queries"
    console = Console()
    console.print(f"[bold]{slug}[/bold] on {Path(model).name} ({ds.name}, {len(y)} examples)")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    d = result.threat.norm
    for label, value in (
        ("clean accuracy", _fmt(stats["clean_accuracy"], pct=True)),
        ("robust accuracy", _fmt(stats["robust_accuracy"], pct=True)),
        ("success rate", _fmt(stats["success_rate"], pct=True)),
        (f"median distance ({d})", _fmt(stats["median_distance"])),
        (f"max distance ({d})", _fmt(stats["max_distance"])),
        (f"mean {unit} / example", _fmt(stats["mean_queries"])),
        (f"median {unit} / example", _fmt(stats["median_queries"])),
        ("seconds", f"{stats['seconds']:.2f}"),
    ):
        table.add_row(label, value)
    console.print(table)
    console.print(f"[dim]wrote {run_dir}[/dim]")
    return stats


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command("attack")(attack)
