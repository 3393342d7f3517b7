"""Projected Gradient Descent (and its no-random-start special case, BIM)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from advx.attacks._steps import (
    BOUNDARY_RULE,
    MADRY_RULE,
    check_steps,
    project_step,
    random_start,
    steepest_step,
    step_size_for,
)
from advx.attacks.base import Attack, Model
from advx.attacks.losses import Loss, get_loss, input_gradient, is_adversarial
from advx.attacks.registry import register
from advx.attacks.rng import ExampleRng
from advx.errors import InputError
from advx.targets import restrict


def pgd(
    model: Model,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    norm: str = "linf",
    bounds: tuple[float, float] = (0.0, 1.0),
    targets: Tensor | None = None,
    loss: str | Loss = "ce",
    random_init: bool = True,
    restarts: int = 1,
    early_stop: bool = False,
    l1_sparsity: float = 0.95,
    generator: ExampleRng | torch.Generator | None = None,
) -> Tensor:
    """Projected gradient ascent on ``loss`` inside the ``norm`` ball of radius ``eps``.

    Each step: ``x <- Proj_{B(x0, eps) ∩ bounds}(x + step_size * d)`` with ``d`` the
    steepest-ascent direction of the loss in ``norm`` (sign for linf, normalised gradient
    for l2, sparse sign for l1). ``restarts > 1`` reruns from new random starts the
    examples not yet fooled. With ``early_stop`` an example stops at the first iterate that
    fools the model (no extra passes: the check reuses the forward of the gradient step).

    Returns ``(N, ...)``: the last iterate, or the first fooling one.
    """
    lossf = get_loss(loss)
    rng = ExampleRng.coerce(generator, x.shape[0], x.device)
    best = x.detach().clone()
    fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for restart in range(restarts):
        todo = (~fooled).nonzero().flatten()
        if todo.numel() == 0:
            break
        x0, y0 = x[todo], y[todo]
        t0 = None if targets is None else targets[todo]
        m = restrict(model, todo)
        if random_init:
            x_adv = random_start(x0, eps, norm, bounds, rng.subset(todo))
        else:
            x_adv = x0.clone()
        active = torch.arange(todo.numel(), device=x.device)
        done = torch.zeros(todo.numel(), dtype=torch.bool, device=x.device)
        for _ in range(steps):
            xa, ya = x_adv[active], y0[active]
            ta = None if t0 is None else t0[active]
            logits, grad = input_gradient(restrict(m, active), xa, ya, ta, lossf)
            if early_stop:
                hit = is_adversarial(logits, ya, ta)
                if bool(hit.any()):
                    done[active[hit]] = True
                    keep = ~hit
                    active, xa, grad = active[keep], xa[keep], grad[keep]
                    if active.numel() == 0:
                        break
            step = xa + step_size * steepest_step(grad, norm, l1_sparsity=l1_sparsity)
            x_adv[active] = project_step(step, x0[active], eps, norm, bounds)
        if restarts > 1 and restart < restarts - 1:
            # one check per restart decides which examples need another run
            with torch.no_grad():
                check = ~done
                if bool(check.any()):
                    idx = check.nonzero().flatten()
                    done[idx] = is_adversarial(
                        restrict(m, idx)(x_adv[idx]), y0[idx], None if t0 is None else t0[idx]
                    )
        best[todo] = x_adv
        fooled[todo] = done
    return best


@register(
    "pgd", "Projected Gradient Descent, linf/l2/l1, random start, restarts (Madry et al. 2018)"
)
@dataclass(frozen=True, kw_only=True)
class PGD(Attack):
    """Projected Gradient Descent (Madry, Makelov, Schmidt, Tsipras & Vladu, ICLR 2018,
    "Towards Deep Learning Models Resistant to Adversarial Attacks").

    Args:
        steps: iterations (default 20).
        step_size: absolute step; or ``rel_step_size`` as a fraction of eps. Default
            ``2.5 * eps / steps`` (the paper's rule of thumb; the reference MNIST code uses
            0.01 with eps=0.3 and 40 steps, i.e. 1.33*eps/steps).
        random_init: start uniformly in the ball (paper: yes).
        restarts: random restarts; examples already fooled are not rerun.
        loss: ``"ce"`` (paper), ``"margin"`` (CW) or ``"dlr"``.
        l1_sparsity: for ``norm="l1"``, step only along coordinates whose gradient
            magnitude is in the top ``1 - l1_sparsity`` share (Tramer & Boneh 2019).
        early_stop: inherited; default True here stops an example at its first success.

    Example:
        >>> PGD(eps=0.1, steps=20)(target, x, y)                 # doctest: +SKIP
        >>> PGD(eps=2.0, norm="l2", steps=50)(target, x, y, targets="least-likely")  # doctest: +SKIP
    """

    name = "pgd"
    norms: ClassVar[tuple[str, ...]] = ("linf", "l2", "l1")
    step_rule: ClassVar[float] = MADRY_RULE  # default step: step_rule * eps / steps
    steps: int = 20
    step_size: float | None = None
    rel_step_size: float | None = None
    random_init: bool = True
    restarts: int = 1
    loss: str = "ce"
    l1_sparsity: float = 0.95

    def validate(self) -> None:
        check_steps(self.name, self.steps, self.step_size, self.rel_step_size)
        if self.restarts < 1:
            raise InputError(f"{self.name}: restarts must be >= 1, got {self.restarts}")
        if not 0.0 <= self.l1_sparsity < 1.0:
            raise InputError(f"{self.name}: l1_sparsity must be in [0, 1), got {self.l1_sparsity}")
        get_loss(self.loss)

    def step_for(self, eps: float) -> float:
        """The absolute step size used at ``eps``."""
        return step_size_for(
            eps, self.steps, step_size=self.step_size, rel_step_size=self.rel_step_size,
            rule=self.step_rule,
        )  # fmt: skip

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
        return pgd(
            model, x, y,
            eps=eps, step_size=self.step_for(eps), steps=self.steps, norm=self.norm,
            bounds=bounds, targets=targets, loss=self.loss, random_init=self.random_init,
            restarts=self.restarts, early_stop=self.early_stop, l1_sparsity=self.l1_sparsity,
            generator=generator,
        )  # fmt: skip


@register("bim", "Basic Iterative Method: PGD from the clean input (Kurakin et al. 2017)")
@dataclass(frozen=True, kw_only=True)
class BIM(PGD):
    """Basic Iterative Method (Kurakin, Goodfellow & Bengio, ICLR 2017 workshop,
    "Adversarial Examples in the Physical World"): iterated FGSM from the clean input,
    clipped to the eps-ball and the bounds after each step.

    The paper uses step 1/255 and ``min(eps*255 + 4, 1.25*eps*255)`` steps on [0,255]
    images; here the defaults are ``steps=10`` and ``step_size = eps / steps`` (the common
    library choice), no random start. Equal to :class:`PGD` with ``random_init=False``.
    """

    name = "bim"
    norms: ClassVar[tuple[str, ...]] = ("linf", "l2")
    step_rule: ClassVar[float] = BOUNDARY_RULE
    steps: int = 10
    random_init: bool = False
