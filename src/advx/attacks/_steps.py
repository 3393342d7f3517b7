"""Step and initialisation helpers shared by the gradient attacks: the step-size rule
and its validation, the steepest-ascent direction, the random start, the projection."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from advx.attacks.rng import ExampleRng
from advx.errors import InputError
from advx.threat import clip_to_bounds, norm_of, per_example, project


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
        return grad / per_example(n, grad)
    if norm == "l1":
        flat = grad.flatten(1).abs()
        k = max(1, int(round((1.0 - l1_sparsity) * flat.shape[1])))
        thresh = flat.topk(k, dim=1).values[:, -1:]
        mask = (flat >= thresh) & (flat > 0)
        e = grad.sign() * mask.view_as(grad)
        return e / per_example(mask.sum(dim=1).clamp_min(1).to(grad.dtype), grad)
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
        noise = (
            noise / per_example(norm_of(noise, norm).clamp_min(1e-12), x) * per_example(r * eps, x)
        )
    return clip_to_bounds(x + noise, bounds)


def project_step(
    x_adv: Tensor, x: Tensor, eps: float, norm: str, bounds: tuple[float, float]
) -> Tensor:
    """Project ``x_adv`` onto the eps-ball around ``x``, then clip to the bounds."""
    return clip_to_bounds(x + project(x_adv - x, norm, eps), bounds)


MADRY_RULE = 2.5
"""Default step rule of PGD-type attacks: ``2.5 * eps / steps`` (Madry et al. 2018's rule
of thumb: enough to reach the boundary of the ball from anywhere inside and move along
it; their reference MNIST code uses 0.01 at eps 0.3 and 40 steps, i.e. 1.33)."""

BOUNDARY_RULE = 1.0
"""``eps / steps``: the iterates just reach the boundary (BIM as libraries use it,
MI-FGSM's ``alpha = eps / T``)."""


def step_size_for(
    eps: float,
    steps: int,
    *,
    step_size: float | None = None,
    rel_step_size: float | None = None,
    rule: float = MADRY_RULE,
) -> float:
    """The absolute step size of an iterative attack at budget ``eps``: ``step_size`` if
    given, else ``rel_step_size * eps``, else ``rule * eps / steps``.

    Every attack and caller that needs a default step works it out here, so the rule is
    written once (validate the settings with :func:`check_steps`).

    Example:
        >>> step_size_for(0.1, 10)                      # 2.5 * eps / steps
        0.025
        >>> step_size_for(0.1, 10, rule=BOUNDARY_RULE)  # eps / steps
        0.01
        >>> step_size_for(0.1, 10, rel_step_size=0.5), step_size_for(0.1, 10, step_size=0.02)
        (0.05, 0.02)
    """
    if step_size is not None:
        return step_size
    rel = rel_step_size if rel_step_size is not None else rule / steps
    return rel * eps


def check_steps(
    name: str, steps: int, step_size: float | None, rel_step_size: float | None
) -> None:
    """Validate iterative-attack settings, raising :class:`InputError`."""
    if steps < 1:
        raise InputError(f"{name}: steps must be >= 1, got {steps}")
    if step_size is not None and rel_step_size is not None:
        raise InputError(f"{name}: give step_size or rel_step_size, not both")
    for k, v in (("step_size", step_size), ("rel_step_size", rel_step_size)):
        if v is not None and not v > 0:
            raise InputError(f"{name}: {k} must be > 0, got {v}")
