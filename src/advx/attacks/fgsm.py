"""Fast Gradient Sign Method."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from advx.attacks._steps import project_step, steepest_step
from advx.attacks.base import Attack, Model
from advx.attacks.losses import Loss, get_loss, input_gradient
from advx.attacks.registry import register
from advx.attacks.rng import ExampleRng


def fgsm(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: str = "linf",
    bounds: tuple[float, float] = (0.0, 1.0),
    targets: Tensor | None = None,
    loss: str | Loss = "ce",
) -> Tensor:
    """One step of size ``eps`` along the steepest ascent direction of the loss.

    linf: ``x + eps * sign(grad)`` (Goodfellow et al. 2015); l2: ``x + eps * g/||g||``
    (the "fast gradient method"). Targeted: descend the loss of the target class.
    Returns ``(N, ...)`` clipped to ``bounds``.
    """
    _, grad = input_gradient(model, x, y, targets, get_loss(loss))
    # ce_loss/margin_loss are already signed for targeted attacks (maximise towards target)
    return project_step(x + eps * steepest_step(grad, norm), x, eps, norm, bounds)


@register("fgsm", "Fast Gradient Sign Method, one step (Goodfellow et al. 2015)")
@dataclass(frozen=True, kw_only=True)
class FGSM(Attack):
    """Fast Gradient Sign Method (Goodfellow, Shlens & Szegedy, ICLR 2015,
    "Explaining and Harnessing Adversarial Examples").

    One gradient evaluation per example: ``x' = clip(x + eps * sign(grad_x L(x, y)))``.
    On a linear model the step is exactly ``eps * sign(w_other - w_y)`` direction, the
    paper's argument that linearity in high dimension suffices. Supports ``linf`` (paper)
    and ``l2`` (normalised-gradient step, the "fast gradient method" of Kurakin et al.).
    The paper uses the training loss (cross-entropy); ``loss`` may be ``"margin"``.

    Example:
        >>> FGSM(eps=0.1)(target, x, y)          # doctest: +SKIP
        >>> FGSM(eps=[0.05, 0.1, 0.2])(target, x, y).success_matrix()  # doctest: +SKIP
    """

    name = "fgsm"
    loss: str = "ce"

    def run(
        self,
        model: Model,
        x: Tensor,
        y: Tensor,
        targets: Tensor | None,
        *,
        eps: float,
        bounds: tuple[float, float],
        generator: ExampleRng,
    ) -> Tensor:
        return fgsm(
            model, x, y, eps=eps, norm=self.norm, bounds=bounds, targets=targets, loss=self.loss
        )
