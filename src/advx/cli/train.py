"""``advx train``: train a model of the zoo on a dataset and save its checkpoint."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from advx.cli._common import print_json, user_errors
from advx.errors import ConfigError


def parse_options(items: list[str]) -> dict[str, Any]:
    """``["channels=[16,32]", "dropout=0.1"]`` -> ``{"channels": [16, 32], "dropout": 0.1}``
    (values are JSON; anything that is not JSON is taken as a string)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def list_archs() -> None:
    """Print the registered architectures, their defaults and options."""
    from rich.console import Console
    from rich.table import Table

    from advx.models import ARCHS

    table = Table(title="architectures (advx train --model NAME)")
    for col in ("name", "kind", "description", "defaults", "options (--set KEY=VALUE)"):
        table.add_column(
            col, no_wrap=col == "name", min_width=max(map(len, ARCHS)) if col == "name" else None
        )
    for name, spec in sorted(ARCHS.items(), key=lambda kv: (kv[1].kind != "torch", kv[0])):
        defaults = ", ".join(f"{k}={v}" for k, v in spec.train_defaults.items())
        opts = ", ".join(f"{k}={v}" for k, v in spec.options().items())
        table.add_row(name, f"{spec.kind}/{spec.modality}", spec.description, defaults, opts)
    Console().print(table)


