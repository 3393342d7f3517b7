"""HopSkipJump: decision-based attack by boundary search and gradient-direction estimates."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from advx.attacks.base import Attack, Model
from advx.attacks.registry import register
from advx.attacks.rng import ExampleRng
from advx.targets import Access, Query, restrict
from advx.threat import clip_to_bounds, norm_of, per_example

Decide = Callable[[Tensor, Tensor], Tensor]  # (examples idx (m,), points (k*m, ...)) -> bool


def queries_left(model: Model, n: int) -> Tensor:
    """Queries each example may still spend ``(n,)``, on the CPU like the rest of the
    search's bookkeeping (a large number without a budget)."""
    if isinstance(model, Query) and model.remaining is not None:
        return model.remaining.cpu().clone()
    return torch.full((n,), 2**62, dtype=torch.int64)


def decision(model: Model, y: Tensor, targets: Tensor | None) -> Decide:
    """``phi(idx, pts)``: is each point adversarial for its example? ``pts`` holds ``k``
    consecutive rows per example of ``idx``, charged ``k`` queries each."""

    def phi(idx: Tensor, pts: Tensor) -> Tensor:
        labels = restrict(model, idx)(pts)
        k = pts.shape[0] // idx.numel()
        if targets is None:
            return labels != y[idx].repeat_interleave(k)
        return labels == targets[idx].repeat_interleave(k)

    return phi


def boundary_search(
    phi: Decide, x: Tensor, x_adv: Tensor, idx: Tensor, left: Tensor, norm: str, theta: float
) -> Tensor:
    """Binary search between clean ``x[idx]`` (not adversarial) and ``x_adv[idx]``
    (adversarial) for the boundary; returns the adversarial end. l2 moves along the
    segment (tolerance ``theta`` on the blend); linf shrinks an linf box around ``x``
    (tolerance ``min(theta * dist, theta)``). Stops an example when its budget ``left``
    (decremented in place) is spent."""
    x0, xa = x[idx], x_adv[idx]
    if norm == "l2":
        hi, thr = torch.ones(idx.numel()), torch.full((idx.numel(),), theta)
    else:
        hi = norm_of(xa - x0, "linf").cpu()
        thr = torch.clamp(hi * theta, max=theta)
    lo = torch.zeros_like(hi)

    def point(a: Tensor, sel: Tensor) -> Tensor:
        a = per_example(a.to(x), x0[sel])
        if norm == "l2":
            return (1 - a) * x0[sel] + a * xa[sel]
        return torch.minimum(torch.maximum(xa[sel], x0[sel] - a), x0[sel] + a)

    while True:
        todo = ((hi - lo) > thr) & (left[idx] > 0)
        if not bool(todo.any()):
            break
        sel = todo.nonzero().flatten()
        mid = (lo[sel] + hi[sel]) / 2
        adv = phi(idx[sel], point(mid, sel)).cpu()
        left[idx[sel]] -= 1
        hi[sel] = torch.where(adv, mid, hi[sel])
        lo[sel] = torch.where(adv, lo[sel], mid)
    return point(hi, torch.arange(idx.numel()))


