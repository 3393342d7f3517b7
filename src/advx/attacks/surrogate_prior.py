"""Surrogate-prior black-box attack: a local model's adversarial example is the starting
point, Square Attack's random search refines it with queries (a hybrid attack)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

from advx.attacks._steps import BOUNDARY_RULE, step_size_for
from advx.attacks.base import Attack, Model
from advx.attacks.mifgsm import mifgsm
from advx.attacks.registry import register
from advx.attacks.rng import ExampleRng
from advx.attacks.square import square
from advx.errors import InputError
from advx.models.adapter import frozen_eval
from advx.targets import Access


def surrogate_square(
    model: Model,
    x: Tensor,
    y: Tensor,
    *,
    surrogate: nn.Module,
    eps: float,
    norm: str = "linf",
    steps: int = 1000,
    prior_steps: int = 10,
    p_init: float = 0.4,
    bounds: tuple[float, float] = (0.0, 1.0),
    targets: Tensor | None = None,
    early_stop: bool = True,
    generator: ExampleRng | torch.Generator | None = None,
) -> Tensor:
    """Hybrid attack on a score model ``x (N, C, H, W) -> probabilities (N, K)``.

    1. *Prior* (no query): MI-FGSM (Dong et al. 2018; momentum 1, ``prior_steps`` steps of
       ``eps / prior_steps``, cross-entropy, no early stop, so the candidate is confidently
       wrong on the surrogate, which transfers better) on the white-box ``surrogate``
       ``x -> logits``, inside the ``eps``-ball.
    2. *Queries*: :func:`~advx.attacks.square.square` from that candidate instead of its
       stripes; its first query checks the candidate (transfer), the rest refine it with
       squares that start at a share ``p_init`` of the image, on Square's schedule. Each
       example stops when it fools the model or after ``steps`` queries.

    Returns ``(N, C, H, W)``: the best point found for each example.
    """
    gen = ExampleRng.coerce(generator, x.shape[0], x.device)  # per-example streams
    with torch.enable_grad(), frozen_eval(surrogate):
        start = mifgsm(
            surrogate, x, y, eps=eps, steps=prior_steps,
            step_size=step_size_for(eps, prior_steps, rule=BOUNDARY_RULE),
            norm=norm, bounds=bounds, targets=targets, loss="ce", generator=gen,
        )  # fmt: skip
    return square(
        model, x, y, eps=eps, norm=norm, steps=steps, p_init=p_init, bounds=bounds,
        targets=targets, early_stop=early_stop, init=start.detach(), generator=gen,
    )  # fmt: skip


@register(
    "surrogate-square",
    "Hybrid black-box: a surrogate's MI-FGSM start refined by Square (Suya et al. 2020)",
)
@dataclass(frozen=True, kw_only=True)
class SurrogateSquare(Attack):
    """Surrogate-prior black-box attack, in the family of Suya, Chi, Evans & Tian (USENIX
    Security 2020), "Hybrid Batch Attacks: Finding Black-box Adversarial Examples with
    Limited Queries": transfer candidates from local models seed an optimisation-based
    black-box attack. Needs scores from the target, and a local ``surrogate`` model the
    attacker owns (trained on its own data: it needs neither the target's weights nor
    its training labels). See :func:`surrogate_square`.

    Where this departs from the paper: the paper's local candidates come from PGD on an
    ensemble of local models and are refined with AutoZOOM or NES gradient estimation;
    here the candidate is MI-FGSM on one surrogate (momentum transfers better, Dong et al.
    CVPR 2018, "Boosting adversarial attacks with momentum") and Square's random search
    (Andriushchenko et al. 2020) refines it, which needs no gradient estimate and so
    spends no queries on one. The paper also fine-tunes the local models on the
    target's answers during a batch; this attack keeps the surrogate fixed. The same
    start-from-transfer idea is Yang et al. (NeurIPS 2020), "Learning black-box attackers
    with transferable priors and query feedback" (SimBA from a TIMI start).

    Args:
        surrogate: the local model: a torch module ``x -> logits`` over the same inputs
            (e.g. an :class:`~advx.models.adapter.Classifier`), or a checkpoint
            directory :func:`advx.models.load` reads.
        steps: query budget of the refinement per example, the transfer check included
            (default 1000).
        prior_steps: MI-FGSM iterations on the surrogate (default 10; free: no query).
        p_init: initial share of the image a refinement square covers (default 0.4; on the
            Fashion-MNIST fixture CNN 0.4-0.8 beat 0.02-0.2 by 1-3 points of success).

    Example:
        >>> sub = advx.models.load("models/fmnist-surrogate")  # doctest: +SKIP
        >>> create("surrogate-square", surrogate=sub, eps=0.1)(http_target, x, y)  # doctest: +SKIP
    """

    name = "surrogate-square"
    access = Access.SCORES
    norms: ClassVar[tuple[str, ...]] = ("linf", "l2")
    surrogate: nn.Module | str
    steps: int = 1000
    prior_steps: int = 10
    p_init: float = 0.4

    def validate(self) -> None:
        self.positive(steps=self.steps, prior_steps=self.prior_steps)
        if not 0.0 < self.p_init <= 1.0:
            raise InputError(f"surrogate-square: p_init must be in (0, 1], got {self.p_init}")
        if isinstance(self.surrogate, (str, Path)):
            from advx import models

            object.__setattr__(self, "surrogate", models.load(Path(self.surrogate)))
        if not isinstance(self.surrogate, nn.Module):
            raise InputError(
                "surrogate-square: surrogate must be a torch module x -> logits or a "
                f"checkpoint directory, got {type(self.surrogate).__name__}"
            )

    @property
    def config(self) -> dict[str, object]:
        """Settings as JSON: the surrogate is named by its class, not serialised."""
        return {
            "eps": self.eps, "norm": self.norm, "early_stop": self.early_stop,
            "seed": self.seed, "max_queries": self.max_queries,
            "surrogate": type(self.surrogate).__name__, "steps": self.steps,
            "prior_steps": self.prior_steps, "p_init": self.p_init,
        }  # fmt: skip

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
        sur = self.surrogate
        if not isinstance(sur, nn.Module):  # loaded in validate
            raise InputError("surrogate-square: surrogate not loaded")
        try:
            sur_dtype = next(sur.parameters()).dtype
        except StopIteration:
            sur_dtype = x.dtype
        out = surrogate_square(
            model, x, y, surrogate=_AsDtype(sur, sur_dtype), eps=eps, norm=self.norm,
            steps=self.steps, prior_steps=self.prior_steps, p_init=self.p_init,
            bounds=bounds, targets=targets, early_stop=self.early_stop, generator=generator,
        )  # fmt: skip
        return out


class _AsDtype(nn.Module):
    """Feeds the surrogate its own dtype and hands logits back in the caller's."""

    def __init__(self, net: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.net, self.dtype = net, dtype

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x.to(self.dtype)).to(x.dtype)
        return out
