"""The threat model as a value: norm, eps and input bounds, with norms and projections
as plain functions on batched tensors.

Shapes: ``x`` is ``(N, *input_shape)``; per-example quantities are ``(N,)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

import torch
from torch import Tensor

from advx.errors import EpsRangeWarning, InputError

Norm = Literal["linf", "l2", "l1", "l0"]
NORMS: tuple[str, ...] = ("linf", "l2", "l1", "l0")


def check_norm(norm: str) -> Norm:
    """Return ``norm`` if it is one of ``linf``, ``l2``, ``l1``, ``l0``; raise otherwise."""
    if norm not in NORMS:
        raise InputError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    return norm  # type: ignore[return-value]


def norm_of(delta: Tensor, norm: str) -> Tensor:
    """Per-example norm of a batch of perturbations: ``(N, ...) -> (N,)``."""
    flat = delta.flatten(1)
    if norm == "linf":
        return flat.abs().amax(dim=1)
    if norm == "l2":
        out: Tensor = flat.norm(p=2, dim=1)
        return out
    if norm == "l1":
        return flat.abs().sum(dim=1)
    if norm == "l0":
        return (flat != 0).sum(dim=1).to(delta.dtype)
    raise InputError(f"unknown norm {norm!r}")


def per_example(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-example ``(N,)`` vector to broadcast against ``like`` ``(N, ...)``:
    ``(N, 1, ..., 1)``, e.g. ``delta * per_example(scale, delta)``."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def project_l1_ball(delta: Tensor, eps: Tensor) -> Tensor:
    """Euclidean projection of each example onto the L1 ball of radius ``eps`` (N,).

    Sort-based algorithm of Duchi et al. (2008), vectorised over the batch.
    """
    flat = delta.flatten(1)
    abs_ = flat.abs()
    inside = abs_.sum(dim=1) <= eps
    if bool(inside.all()):
        return delta
    sorted_, _ = abs_.sort(dim=1, descending=True)
    cumsum = sorted_.cumsum(dim=1)
    k = torch.arange(1, flat.shape[1] + 1, device=delta.device, dtype=delta.dtype)
    cond = sorted_ - (cumsum - eps.unsqueeze(1)) / k > 0
    rho = cond.to(torch.int64).cumsum(dim=1).argmax(dim=1)  # last index where cond holds
    theta = (cumsum.gather(1, rho.unsqueeze(1)).squeeze(1) - eps) / (rho + 1).to(delta.dtype)
    theta = theta.clamp_min(0)
    projected = flat.sign() * (abs_ - theta.unsqueeze(1)).clamp_min(0)
    out = torch.where(inside.unsqueeze(1), flat, projected)
    return out.view_as(delta)


def project_l0_ball(delta: Tensor, eps: Tensor) -> Tensor:
    """Keep the ``eps`` largest-magnitude coordinates of each example, zero the rest."""
    flat = delta.flatten(1)
    k = eps.round().to(torch.int64).clamp(0, flat.shape[1])
    order = flat.abs().argsort(dim=1, descending=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=delta.device).expand_as(order))
    return torch.where(ranks < k.unsqueeze(1), flat, torch.zeros_like(flat)).view_as(delta)


def project(delta: Tensor, norm: str, eps: float | Tensor) -> Tensor:
    """Project perturbations onto the ``norm`` ball of radius ``eps`` (scalar or ``(N,)``).

    ``eps=inf`` returns ``delta`` unchanged; ``eps=0`` returns exact zeros.
    """
    eps_t = torch.as_tensor(eps, dtype=delta.dtype, device=delta.device)
    if eps_t.dim() == 0:
        if bool(torch.isinf(eps_t)):
            return delta
        eps_t = eps_t.expand(delta.shape[0])
    if norm == "linf":
        e = per_example(eps_t, delta)
        return torch.maximum(torch.minimum(delta, e), -e)
    if norm == "l2":
        n = norm_of(delta, "l2")
        factor = torch.where(n > eps_t, eps_t / n.clamp_min(1e-12), torch.ones_like(n))
        return delta * per_example(factor, delta)
    if norm == "l1":
        return project_l1_ball(delta, eps_t)
    if norm == "l0":
        return project_l0_ball(delta, eps_t)
    raise InputError(f"unknown norm {norm!r}")


def clip_to_bounds(x: Tensor, bounds: tuple[float, float]) -> Tensor:
    """Clamp to the input domain ``[lo, hi]``."""
    return x.clamp(bounds[0], bounds[1])


def _warn_eps_range(values: Sequence[float], lo: float, hi: float) -> None:
    """Warn (:class:`~advx.errors.EpsRangeWarning`) about a finite linf eps beyond the
    input range; ``eps == hi - lo`` (a deliberately unbounded ball) stays silent."""
    too_big = [e for e in values if math.isfinite(e) and e > hi - lo]
    if too_big:
        e = max(too_big)
        hint = f"; did you mean {e:g}/255 = {e / 255:.4g}?" if hi - lo == 1 and e <= 255 else ""
        warnings.warn(
            f"linf eps={e:g} exceeds the input range [{lo:g}, {hi:g}]: every valid input is "
            f"inside the ball, so the attack is unconstrained{hint}",
            EpsRangeWarning,
            stacklevel=4,
        )


@dataclass(frozen=True)
class ThreatModel:
    """What the adversary may change.

    Args:
        norm: ``"linf"``, ``"l2"``, ``"l1"`` or ``"l0"`` (number of changed coordinates).
        eps: the budget in that norm, in input units (e.g. 0.1 on [0,1] pixels). A sequence
            makes a sweep: attacks return one result per eps. ``inf`` means unbounded
            (minimal-perturbation attacks report the distance they needed).
        bounds: the valid input domain ``(lo, hi)``; adversarial inputs are clipped to it.

    Example:
        >>> ThreatModel("linf", 8 / 255).eps
        0.03137254901960784
    """

    norm: str = "linf"
    eps: float | tuple[float, ...] = 0.1
    bounds: tuple[float, float] = field(default=(0.0, 1.0))

    def __post_init__(self) -> None:
        check_norm(self.norm)
        eps = self.eps
        values = tuple(eps) if isinstance(eps, Sequence) else (eps,)
        if not values:
            raise InputError("eps sweep is empty; give at least one eps")
        for e in values:
            if not isinstance(e, (int, float)) or e != e:  # NaN check without math import
                raise InputError(f"eps must be a number, got {e!r}")
            if e < 0:
                raise InputError(f"eps must be >= 0, got {e}")
        if isinstance(eps, Sequence):
            object.__setattr__(self, "eps", tuple(float(e) for e in values))
        else:
            object.__setattr__(self, "eps", float(eps))
        lo, hi = self.bounds
        if not lo < hi:
            raise InputError(f"bounds must satisfy lo < hi, got {self.bounds}")
        object.__setattr__(self, "bounds", (float(lo), float(hi)))
        if self.norm == "linf":
            _warn_eps_range(values, float(lo), float(hi))

    @property
    def is_sweep(self) -> bool:
        """True when ``eps`` is a sequence."""
        return isinstance(self.eps, tuple)

    @property
    def epsilons(self) -> tuple[float, ...]:
        """All eps values as a tuple (a single eps gives a 1-tuple)."""
        return self.eps if isinstance(self.eps, tuple) else (self.eps,)

    def at(self, eps: float) -> ThreatModel:
        """The same threat model with a single ``eps``."""
        return ThreatModel(self.norm, float(eps), self.bounds)

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """Project ``x_adv`` onto the eps-ball around ``x`` and then onto the bounds.

        Requires a single eps. For linf and the box bounds the result is inside both; for
        l2/l1 the bound clipping can only shrink the perturbation, so it stays in the ball.
        """
        if self.is_sweep:
            raise InputError("project() needs a single eps; use .at(eps) on a sweep")
        delta = project(x_adv - x, self.norm, cast(float, self.eps))  # not a sweep: a float
        return clip_to_bounds(x + delta, self.bounds)

    def distance(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """Per-example distance ``(N,)`` in this threat model's norm."""
        return norm_of(x_adv - x, self.norm)

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly representation."""
        return {"norm": self.norm, "eps": self.eps, "bounds": list(self.bounds)}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> ThreatModel:
        """Inverse of :meth:`to_dict`."""
        eps = float("inf") if d["eps"] is None else d["eps"]  # strict JSON writes inf as null
        bounds = d.get("bounds", (0.0, 1.0))
        return cls(
            str(d["norm"]),
            tuple(eps) if isinstance(eps, list) else eps,  # type: ignore[arg-type]
            tuple(bounds),  # type: ignore[arg-type]
        )
