"""Where models run: one resolver for every ``--device`` / ``device=`` argument, and
mixed precision (``--amp``) where it helps.

* :func:`resolve_device` — ``None``/``"auto"`` -> CUDA when available, else CPU; ``"cpu"``,
  ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a :class:`torch.device` are checked to exist, with
  a clear :class:`~advx.errors.ConfigError` when they do not (never a crash deep inside an
  attack).
* :func:`autocast` — a context running eligible ops (matmul, convolution) in bfloat16
  (float16 on GPUs without bfloat16) on CUDA; a no-op elsewhere. bfloat16 keeps float32's
  exponent range, so input gradients do not underflow without loss scaling.

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> with autocast(torch.device("cpu"), enabled=True):  # no-op on CPU
    ...     pass
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from advx.errors import ConfigError


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """The :class:`torch.device` named by ``spec``.

    Args:
        spec: None or ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"``, ``"mps"``, or a :class:`torch.device`.

    Raises:
        ConfigError: the spec is malformed, or names a device this machine lacks (the
            message says what is available).
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "auto")):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = spec if isinstance(spec, torch.device) else torch.device(spec.strip().lower())
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(
            f"--device {spec!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {spec}: CUDA is not available here (torch {torch.__version__}, "
                f"built {'with' if torch.version.cuda else 'without'} CUDA); use --device cpu"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(
                f"--device {spec}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
            )
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"--device {spec}: Apple MPS is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise ConfigError(f"--device {spec}: unsupported device type; use auto, cpu or cuda")
    return dev


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype :func:`autocast` would use on ``device``; None where mixed
    precision is off (every device but CUDA)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def autocast(device: torch.device, *, enabled: bool = True) -> Iterator[torch.dtype | None]:
    """Mixed precision for the duration, on CUDA only; yields the dtype in use (None: off).

    Only ops that gain from it run in lower precision (autocast's own lists); inputs,
    perturbations and projections stay float32 because attacks keep their tensors in the
    input's dtype.
    """
    dtype = amp_dtype(device) if enabled else None
    if dtype is None:
        yield None
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield dtype


class Autocast(torch.nn.Module):
    """``module`` run under :func:`autocast` on ``device``; float32 logits out. For
    servers, whose requests run in worker threads a caller's autocast context does not
    reach (autocast state is per thread)."""

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        super().__init__()
        self.module = module
        self.device = device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, enabled=True):
            out: torch.Tensor = self.module(x)
        return out.float()
