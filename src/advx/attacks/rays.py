"""RayS: hard-label linf attack by searching sign directions (rays) hierarchically."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from advx.attacks.base import Attack, Model
from advx.attacks.hopskipjump import decision, queries_left, stop_radius
from advx.attacks.registry import register
from advx.attacks.rng import ExampleRng
from advx.targets import Access
from advx.threat import clip_to_bounds


def rays(
    model: Model,
    x: Tensor,
    y: Tensor,
    *,
    steps: int = 10000,
    tol: float = 1e-3,
    bounds: tuple[float, float] = (0.0, 1.0),
    targets: Tensor | None = None,
    stop_below: float = 0.0,
) -> Tensor:
    """RayS on a label model ``x (N, ...) -> labels (N,)``.

    The adversarial point along a sign direction ``s in {-1, 1}^d`` at radius ``r`` is
    ``clip(x + r s)``, whose linf distance to ``x`` is at most ``r``; RayS minimises the
    boundary radius ``r(s)`` over ``s``. Starting from ``s = 1``, each step flips one
    block of coordinates (blocks of the flattened input, halving in size level by
    level: the whole input, then its two halves, then four quarters...). A flipped
    direction costs one query to test whether it is adversarial at the current best
    radius; only if it is does a binary search (to precision ``tol``, in input units)
    find its radius, which becomes the new best. While no radius is known the test is
    made at the largest radius (``hi - lo``).

    Stops an example at radius ``<= stop_below``, when out of budget, or after ``steps``
    flips. Examples with no adversarial direction found are returned unchanged.
    Returns ``(N, ...)``.
    """
    n, shape = x.shape[0], x.shape[1:]
    dim = x[0].numel()
    phi = decision(model, y, targets)
    left = queries_left(model, n)
    big = float(bounds[1] - bounds[0])
    sgn = torch.ones(n, dim, dtype=x.dtype, device=x.device)
    best = torch.full((n,), math.inf)

    def ray(idx: Tensor, s: Tensor, r: Tensor) -> Tensor:
        return clip_to_bounds(
            x[idx] + r.to(x).view(-1, *[1] * len(shape)) * s.view(-1, *shape), bounds
        )

    level, block = 0, 0
    for _ in range(steps):
        active = ((best > stop_below) & (left > 0)).nonzero().flatten()
        if active.numel() == 0:
            break
        size = math.ceil(dim / 2**level)
        start, end = block * size, min(dim, (block + 1) * size)
        attempt = sgn[active].clone()
        attempt[:, start:end] *= -1
        hi = torch.where(torch.isinf(best[active]), big, best[active])
        hit = phi(active, ray(active, attempt, hi)).cpu()
        left[active] -= 1
        idx, s, hi = active[hit], attempt[hit.to(x.device)], hi[hit]
        lo = torch.zeros_like(hi)
        while True:  # binary search of the radius, vectorised over the passing examples
            todo = ((hi - lo) > tol) & (left[idx] > 0)
            if not bool(todo.any()):
                break
            sel = todo.nonzero().flatten()
            mid = (lo[sel] + hi[sel]) / 2
            adv = phi(idx[sel], ray(idx[sel], s[sel], mid)).cpu()
            left[idx[sel]] -= 1
            hi[sel] = torch.where(adv, mid, hi[sel])
            lo[sel] = torch.where(adv, lo[sel], mid)
        better = hi < best[idx]
        best[idx[better]] = hi[better]
        sgn[idx[better]] = s[better.to(x.device)]
        block += 1
        if block == 2**level or end == dim:
            level, block = level + 1, 0
    out = x.detach().clone()
    found = torch.isfinite(best).nonzero().flatten()
    if found.numel():
        out[found] = ray(found, sgn[found], best[found])
    return out


@register("rays", "RayS: hard-label linf ray search, minimal (Chen & Gu 2020)")
@dataclass(frozen=True, kw_only=True)
class RayS(Attack):
    """RayS (Chen & Gu, KDD 2020, "RayS: A Ray Searching Method for Hard-label Adversarial
    Attack"). Needs labels only; linf; finds a small perturbation (``minimal``: eps is
    optional; with eps and ``early_stop`` each example stops once within the smallest
    eps, as the paper's early-stopping variant does). No randomness.

    Args:
        steps: block flips tried per example (default 10000); the budget is
            ``max_queries``.
        tol: precision of the radius binary search in input units (default 1e-3). The
            paper's code searches an l2 radius along the unit-l2 direction to 1e-3, i.e.
            an linf precision of ``1e-3 / sqrt(d)``; ``tol`` here is the linf precision.

    The paper's code probes radii 1, 2, ..., 10 while no boundary is known; on a bounded
    domain all radii from ``hi - lo`` up clip to the same point, so one probe is made.

    Example:
        >>> RayS(eps=0.1, max_queries=1000)(LabelBox(fn, ...), x, y)  # doctest: +SKIP
    """

    name = "rays"
    access = Access.LABELS
    norms: ClassVar[tuple[str, ...]] = ("linf",)
    minimal = True
    steps: int = 10000
    tol: float = 1e-3

    def validate(self) -> None:
        self.positive(steps=self.steps, tol=self.tol)

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
        return rays(
            model, x, y, steps=self.steps, tol=self.tol, bounds=bounds, targets=targets,
            stop_below=stop_radius(self),
        )  # fmt: skip
