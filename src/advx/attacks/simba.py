"""SimBA: Simple Black-box Attack along random orthonormal directions (pixel or DCT)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from advx.attacks.base import Attack, Model
from advx.attacks.registry import register
from advx.attacks.rng import ExampleRng
from advx.errors import InputError
from advx.targets import Access, exhausted, restrict
from advx.threat import clip_to_bounds, norm_of

BASES = ("pixel", "dct")


def dct_matrix(n: int) -> Tensor:
    """Orthonormal DCT-II matrix ``(n, n)``: row ``k`` is the ``k``-th cosine basis vector
    ``a_k cos(pi (2i + 1) k / 2n)`` with ``a_0 = sqrt(1/n)``, ``a_k = sqrt(2/n)``.
    ``D @ v`` is the DCT of ``v``; ``D.T @ c`` inverts it.

    Example:
        >>> d = dct_matrix(8)
        >>> torch.allclose(d @ d.T, torch.eye(8), atol=1e-6)
        True
    """
    i = torch.arange(n, dtype=torch.float64)
    m = torch.cos(math.pi * (2 * i[None, :] + 1) * i[:, None] / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m.float()


def basis_order(
    shape: tuple[int, ...],
    n: int,
    basis: str,
    *,
    freq_dims: int,
    stride: int,
    generator: ExampleRng | torch.Generator | None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Per-example order ``(n, d)`` in which SimBA tries the basis directions.

    ``pixel``: a uniform random permutation of the coordinates. ``dct``: frequencies
    ``(c, u, v)`` with ``max(u, v) < freq_dims`` first, then bands of width ``stride``
    of increasing frequency, random order within each band (the paper's low-frequency
    ordering).
    """
    d = math.prod(shape)
    key = ExampleRng.coerce(generator, n, device).rand((d,))  # (n, d), one order per example
    if basis == "dct":
        _, h, w = shape
        u = torch.arange(h, device=key.device)[:, None].expand(h, w)
        v = torch.arange(w, device=key.device)[None, :].expand(h, w)
        f = torch.maximum(u, v)
        band = torch.where(
            f < freq_dims, 0, 1 + torch.div(f - freq_dims, stride, rounding_mode="floor")
        )
        key = key + band.flatten().repeat(shape[0]).to(key)  # (n, d), same (c, u, v) layout
    return key.argsort(dim=1)


def _direction(j: Tensor, shape: tuple[int, ...], basis: str, dct: Tensor | None) -> Tensor:
    """Unit basis vectors ``(m, *shape)`` for flat indices ``j`` ``(m,)`` (on ``j``'s
    device; the DCT basis in ``dct``'s dtype)."""
    m = j.shape[0]
    if basis == "pixel":
        q = torch.zeros(m, math.prod(shape), device=j.device)
        q[torch.arange(m, device=j.device), j] = 1.0
        return q.view(m, *shape)
    if dct is None:
        raise InputError("simba: the dct basis needs the DCT matrices")
    c, h, w = shape
    ch, u, v = j // (h * w), (j // w) % h, j % w
    rows, cols = dct[:h][u], dct[h:][v]  # (m, h), (m, w)
    q = torch.zeros(m, c, h, w, dtype=dct.dtype, device=dct.device)
    q[torch.arange(m, device=dct.device), ch] = rows[:, :, None] * cols[:, None, :]
    return q