def train(
    data: str = typer.Option(
        "fashion-mnist", "--data", "-d", help="Dataset name (fashion-mnist, digits) or path."
    ),
    model: str = typer.Option("cnn", "--model", "-m", help="Architecture; see --list."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Checkpoint directory. Default: models/DATA-MODEL."
    ),
    epochs: int | None = typer.Option(None, help="Epochs (torch). Default: per architecture."),
    lr: float | None = typer.Option(None, help="Peak learning rate. Default: per architecture."),
    batch_size: int | None = typer.Option(None, help="Batch size. Default: 128."),
    seed: int = typer.Option(0, help="Seed for initialisation, data order and subsampling."),
    limit: int | None = typer.Option(None, help="Train on the first LIMIT training images."),
    max_train: int | None = typer.Option(
        None, help="Train on a random subsample of this size (default: per architecture)."
    ),
    threads: int | None = typer.Option(
        None, help="CPU threads for torch (and scikit-learn n_jobs). Default: torch's."
    ),
    options: list[str] = typer.Option(
        [], "--set", help="Architecture option KEY=VALUE, e.g. --set channels=[16,32]."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
    list_: bool = typer.Option(False, "--list", help="List architectures and exit."),
    adv: str | None = typer.Option(
        None,
        "--adv",
        help="Adversarial training: fgsm, fgsm-rs, pgd, trades (images); deepwordbug, pwws, "
        "textfooler, hotflip (text augmentation). See advx.defenses.",
    ),
    eps: str | None = typer.Option(None, help="--adv budget (linf), e.g. 0.1 or 8/255."),
    steps: int | None = typer.Option(None, help="--adv pgd/trades: inner PGD steps (default 10)."),
    step_size: str | None = typer.Option(
        None, help="--adv: inner step size (default 2.5*eps/steps; fgsm-rs 1.25*eps)."
    ),
    beta: float | None = typer.Option(
        None, help="--adv trades: weight of the KL term (default 6)."
    ),
    device: str | None = typer.Option(
        None,
        "--device",
        help="Where an image model trains: cpu, cuda, cuda:1, mps or auto. Default: CUDA "
        "when available, else CPU (under torchrun with NCCL, each process's own GPU). Text "
        "and scikit-learn models train on the CPU.",
    ),
) -> None:
    """Train MODEL on DATA, evaluate it on the test split and save it atomically.

    Example: advx train --data fashion-mnist --model cnn --epochs 3 --out models/fmnist-cnn

    Ctrl-C stops training and writes nothing (an existing checkpoint at OUT is kept).
    """
    if list_:
        list_archs()
        return
    with user_errors():
        import torch
        from rich.console import Console

        from advx.errors import InputError
        from advx.models import get_arch
        from advx.training import default_config, describe
        from advx.training import train as run_training

        spec = get_arch(model)
        arch_kwargs = parse_options(options)
        if threads is not None:
            if threads < 1:
                raise InputError(f"--threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)
            if spec.kind == "sklearn" and "n_jobs" in spec.options():
                arch_kwargs.setdefault("n_jobs", threads)
        config = default_config(
            model,
            data,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            limit=limit,
            max_train=max_train,
        )
        dest = out if out is not None else Path("models") / f"{Path(data).stem}-{model}"
        console = Console(stderr=True)
        from advx.defenses.distributed import close_world, init_world

        world = init_world()  # a single process unless launched by torchrun (then DDP)
        quiet = as_json or not world.is_main
        on_device = _device_kwargs(spec, device, world)
        try:
            with training_progress(console, model, kind=spec.kind, disable=quiet) as on_step:
                if adv is None:
                    if any(v is not None for v in (eps, steps, step_size, beta)):
                        raise ConfigError("--eps/--steps/--step-size/--beta need --adv")
                    result = run_training(
                        model, data, config=config, arch_kwargs=arch_kwargs, out=dest,
                        on_step=on_step, world=world, **on_device,
                    )  # fmt: skip
                else:
                    from advx.cli._common import parse_float
                    from advx.defenses.adversarial_training import run_adversarial_training

                    settings = {
                        "eps": None if eps is None else parse_float(eps), "steps": steps,
                        "step_size": None if step_size is None else parse_float(step_size),
                        "beta": beta,
                    }  # fmt: skip
                    result = run_adversarial_training(
                        adv, model, data, settings=settings, config=config,
                        arch_kwargs=arch_kwargs, out=dest, world=world, on_step=on_step,
                        **on_device,
                        on_check=None if quiet else lambda r: console.print(
                            f"epoch {r['epoch']}: held-out clean {r['clean_accuracy']:.1%}, "
                            f"PGD {r['pgd_accuracy']:.1%}"
                        ),
                    )  # fmt: skip
        except KeyboardInterrupt:
            typer.secho(
                f"interrupted: no checkpoint written ({dest} left as it was)",
                fg=typer.colors.YELLOW,
                err=True,
            )
            raise typer.Exit(code=130) from None
        finally:
            close_world(world)
        if not world.is_main:
            return
        if as_json:
            print_json(
                {
                    "path": str(result.path),
                    "arch": model,
                    "test_accuracy": result.test_accuracy,
                    **result.info,
                }
            )
        else:
            typer.echo(f"{model} on {describe(result)}")
            typer.echo(f"saved to {result.path}")


def _device_kwargs(spec: Any, device: str | None, world: Any) -> dict[str, Any]:
    """``{"device": ...}`` for a gradient-trained image model (default: CUDA when there is
    one; under torchrun with NCCL, this process's GPU); ``{}`` for models that train on the
    CPU (text, scikit-learn), which refuse any other ``--device``."""
    import os

    image_torch = spec.modality == "image" and spec.backend.fit is None
    if not image_torch:
        if device not in (None, "cpu"):
            raise ConfigError(
                f"--device {device}: {spec.name} models train on the CPU (drop --device)"
            )
        return {}
    if device is None and getattr(world, "backend", None) == "nccl":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return {"device": device or "auto"}


@contextmanager
def training_progress(
    console: Any, label: str, *, kind: str = "torch", disable: bool = False
) -> Iterator[Callable[[Any], None]]:
    """A rich progress bar for :func:`advx.training.fit`; yields its ``on_step`` callback.

    Torch models get a bar with steps, running loss and accuracy, images/s and time left;
    scikit-learn models (no steps to report) a spinner with the elapsed time.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = (
        [SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()]
        if kind == "sklearn"
        else [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.2%}"),
            TextColumn("{task.fields[ips]:,.0f} img/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ]
    )
    with Progress(*columns, console=console, disable=disable) as progress:
        task = progress.add_task(
            f"fitting {label}" if kind == "sklearn" else f"{label} epoch 1",
            total=None,
            loss=0.0,
            acc=0.0,
            ips=0.0,
        )

        def on_step(s: Any) -> None:
            progress.update(
                task,
                total=s.steps * s.epochs,
                completed=s.epoch * s.steps + s.step,
                description=f"{label} epoch {s.epoch + 1}/{s.epochs}",
                loss=s.loss,
                acc=s.accuracy,
                ips=s.images_per_s,
            )

        yield on_step


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command("train")(train)
