"""The model adapter: the only view of a torch model that attacks ever see.

It owns preprocessing (normalisation lives in its forward, so attacks work in the bounded
input space), the input bounds, the device, and the eval/train mode, which it can set for
the duration of an attack and restore exactly afterwards (STYLE.md §8).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from advx.errors import InputError


@contextmanager
def frozen_eval(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and frozen parameters for any module for the duration; the exact previous
    state (every submodule's ``training`` flag, every parameter's ``requires_grad``) is
    restored afterwards, even on error. What an attack or a detector needs while it
    differentiates through a model it must not change."""
    modes = [(m, m.training) for m in module.modules()]
    grads = [(p, p.requires_grad) for p in module.parameters()]
    try:
        module.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        yield module
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in grads:
            p.requires_grad_(flag)


class Classifier(nn.Module):
    """A classifier over bounded inputs: ``x in [lo, hi]^input_shape -> logits``.

    Args:
        net: the network; it receives *normalised* inputs ``(x - mean) / std``.
        input_shape: shape of one example, e.g. ``(1, 28, 28)``.
        num_classes: number of output logits.
        bounds: valid input domain ``(lo, hi)``; default ``(0, 1)``.
        mean, std: per-channel normalisation applied inside :meth:`forward` (optional).
        class_names: human-readable names, one per class (optional).

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> clf = Classifier(net, input_shape=(1, 2, 2), num_classes=3)
        >>> clf(torch.zeros(5, 1, 2, 2)).shape
        torch.Size([5, 3])
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self,
        net: nn.Module,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.bounds = (float(bounds[0]), float(bounds[1]))
        channels = self.input_shape[0] if len(self.input_shape) == 3 else 1
        stat_shape = (1, channels, 1, 1) if len(self.input_shape) == 3 else (1,)
        for what, stat in (("mean", mean), ("std", std)):
            if stat is not None and len(stat) not in (1, channels):
                raise InputError(
                    f"{what} has {len(stat)} values but input_shape {self.input_shape} has "
                    f"{channels} channel(s); give one value per channel (or one for all)"
                )
        if std is not None and any(float(v) <= 0 for v in std):
            raise InputError(f"std must be positive, got {list(std)}")
        m = torch.zeros(channels) if mean is None else torch.tensor(list(mean), dtype=torch.float32)
        s = torch.ones(channels) if std is None else torch.tensor(list(std), dtype=torch.float32)
        m, s = m.expand(channels).clone(), s.expand(channels).clone()  # one value: every channel
        self.register_buffer("mean", m.reshape(stat_shape))
        self.register_buffer("std", s.reshape(stat_shape))
        self.normalised = mean is not None or std is not None
        self.class_names = (
            tuple(class_names) if class_names else tuple(str(i) for i in range(self.num_classes))
        )
        # Set by advx.models.build; advx.models.save records them in model.json.
        self.arch: str | None = None
        self.arch_kwargs: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        """Device of the parameters (CPU if the net has none)."""
        for p in self.parameters():
            return p.device
        return self.mean.device

    def forward(self, x: Tensor) -> Tensor:  # (N, *input_shape) -> (N, C)
        if self.normalised:
            x = (x - self.mean) / self.std
        out: Tensor = self.net(x)
        return out

    @contextmanager
    def frozen_eval(self) -> Iterator[Classifier]:
        """Eval mode and frozen parameters for the duration; the exact previous state
        (every submodule's ``training`` flag, every parameter's ``requires_grad``) is
        restored afterwards, even on error."""
        with frozen_eval(self):
            yield self

    def num_parameters(self) -> int:
        """Total number of parameters of the network."""
        return sum(p.numel() for p in self.parameters())