def simba(
    model: Model,
    x: Tensor,
    y: Tensor,
    *,
    step_size: float = 0.2,
    steps: int = 10000,
    eps: float = math.inf,
    basis: str = "dct",
    freq_dims: int | None = None,
    stride: int | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    targets: Tensor | None = None,
    early_stop: bool = True,
    generator: ExampleRng | torch.Generator | None = None,
) -> Tensor:
    """SimBA on a score model ``x (N, ...) -> probabilities (N, K)``.

    For each example: take the next basis direction ``q`` of its random order; if
    ``x + step_size * q`` lowers the probability of the true class (raises that of the
    target), keep it, else try ``x - step_size * q``. Each direction is tried once, so
    after ``T`` accepted steps ``||delta||_2 <= step_size * sqrt(T)`` (exactly so in the
    pixel basis; clipping to the bounds can bend DCT steps). Candidates that
    clipping leaves unchanged or that leave the l2 ball of radius ``eps`` are skipped
    without a query. An example stops when fooled (``early_stop``), out of budget, or
    out of directions. Queries: 1 to start, then 1 or 2 per direction.

    ``basis="dct"`` needs image inputs ``(N, C, H, W)``; its low-frequency block has side
    ``freq_dims`` (default ``ceil(H / 4)``) and bands of width ``stride`` (default
    ``ceil(H / 8)``).

    Returns ``(N, ...)``.
    """
    if basis not in BASES:
        raise InputError(f"simba: basis must be one of {BASES}, got {basis!r}")
    if basis == "dct" and x.dim() != 4:
        raise InputError("simba: the dct basis needs images (N, C, H, W); use basis='pixel'")
    n, shape = x.shape[0], tuple(x.shape[1:])
    g = ExampleRng.coerce(generator, n, x.device)
    dct = None
    if basis == "dct":
        h, w = shape[1], shape[2]
        dct = torch.cat([dct_matrix(h), dct_matrix(w)]).to(x)
        freq_dims = freq_dims or math.ceil(h / 4)
        stride = stride or math.ceil(h / 8)
    order = basis_order(shape, n, basis, freq_dims=freq_dims or 1, stride=stride or 1, generator=g)
    label = y if targets is None else targets
    sign = 1.0 if targets is None else -1.0  # minimise p_y, or maximise p_t
    x_adv = x.detach().clone()
    score = torch.full((n,), math.inf, device=x.device, dtype=x.dtype)  # sign * p_label at x_adv
    done = torch.zeros(n, dtype=torch.bool, device=x.device)

    def ask(idx: Tensor, pts: Tensor) -> tuple[Tensor, Tensor]:
        probs = restrict(model, idx)(pts)
        fooled = probs.argmax(1) != y[idx] if targets is None else probs.argmax(1) == label[idx]
        return sign * probs.gather(1, label[idx, None]).squeeze(1), fooled

    live = (~exhausted(model, n).to(x.device)).nonzero().flatten()
    if live.numel():
        score[live], done[live] = ask(live, x[live])
    for t in range(min(steps, order.shape[1])):
        live = ~exhausted(model, n).to(x.device) & torch.isfinite(score)
        if early_stop:
            live &= ~done
        idx = live.nonzero().flatten()
        if idx.numel() == 0:
            break
        q = _direction(order[idx, t], shape, basis, dct).to(x)  # (m, *shape)
        pending = torch.ones(idx.numel(), dtype=torch.bool, device=x.device)
        for alpha in (step_size, -step_size):
            pos = (pending & ~exhausted(model, n).to(x.device)[idx]).nonzero().flatten()
            cand = clip_to_bounds(x_adv[idx[pos]] + alpha * q[pos], bounds)
            useful = (cand != x_adv[idx[pos]]).flatten(1).any(dim=1)
            useful &= norm_of(cand - x[idx[pos]], "l2") <= eps
            pos, cand = pos[useful], cand[useful]
            if pos.numel() == 0:
                continue
            new, fooled = ask(idx[pos], cand)
            better = new < score[idx[pos]]
            acc = idx[pos[better]]
            x_adv[acc], score[acc], done[acc] = cand[better], new[better], fooled[better]
            pending[pos[better]] = False
    return x_adv


@register("simba", "SimBA: score-based search along random DCT/pixel directions (Guo et al. 2019)")
@register("simba-pixel", "SimBA in the pixel basis (Guo et al. 2019)", basis="pixel")
@dataclass(frozen=True, kw_only=True)
class SimBA(Attack):
    """Simple Black-box Attack (Guo, Gardner, You, Wilson & Weinberger, ICML 2019, "Simple
    Black-box Adversarial Attacks"). Needs scores only; l2 threat model.

    Args:
        step_size: length of each step along a basis direction, in input units (default
            0.2, the paper's epsilon on [0, 1] images).
        steps: directions tried per example (default 10000); each costs 1-2 queries.
        basis: ``"dct"`` (SimBA-DCT, low frequencies first; default) or ``"pixel"``.
        freq_dims, stride: the DCT ordering's first block side and band width (defaults
            ``ceil(H/4)`` and ``ceil(H/8)``; the paper's ImageNet code uses 28 and 7 on
            224-pixel images, i.e. 1/8 and 1/32, and this is wider for small images).
        eps: the l2 budget; steps that would leave the ball are skipped (pass
            ``float("inf")`` for the paper's unbounded setting).

    The paper tries ``+step`` then ``-step`` along each direction; candidates left
    unchanged by clipping (e.g. darkening a black pixel) are skipped without a query,
    where the paper's code would spend one.

    Example:
        >>> SimBA(eps=3.0, basis="dct", max_queries=2000)(box, x, y)  # doctest: +SKIP
    """

    name = "simba"
    access = Access.SCORES
    norms: ClassVar[tuple[str, ...]] = ("l2",)
    norm: str = "l2"
    step_size: float = 0.2
    steps: int = 10000
    basis: str = "dct"
    freq_dims: int | None = None
    stride: int | None = None

    def validate(self) -> None:
        self.positive(step_size=self.step_size, steps=self.steps)
        if self.basis not in BASES:
            raise InputError(f"simba: basis must be one of {BASES}, got {self.basis!r}")
        for k, v in (("freq_dims", self.freq_dims), ("stride", self.stride)):
            if v is not None and v < 1:
                raise InputError(f"simba: {k} must be >= 1, got {v}")

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
        return simba(
            model, x, y, step_size=self.step_size, steps=self.steps, eps=eps,
            basis=self.basis, freq_dims=self.freq_dims, stride=self.stride, bounds=bounds,
            targets=targets, early_stop=self.early_stop, generator=generator,
        )  # fmt: skip
