"""Momentum Iterative FGSM, optionally with input diversity (MI-FGSM, DI-FGSM)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from advx.attacks._steps import (
    BOUNDARY_RULE,
    check_steps,
    project_step,
    steepest_step,
    step_size_for,
)
from advx.attacks.base import Attack, Model
from advx.attacks.losses import Loss, get_loss, is_adversarial
from advx.attacks.registry import register
from advx.attacks.rng import ExampleRng
from advx.errors import InputError
from advx.targets import exhausted, restrict
from advx.threat import norm_of, per_example


def input_diversity(
    x: Tensor, prob: float, resize_rate: float, generator: ExampleRng | torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Random shrink-and-pad of images ``(N, C, H, W)`` (Xie et al. 2019), differentiable.

    Each example is, with probability ``prob``, resized (nearest neighbour) to a random
    ``s x s'`` with ``s`` in ``[ceil(resize_rate * H), H)`` and zero-padded back to
    ``H x W`` at a random offset. Every choice is drawn per example (the reference code
    draws one size and offset per batch; per example keeps results independent of the
    batch). Returns ``(x_transformed, applied)`` with ``applied`` a bool ``(N,)`` mask of
    the examples that were transformed.
    """
    n, c, h, w = x.shape
    u = ExampleRng.coerce(generator, n, x.device).rand((4,), dtype=torch.float64)  # (n, 4)
    applied = u[:, 0] < prob
    lo_h, lo_w = math.ceil(resize_rate * h), math.ceil(resize_rate * w)
    if not bool(applied.any()) or lo_h >= h or lo_w >= w:
        return x, torch.zeros(n, dtype=torch.bool, device=x.device)
    sh = lo_h + (u[:, 1] * (h - lo_h)).long()  # (n,) new height and width
    sw = lo_w + (u[:, 1] * (w - lo_w)).long()
    top = (u[:, 2] * (h - sh + 1)).long().clamp_max(h - sh)
    left = (u[:, 3] * (w - sw + 1)).long().clamp_max(w - sw)
    r = torch.arange(h, device=x.device) - top[:, None]  # (n, H) row inside the small image
    q = torch.arange(w, device=x.device) - left[:, None]  # (n, W)
    src_r = (r.clamp_min(0) * h // sh[:, None]).clamp_max(h - 1)  # nearest source row
    src_c = (q.clamp_min(0) * w // sw[:, None]).clamp_max(w - 1)
    out = x.gather(2, src_r[:, None, :, None].expand(n, c, h, w))
    out = out.gather(3, src_c[:, None, None, :].expand(n, c, h, w))
    inside = ((r >= 0) & (r < sh[:, None]))[:, None, :, None] & ((q >= 0) & (q < sw[:, None]))[
        :, None, None, :
    ]
    padded = out * inside.to(x.dtype)
    return torch.where(applied.view(-1, 1, 1, 1), padded, x), applied


def mifgsm(
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
    decay: float = 1.0,
    diversity_prob: float = 0.0,
    resize_rate: float = 0.9,
    early_stop: bool = False,
    generator: ExampleRng | torch.Generator | None = None,
) -> Tensor:
    """Momentum iterative gradient ascent on ``loss`` (Dong et al. 2018, Algorithm 1).

    From ``g_0 = 0``, ``x_0 = x``: ``g_{t+1} = decay * g_t + grad / ||grad||_1`` and
    ``x_{t+1} = Proj(x_t + step_size * d(g_{t+1}))`` with ``d`` the steepest direction in
    ``norm`` (sign for linf, ``g/||g||_2`` for l2). With ``diversity_prob > 0`` the
    gradient is taken through :func:`input_diversity` (DI-FGSM; images only). With
    ``early_stop`` an example stops once an untransformed iterate fools the model.

    Returns ``(N, ...)`` adversarial inputs inside the ball and the bounds.
    """
    lossf = get_loss(loss)
    gen = ExampleRng.coerce(generator, x.shape[0], x.device)
    x_adv = x.detach().clone()
    g = torch.zeros_like(x)
    active = torch.arange(x.shape[0], device=x.device)
    for _ in range(steps):
        active = active[~exhausted(restrict(model, active), active.numel())]
        if active.numel() == 0:
            break
        xa = x_adv[active].requires_grad_(True)
        ya, ta = y[active], None if targets is None else targets[active]
        seen, transformed = xa, torch.zeros(active.numel(), dtype=torch.bool, device=x.device)
        if diversity_prob > 0:
            seen, transformed = input_diversity(xa, diversity_prob, resize_rate, gen.subset(active))
        logits = restrict(model, active)(seen)
        (grad,) = torch.autograd.grad(lossf(logits, ya, ta).sum(), xa)
        if early_stop:
            hit = is_adversarial(logits.detach(), ya, ta) & ~transformed.to(x.device)
            if bool(hit.any()):
                keep = ~hit
                active, xa, grad, ya = active[keep], xa[keep], grad[keep], ya[keep]
                if active.numel() == 0:
                    break
        l1 = per_example(norm_of(grad, "l1").clamp_min(1e-12), x)
        g[active] = decay * g[active] + grad / l1
        step = xa.detach() + step_size * steepest_step(g[active], norm)
        x_adv[active] = project_step(step, x[active], eps, norm, bounds)
    return x_adv


@register("mi-fgsm", "Momentum Iterative FGSM, optional input diversity (Dong et al. 2018)")
@dataclass(frozen=True, kw_only=True)
class MIFGSM(Attack):
    """Momentum Iterative FGSM (Dong, Liao, Pang, Su, Zhu, Hu & Li, CVPR 2018, "Boosting
    Adversarial Attacks with Momentum"), with the optional input diversity of DI-FGSM
    (Xie, Zhang, Zhou, Bai, Wang, Ren & Yuille, CVPR 2019, "Improving Transferability of
    Adversarial Examples with Input Diversity"). Both aim at examples that transfer.

    Args:
        steps: iterations T (default 10, as in the paper).
        step_size / rel_step_size: absolute step or fraction of eps; default ``eps/steps``
            (the paper's ``alpha = eps / T``).
        decay: momentum decay mu (default 1.0, the paper's choice).
        diversity_prob: probability p of the random resize-and-pad transform per example
            and iteration (0 = plain MI-FGSM; the DI paper uses 0.5). Images only.
        resize_rate: the transform shrinks to a random size in ``[resize_rate*H, H)``.
        loss: ``"ce"`` (paper), ``"margin"`` or ``"dlr"``.
        early_stop: inherited (default True); for transfer use, False runs all steps.

    Paper vs reference code: the authors' code normalises the gradient by its *mean*
    absolute value instead of the L1 norm (a constant factor, which does not change the
    sign steps when decay is applied to the normalised sum). The DI paper enlarges
    299x299 images to a random size in [299, 330) and pads to 330x330, relying on the
    network accepting larger inputs; here images shrink to ``[resize_rate*H, H)`` and are
    padded back to ``H x W``, so the model always sees its own input shape (resize by
    nearest neighbour, as in the paper).

    Example:
        >>> MIFGSM(eps=0.1, steps=10, diversity_prob=0.5, early_stop=False)(target, x, y)  # doctest: +SKIP
    """

    name = "mi-fgsm"
    steps: int = 10
    step_size: float | None = None
    rel_step_size: float | None = None
    decay: float = 1.0
    diversity_prob: float = 0.0
    resize_rate: float = 0.9
    loss: str = "ce"

    def validate(self) -> None:
        check_steps(self.name, self.steps, self.step_size, self.rel_step_size)
        if not self.decay >= 0:
            raise InputError(f"{self.name}: decay must be >= 0, got {self.decay}")
        if not 0.0 <= self.diversity_prob <= 1.0:
            raise InputError(
                f"{self.name}: diversity_prob must be in [0, 1], got {self.diversity_prob}"
            )
        if not 0.0 < self.resize_rate < 1.0:
            raise InputError(f"{self.name}: resize_rate must be in (0, 1), got {self.resize_rate}")
        get_loss(self.loss)

    def step_for(self, eps: float) -> float:
        """The absolute step size used at ``eps``."""
        return step_size_for(
            eps, self.steps, step_size=self.step_size, rel_step_size=self.rel_step_size,
            rule=BOUNDARY_RULE,
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
        if self.diversity_prob > 0 and x.dim() != 4:
            raise InputError(
                f"{self.name}: diversity_prob needs image inputs (N, C, H, W), got shape "
                f"{tuple(x.shape)}; set diversity_prob=0 for other data"
            )
        return mifgsm(
            model, x, y,
            eps=eps, step_size=self.step_for(eps), steps=self.steps, norm=self.norm, bounds=bounds,
            targets=targets, loss=self.loss, decay=self.decay,
            diversity_prob=self.diversity_prob, resize_rate=self.resize_rate,
            early_stop=self.early_stop, generator=generator,
        )  # fmt: skip