def estimate_direction(
    phi: Decide,
    xb: Tensor,
    idx: Tensor,
    counts: Tensor,
    delta: Tensor,
    norm: str,
    bounds: tuple[float, float],
    g: ExampleRng,
) -> Tensor:
    """Monte-Carlo estimate of the boundary normal at ``xb`` (m, ...): ``counts[i]``
    probes ``xb + delta u`` (u uniform on the sphere; l2: Gaussian, linf: uniform cube,
    normalised) answered by ``phi``, with the paper's baseline (mean sign) subtracted.
    Row ``i`` draws its probes from its own stream of ``g`` (rows of ``xb``). Returns the unit l2 direction (l2) or its sign (linf)."""
    grad = torch.zeros_like(xb)
    chunk = max(1, min(256, 2**20 // max(1, xb[0].numel())))  # probe rows per model call
    for c in counts.unique().tolist():
        group = (counts == c).nonzero().flatten()
        for part in group.split(max(1, chunk // c)):
            m, shape = part.numel(), xb.shape[1:]
            if norm == "l2":
                rv = g.normal((c, *shape), dtype=xb.dtype, rows=part)
            else:
                rv = g.uniform(-1, 1, (c, *shape), dtype=xb.dtype, rows=part)
            rv = rv.to(xb.device)
            rv = rv / rv.flatten(2).norm(dim=2).clamp_min(1e-12).view(m, c, *([1] * len(shape)))
            d = delta[part].to(xb).view(m, 1, *([1] * len(shape)))
            pts = clip_to_bounds(xb[part].unsqueeze(1) + d * rv, bounds)
            rv = (pts - xb[part].unsqueeze(1)) / d
            f = phi(idx[part], pts.reshape(m * c, *shape)).view(m, c).to(xb) * 2 - 1
            mean = f.mean(dim=1, keepdim=True)
            f = torch.where(mean.abs() == 1, f, f - mean)
            grad[part] = torch.einsum("mc,mc...->m...", f, rv) / c
    if norm == "linf":
        return grad.sign()
    return grad / per_example(norm_of(grad, "l2").clamp_min(1e-12), grad)


def hopskipjump(
    model: Model,
    x: Tensor,
    y: Tensor,
    *,
    norm: str = "l2",
    steps: int = 64,
    init_evals: int = 100,
    max_evals: int = 10000,
    gamma: float = 1.0,
    init_tries: int = 100,
    bounds: tuple[float, float] = (0.0, 1.0),
    targets: Tensor | None = None,
    stop_below: float = 0.0,
    starting_points: Tensor | None = None,
    generator: ExampleRng | torch.Generator | None = None,
) -> Tensor:
    """HopSkipJump on a label model ``x (N, ...) -> labels (N,)``.

    Start from an adversarial point (``starting_points``, else uniform noise drawn up to
    ``init_tries`` times) and search the boundary towards ``x``. Then, for iteration
    ``t = 1..steps``: estimate the boundary normal at the current boundary point with
    ``B_t = min(init_evals * sqrt(t), max_evals)`` probes at radius ``delta_t``
    (``0.1 * range`` at ``t = 1``, then ``dist / d``), step along it by ``dist / sqrt(t)``
    halved until adversarial (geometric step search), and binary-search back to the
    boundary (tolerance ``gamma / d^1.5`` for l2, ``gamma / d^2`` for linf).

    An example stops when its distance is at most ``stop_below``, when it cannot pay for
    a useful gradient estimate, or after ``steps`` iterations; probes are cut to the
    budget left. Examples with no adversarial start are returned unchanged (failed).
    Returns ``(N, ...)``: the closest adversarial point found.
    """
    n, d = x.shape[0], x[0].numel()
    g = ExampleRng.coerce(generator, n, x.device)
    phi = decision(model, y, targets)
    left = queries_left(model, n)
    theta = gamma / (d * math.sqrt(d)) if norm == "l2" else gamma / d**2
    x_adv = x.detach().clone()
    found = torch.zeros(n, dtype=torch.bool)
    if starting_points is not None:
        x_adv = starting_points.detach().clone().to(x)
        found[:] = True
    for _ in range(0 if starting_points is not None else init_tries):
        todo = (~found & (left > 0)).nonzero().flatten()
        if todo.numel() == 0:
            break
        noise = g.uniform(bounds[0], bounds[1], x.shape[1:], dtype=x.dtype, rows=todo)
        adv = phi(todo, noise).cpu()
        left[todo] -= 1
        x_adv[todo[adv]] = noise[adv.to(x.device)]
        found[todo[adv]] = True
    active = found.nonzero().flatten()
    if active.numel() == 0:
        return x_adv
    x_adv[active] = boundary_search(phi, x, x_adv, active, left, norm, theta)
    dist = norm_of(x_adv - x, norm).cpu()
    bs_cost = math.ceil(math.log2(max(2.0, 1.0 / theta))) + 1  # kept back for the search
    for t in range(1, steps + 1):
        keep = found & (dist > stop_below)
        want = min(int(init_evals * math.sqrt(t)), max_evals)
        counts = torch.clamp(left - bs_cost - 1, max=want)
        active = (keep & (counts >= min(want, max(10, init_evals // 10)))).nonzero().flatten()
        if active.numel() == 0:
            break
        xb, dist_a = x_adv[active], dist[active]
        delta = (
            torch.full_like(dist_a, 0.1 * (bounds[1] - bounds[0]))
            if t == 1
            else dist_a * (math.sqrt(d) * theta if norm == "l2" else d * theta)
        )
        v = estimate_direction(
            phi, xb, active, counts[active], delta, norm, bounds, g.subset(active)
        )
        left[active] -= counts[active]
        # geometric step search: halve the step until the point is adversarial again
        xi = dist_a / math.sqrt(t)
        cand = xb.clone()
        ok = torch.zeros(active.numel(), dtype=torch.bool)
        for _ in range(30):
            sel = (~ok & (left[active] > 0)).nonzero().flatten()
            if sel.numel() == 0:
                break
            pts = clip_to_bounds(xb[sel] + per_example(xi[sel].to(x), xb[sel]) * v[sel], bounds)
            adv = phi(active[sel], pts).cpu()
            left[active[sel]] -= 1
            cand[sel[adv]] = pts[adv.to(x.device)]
            ok[sel[adv]] = True
            xi[sel[~adv]] /= 2
        moved = ok.nonzero().flatten()
        if moved.numel():
            x_new = x_adv.clone()
            x_new[active[moved]] = cand[moved]
            back = boundary_search(phi, x, x_new, active[moved], left, norm, theta)
            new_dist = norm_of(back - x[active[moved]], norm).cpu()
            better = new_dist < dist[active[moved]]
            x_adv[active[moved][better]] = back[better.to(x.device)]
            dist[active[moved][better]] = new_dist[better]
    return x_adv


def stop_radius(attack: Attack) -> float:
    """For minimal attacks with ``early_stop``: the distance below which an example is
    done (the smallest eps asked for; 0 when eps is None, i.e. run the full budget)."""
    if not attack.early_stop or attack.eps is None:
        return 0.0
    eps = attack.eps
    return float(min(eps)) if isinstance(eps, tuple) else float(eps)  # type: ignore[arg-type]


@register(
    "hopskipjump", "HopSkipJump: decision-based, l2/linf, minimal (Chen, Jordan & Wainwright 2020)"
)
@dataclass(frozen=True, kw_only=True)
class HopSkipJump(Attack):
    """HopSkipJumpAttack (Chen, Jordan & Wainwright, IEEE S&P 2020, "HopSkipJumpAttack: A
    Query-Efficient Decision-Based Attack"). Needs labels only; finds a small perturbation
    (``minimal``: eps is optional; with eps and ``early_stop`` each example stops once
    within the smallest eps).

    Args:
        steps: iterations (default 64); the budget is ``max_queries``.
        init_evals: probes of the first gradient-direction estimate (default 100, the
            paper's B_0); iteration t uses ``init_evals * sqrt(t)``, at most ``max_evals``
            (default 10000).
        gamma: binary-search tolerance factor (default 1.0): theta = gamma / d^1.5 (l2) or
            gamma / d^2 (linf), d the input dimension.
        init_tries: uniform-noise draws to find an adversarial start (default 100).
        norm: ``"l2"`` (default) or ``"linf"`` (linf box binary search, sign steps).

    Where the paper's code blends noise and image on a fine grid before its first binary
    search, this goes straight to the binary search, which needs fewer queries. Targeted
    runs start from noise classified as the target, which can fail; the plain function
    :func:`hopskipjump` accepts ``starting_points`` (e.g. images of the target class).

    Example:
        >>> HopSkipJump(max_queries=2000)(LabelBox(fn, ...), x, y)  # doctest: +SKIP
    """

    name = "hopskipjump"
    access = Access.LABELS
    norms: ClassVar[tuple[str, ...]] = ("l2", "linf")
    minimal = True
    norm: str = "l2"
    steps: int = 64
    init_evals: int = 100
    max_evals: int = 10000
    gamma: float = 1.0
    init_tries: int = 100

    def validate(self) -> None:
        self.positive(
            steps=self.steps, init_evals=self.init_evals, max_evals=self.max_evals,
            gamma=self.gamma, init_tries=self.init_tries,
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
        return hopskipjump(
            model, x, y, norm=self.norm, steps=self.steps, init_evals=self.init_evals,
            max_evals=self.max_evals, gamma=self.gamma, init_tries=self.init_tries,
            bounds=bounds, targets=targets, stop_below=stop_radius(self), generator=generator,
        )  # fmt: skip
