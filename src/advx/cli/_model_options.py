"""The options every command that names a model shares, declared once.

``@model_options`` adds to a command: ``--input-shape``, ``--num-classes``, ``--bounds``,
``--mean``, ``--std``, ``--class-names`` (what a TorchScript file, an ONNX file or a
``module:factory`` may not carry; see :mod:`advx.models.external`), ``--device`` and
``--amp``. The command receives them parsed, as one :class:`ModelArgs` argument named
``model_args``; malformed values exit with a one-line error like every other option.

Example::

    @model_options
    def attack(model: str = typer.Argument(...), *, model_args: ModelArgs) -> None:
        target = open_target(model, options=model_args.options, device=model_args.device)
        with model_args.autocast():
            ...
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from advx.cli._common import parse_float
from advx.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from advx.models.external import ModelOptions

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS: dict[str, Any] = {
    "input_shape": typer.Option(
        None,
        "--input-shape",
        help="User models: shape of one input, e.g. 3,224,224 (TorchScript, module:factory "
        "returning an nn.Module; ONNX graphs with symbolic sizes).",
        rich_help_panel="Model",
    ),
    "num_classes": typer.Option(
        None,
        "--num-classes",
        help="User models: number of classes (default: found by one forward pass).",
        rich_help_panel="Model",
    ),
    "bounds": typer.Option(
        None,
        "--bounds",
        help="User models: valid input range lo,hi (default 0,1; e.g. 0,255). Write "
        "--bounds=-1,1 for a negative lo.",
        rich_help_panel="Model",
    ),
    "mean": typer.Option(
        None,
        "--mean",
        help="User models: per-channel mean advx subtracts before the model, e.g. "
        "0.485,0.456,0.406 (leave out if the model normalises itself).",
        rich_help_panel="Model",
    ),
    "std": typer.Option(
        None,
        "--std",
        help="User models: per-channel std advx divides by, e.g. 0.229,0.224,0.225.",
        rich_help_panel="Model",
    ),
    "class_names": typer.Option(
        None,
        "--class-names",
        help="User models: class names, comma-separated, or a file (one per line, or a JSON list).",
        rich_help_panel="Model",
    ),
    "device": typer.Option(
        "auto",
        "--device",
        help="Where the model runs: auto (CUDA when available, else CPU), cpu, cuda, cuda:N.",
        rich_help_panel="Model",
    ),
    "amp": typer.Option(
        False,
        "--amp/--no-amp",
        help="Mixed precision (bfloat16 autocast) on CUDA; no effect on CPU.",
        rich_help_panel="Model",
    ),
}
_TYPES: dict[str, Any] = {
    "input_shape": str | None,
    "num_classes": int | None,
    "bounds": str | None,
    "mean": str | None,
    "std": str | None,
    "class_names": str | None,
    "device": str,
    "amp": bool,
}


@dataclass(frozen=True)
class ModelArgs:
    """The parsed model options of one command invocation.

    Attributes:
        options: what user models may not carry (:class:`~advx.models.external.ModelOptions`).
        device: where models run (resolved: ``auto`` became cuda or cpu).
        amp: mixed precision requested.
    """

    options: ModelOptions
    device: torch.device
    amp: bool = False

    @contextmanager
    def autocast(self) -> Iterator[None]:
        """Mixed precision for the duration when ``--amp`` was given and the device is
        CUDA; a note on stderr when ``--amp`` has no effect."""
        from advx.devices import autocast

        if self.amp and self.device.type != "cuda":
            typer.secho(
                f"note: --amp has no effect on {self.device.type} (mixed precision is for CUDA)",
                err=True,
                fg=typer.colors.YELLOW,
            )
        with autocast(self.device, enabled=self.amp):
            yield


def _numbers(raw: str, what: str) -> tuple[float, ...]:
    parts = [p.strip() for p in raw.replace(" ", ",").split(",") if p.strip()]
    if not parts:
        raise ConfigError(f"{what} needs comma-separated numbers, got {raw!r}")
    try:
        return tuple(parse_float(p) for p in parts)
    except ConfigError:
        raise ConfigError(
            f"{what} needs comma-separated numbers (e.g. 0.5,0.5,0.5), got {raw!r}"
        ) from None


def parse_shape(raw: str) -> tuple[int, ...]:
    """``"3,224,224"`` or ``"3x224x224"`` -> ``(3, 224, 224)``."""
    parts = re.split(r"\s*[,x]\s*|\s+", raw.strip())
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--input-shape needs sizes like 3,224,224, got {raw!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise ConfigError(f"--input-shape needs positive sizes like 3,224,224, got {raw!r}")
    return shape


def parse_class_names(raw: str) -> tuple[str, ...]:
    """Class names from a comma list, or from a file (one per line, or a JSON list)."""
    path = Path(raw)
    if path.is_file():
        import json

        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            try:
                names = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(f"--class-names {raw}: not valid JSON ({e})") from None
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ConfigError(f"--class-names {raw}: the JSON must be a list of strings")
            return tuple(names)
        return tuple(line.strip() for line in text.splitlines() if line.strip())
    names = tuple(n.strip() for n in raw.split(","))
    if len(names) < 2 or any(not n for n in names):
        raise ConfigError(
            f"--class-names needs at least two comma-separated names, or a file; got {raw!r}"
        )
    return names


def parse_model_args(raw: dict[str, Any]) -> ModelArgs:
    """:class:`ModelArgs` from the raw option values (None = not given)."""
    from advx.devices import resolve_device
    from advx.models.external import ModelOptions

    bounds = None
    if raw.get("bounds") is not None:
        b = _numbers(raw["bounds"], "--bounds")
        if len(b) != 2:
            raise ConfigError(f"--bounds needs two numbers lo,hi, got {raw['bounds']!r}")
        bounds = (b[0], b[1])
    options = ModelOptions(
        input_shape=parse_shape(raw["input_shape"]) if raw.get("input_shape") else None,
        num_classes=raw.get("num_classes"),
        bounds=bounds,
        mean=_numbers(raw["mean"], "--mean") if raw.get("mean") else None,
        std=_numbers(raw["std"], "--std") if raw.get("std") else None,
        class_names=parse_class_names(raw["class_names"]) if raw.get("class_names") else None,
    )
    return ModelArgs(
        options=options,
        device=resolve_device(raw.get("device") or "auto"),
        amp=bool(raw.get("amp")),
    )


def model_options(fn: F) -> F:
    """Add the shared model options to a typer command ``fn`` that takes a keyword
    argument ``model_args: ModelArgs``."""
    from advx.cli._common import user_errors

    sig = inspect.signature(fn)
    if "model_args" not in sig.parameters:
        raise TypeError(f"{fn.__name__} must take model_args: ModelArgs")
    params = [p for p in sig.parameters.values() if p.name != "model_args"]
    extra = [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=_TYPES[name]
        )
        for name, opt in _OPTIONS.items()
    ]
    ordered = [p for p in params if p.kind != inspect.Parameter.KEYWORD_ONLY]
    ordered += [p for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY] + extra

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        raw = {name: kwargs.pop(name, None) for name in _OPTIONS}
        with user_errors():
            parsed = parse_model_args(raw)
        return fn(*args, model_args=parsed, **kwargs)

    annotations = {k: v for k, v in getattr(fn, "__annotations__", {}).items() if k != "model_args"}
    annotations.update(_TYPES)
    wrapper.__annotations__ = annotations
    wrapper.__signature__ = sig.replace(parameters=ordered)  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
