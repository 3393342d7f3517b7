"""Step and initialisation helpers shared by the gradient attacks."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from advx.attacks.rng import ExampleRng
from advx.threat import clip_to_bounds, norm_of, project


def _view(v: Tensor, like: Tensor) -> Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def steepest_step(grad: Tensor, norm: str, *, l1_sparsity: float = 0.95) -> Tensor:
    """Unit-norm steepest-ascent direction for ``grad`` in ``norm`` ``(N, ...)``.

    linf: ``sign(g)``; l2: ``g / ||g||_2``; l1: the sparse step of Tramer & Boneh (2019):
    ``sign(g)`` on the coordinates whose ``|g|`` is at or above the ``l1_sparsity``
    quantile of the example, scaled to unit L1 norm.
    """
    if norm == "linf":
        return grad.sign()
    if norm == "l2":
        n = norm_of(grad, "l2").clamp_min(1e-12)
        return grad / _view(n, grad)
    if norm == "l1":
        flat = grad.flatten(1).abs()
        k = max(1, int(round((1.0 - l1_sparsity) * flat.shape[1])))
        thresh = flat.topk(k, dim=1).values[:, -1:]
        mask = (flat >= thresh) & (flat > 0)
        e = grad.sign() * mask.view_as(grad)
        return e / _view(mask.sum(dim=1).clamp_min(1).to(grad.dtype), grad)
    raise ValueError(f"no steepest step for norm {norm!r}")


def random_start(
    x: Tensor,
    eps: float,
    norm: str,
    bounds: tuple[float, float],
    generator: ExampleRng | torch.Generator | None,
) -> Tensor:
    """A uniformly random point of the eps-ball around ``x`` (linf: uniform in the cube;
    l2/l1: direction uniform on the sphere, radius scaled for a uniform ball sample),
    clipped to the bounds. Drawn per example from ``generator`` (see
    :class:`~advx.attacks.rng.ExampleRng`), on ``x``'s device, in its dtype."""
    if math.isinf(eps):
        eps = bounds[1] - bounds[0]
    rng = ExampleRng.coerce(generator, x.shape[0], x.device)
    shape = tuple(x.shape[1:])
    if norm == "linf":
        noise = rng.uniform(-eps, eps, shape, dtype=x.dtype)
    else:
        noise = rng.normal(shape, dtype=x.dtype)
        if norm == "l1":
            noise = noise.sign() * rng.exponential(shape, dtype=x.dtype)
        d = noise.flatten(1).shape[1]
        r = rng.rand(dtype=x.dtype) ** (1.0 / d)
        noise = noise / _view(norm_of(noise, norm).clamp_min(1e-12), x) * _view(r * eps, x)
    return clip_to_bounds(x + noise, bounds)


def project_step(
    x_adv: Tensor, x: Tensor, eps: float, norm: str, bounds: tuple[float, float]
) -> Tensor:
    """Project ``x_adv`` onto the eps-ball around ``x``, then clip to the bounds."""
    return clip_to_bounds(x + project(x_adv - x, norm, eps), bounds)
