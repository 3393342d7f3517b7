"""Per-example attack objectives, all written as quantities the attacker *maximises*.

Each takes logits ``(N, C)``, true labels ``(N,)`` and optional target labels ``(N,)``
and returns ``(N,)``. Targeted versions push towards the target class.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from advx.errors import InputError

Loss = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]


def _other_max(logits: Tensor, label: Tensor) -> Tensor:
    """Largest logit among classes other than ``label``: ``(N,)``."""
    masked = logits.scatter(1, label.unsqueeze(1), float("-inf"))
    return masked.amax(dim=1)


def ce_loss(logits: Tensor, y: Tensor, targets: Tensor | None = None) -> Tensor:
    """Cross-entropy of the true class (untargeted) or minus that of the target class."""
    if targets is None:
        return F.cross_entropy(logits, y, reduction="none")
    return -F.cross_entropy(logits, targets, reduction="none")


def margin_loss(logits: Tensor, y: Tensor, targets: Tensor | None = None) -> Tensor:
    """Carlini-Wagner margin on logits: ``max_{j!=y} z_j - z_y`` (positive = fooled);
    targeted: ``z_t - max_{j!=t} z_j``."""
    if targets is None:
        return _other_max(logits, y) - logits.gather(1, y.unsqueeze(1)).squeeze(1)
    return logits.gather(1, targets.unsqueeze(1)).squeeze(1) - _other_max(logits, targets)


def dlr_loss(logits: Tensor, y: Tensor, targets: Tensor | None = None) -> Tensor:
    """Difference of Logits Ratio (Croce & Hein 2020), invariant to shift and scale of
    the logits. Untargeted: ``-(z_y - max_{j!=y} z_j) / (z_pi1 - z_pi3)``; targeted:
    ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` with ``z_pi`` the sorted logits.
    Needs at least 3 classes (4 when targeted)."""
    need = 3 if targets is None else 4
    if logits.shape[1] < need:
        raise InputError(f"DLR loss needs at least {need} classes, model has {logits.shape[1]}")
    z_sorted, _ = logits.sort(dim=1, descending=True)
    z_y = logits.gather(1, y.unsqueeze(1)).squeeze(1)
    if targets is None:
        num = z_y - _other_max(logits, y)
        den = z_sorted[:, 0] - z_sorted[:, 2] + 1e-12
    else:
        z_t = logits.gather(1, targets.unsqueeze(1)).squeeze(1)
        num = z_y - z_t
        den = z_sorted[:, 0] - 0.5 * (z_sorted[:, 2] + z_sorted[:, 3]) + 1e-12
    return -num / den


LOSSES: dict[str, Loss] = {"ce": ce_loss, "margin": margin_loss, "cw": margin_loss, "dlr": dlr_loss}


def get_loss(loss: str | Loss) -> Loss:
    """A loss by name (``ce``, ``margin``/``cw``, ``dlr``) or a callable passed through."""
    if callable(loss):
        return loss
    try:
        return LOSSES[loss]
    except KeyError:
        raise InputError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}") from None


def is_adversarial(logits_or_labels: Tensor, y: Tensor, targets: Tensor | None) -> Tensor:
    """Bool ``(N,)``: prediction differs from ``y`` (untargeted) or equals the target."""
    pred = logits_or_labels.argmax(dim=1) if logits_or_labels.dim() == 2 else logits_or_labels
    return pred != y if targets is None else pred == targets


def input_gradient(
    model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, targets: Tensor | None, loss: Loss
) -> tuple[Tensor, Tensor]:
    """Logits at ``x`` and the gradient of ``sum(loss)`` w.r.t. ``x`` (via autograd.grad,
    so no parameter ``.grad`` is touched)."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    value = loss(logits, y, targets).sum()
    (grad,) = torch.autograd.grad(value, x)
    return logits.detach(), grad
