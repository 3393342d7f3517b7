"""Gradient estimation: any white-box attack becomes a score-based one (a wrapper, not a
new attack; STYLE.md section 4).

The white-box attack runs unchanged against a model whose "logits" are the target's
log-probabilities (so cross-entropy and margin losses keep their meaning) and whose input
gradient is estimated from score queries by finite differences along random directions:
NES (Gaussian, antithetic) or SPSA (Rademacher).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from advx.attacks.base import Attack, Model
from advx.attacks.registry import create, register
from advx.attacks.rng import ExampleRng
from advx.errors import InputError
from advx.targets import Access, Query

ESTIMATORS = ("nes", "spsa")


def estimate_gradient(
    f: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    estimator: str = "nes",
    samples: int = 50,
    sigma: float = 1e-3,
    bounds: tuple[float, float] | None = None,
    generator: ExampleRng | torch.Generator | int | None = None,
) -> Tensor:
    """Estimate ``grad f(x_i)`` for each row of ``x`` ``(N, ...)`` from ``samples``
    evaluations of ``f`` per row, in ``samples // 2`` antithetic pairs ``x ± sigma u``:
    ``g = mean_pairs (f(x + sigma u) - f(x - sigma u)) / (2 sigma) * u``.

    ``estimator="nes"`` draws ``u ~ N(0, I)`` (Ilyas, Engstrom, Athalye & Lin, ICML 2018,
    "Black-box Adversarial Attacks with Limited Queries and Information": their NES
    estimate with antithetic sampling is exactly this average); ``"spsa"`` draws
    Rademacher ``u`` (Uesato, O'Donoghue, van den Oord & Kohli, ICML 2018, "Adversarial
    Risk and the Dangers of Evaluating Against Weak Attacks"; for ``±1`` entries ``1/u =
    u``, so Spall's SPSA has the same form). ``f`` maps ``(N * samples, ...)`` to
    ``(N * samples,)`` and receives the samples of row ``i`` as the consecutive block
    ``[i * samples, (i + 1) * samples)``. With ``bounds`` the sample points are clipped to
    the input domain (only coordinates within ``sigma`` of a bound are affected). The
    directions of row ``i`` come from its own stream of ``generator``
    (:class:`~advx.attacks.rng.ExampleRng`), on ``x``'s device, in its dtype.

    Returns ``(N, ...)``.

    Example:
        >>> w = torch.randn(1, 5)
        >>> g = estimate_gradient(lambda z: z @ w[0], torch.zeros(1, 5), samples=2000)
        >>> float(torch.cosine_similarity(g, w)) > 0.95
        True
    """
    if estimator not in ESTIMATORS:
        raise InputError(f"unknown estimator {estimator!r}; choose one of {ESTIMATORS}")
    if samples < 2 or samples % 2:
        raise InputError(f"samples must be an even number >= 2 (antithetic pairs), got {samples}")
    n, shape, half = x.shape[0], tuple(x.shape[1:]), samples // 2
    rng = ExampleRng.coerce(generator, n, x.device)
    if estimator == "nes":
        u = rng.normal((half, *shape), dtype=x.dtype)
    else:
        u = rng.signs((half, *shape), dtype=x.dtype)
    u = torch.cat([u, -u], dim=1)  # (n, samples, ...): pairs (u, -u)
    pts = x.detach().unsqueeze(1) + sigma * u
    if bounds is not None:
        pts = pts.clamp(bounds[0], bounds[1])
    vals = f(pts.reshape(n * samples, *shape)).reshape(n, samples).to(x.dtype)
    diff = (vals[:, :half] - vals[:, half:]) / (2 * sigma)  # (n, half)
    return torch.einsum("np,np...->n...", diff, u[:, :half]) / half


class _LogProbs(torch.autograd.Function):
    """``x -> log p(x)`` from score queries; backward returns the estimated gradient."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, src: EstimatedGradients) -> Tensor:
        ctx.save_for_backward(x.detach())
        ctx.src = src
        return src.log_probs(x.detach())

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return ctx.src.gradient(x, grad_out), None


def _log(p: Tensor) -> Tensor:
    return p.clamp_min(torch.finfo(p.dtype).tiny).log()


class EstimatedGradients:
    """A score model seen as a differentiable "logits" model: calling it returns
    log-probabilities ``(N, K)`` (one query per row) whose backward pass estimates the
    input gradient with :func:`estimate_gradient` (``samples`` queries per row).

    ``scores`` is a plain callable ``x -> probabilities`` or a scores
    :class:`~advx.targets.Query`; for the latter use :func:`estimated` (or
    :meth:`view`), which keeps per-example charging and narrowing with
    :func:`~advx.targets.restrict`. With a budget, examples that cannot pay for a forward
    pass get their last seen log-probabilities (no query), and those that cannot pay for
    a gradient get a zero gradient, so a gradient attack leaves them where they are.

    Example:
        >>> box = ScoreBox(fn, input_shape=(20,), num_classes=4)     # doctest: +SKIP
        >>> logp = EstimatedGradients(box.scores, samples=100)(x.requires_grad_())  # doctest: +SKIP
    """

    def __init__(
        self,
        scores: Callable[[Tensor], Tensor],
        *,
        estimator: str = "nes",
        samples: int = 50,
        sigma: float = 1e-3,
        bounds: tuple[float, float] | None = None,
        generator: ExampleRng | torch.Generator | None = None,
        _last: dict[str, Tensor] | None = None,
    ) -> None:
        self.scores = scores
        self.estimator, self.samples, self.sigma = estimator, samples, sigma
        self.bounds, self.generator = bounds, generator
        self._last = {} if _last is None else _last  # "logp": (n_oracle, K), shared by views

    def at(self, sub: Tensor) -> EstimatedGradients:
        """The same estimator over examples ``sub`` of a Query (itself otherwise)."""
        if not isinstance(self.scores, Query):
            return self
        gen = self.generator
        if isinstance(gen, ExampleRng) and len(gen) == len(self.scores):
            gen = gen.subset(sub)  # each example keeps its own stream
        return EstimatedGradients(
            self.scores.at(sub), estimator=self.estimator, samples=self.samples,
            sigma=self.sigma, bounds=self.bounds, generator=gen, _last=self._last,
        )  # fmt: skip

    def view(self) -> Callable[[Tensor], Tensor]:
        """A :class:`~advx.targets.Query` over the same examples (for a Query ``scores``),
        else this callable."""
        return EstimatedQuery(self) if isinstance(self.scores, Query) else self

    def __call__(self, x: Tensor) -> Tensor:
        out: Tensor = _LogProbs.apply(x, self)  # type: ignore[no-untyped-call]  # torch's apply
        return out

    def _rows(self, x: Tensor, per_row: int) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
        """Rows of ``x`` whose example can pay ``per_row`` queries each, and the score
        function restricted to them."""
        if not isinstance(self.scores, Query):
            return torch.ones(x.shape[0], dtype=torch.bool, device=x.device), self.scores
        k = x.shape[0] // len(self.scores)
        rem = self.scores.remaining
        ok = torch.ones(len(self.scores), dtype=torch.bool) if rem is None else rem >= per_row * k
        return ok.repeat_interleave(k), self.scores.at(ok)

    def log_probs(self, x: Tensor) -> Tensor:
        """Log-probabilities ``(N, K)`` of ``x``, queried where the budget allows; rows
        of examples out of budget get their example's last seen value (uniform if none)."""
        ok, fn = self._rows(x, 1)
        okd = ok.to(x.device)
        got = _log(fn(x[okd])).to(x.dtype) if bool(okd.any()) else None
        if not isinstance(self.scores, Query):
            return got if got is not None else x.new_zeros(0)
        oracle = self.scores.oracle
        if "logp" not in self._last:  # per example of the oracle, shared by all views
            k_cls = oracle.target.num_classes
            self._last["logp"] = x.new_full((oracle.n, k_cls), -math.log(k_cls))
        cache = self._last["logp"]
        rows = self.scores.idx.repeat_interleave(x.shape[0] // len(self.scores))
        if got is not None:
            cache[rows[ok]] = got
        return cache[rows].clone()

    def gradient(self, x: Tensor, grad_out: Tensor) -> Tensor:
        """Estimated gradient of ``sum(grad_out * log p(x))`` w.r.t. ``x``; zero for rows
        whose example cannot pay ``samples`` queries."""
        ok, fn = self._rows(x, self.samples)
        grad = torch.zeros_like(x)
        okd = ok.to(x.device)
        if bool(okd.any()):
            w = grad_out[okd].repeat_interleave(self.samples, dim=0)  # (m * samples, K)

            def f(pts: Tensor) -> Tensor:
                return (_log(fn(pts)).to(w.dtype) * w).sum(dim=1)

            gen: ExampleRng | torch.Generator | int | None = self.generator
            if isinstance(gen, ExampleRng):
                if len(gen) == x.shape[0]:
                    gen = gen.subset(okd)
                else:  # several rows per example: one seed per call
                    gen = int(gen.seeds()[0])
            grad[okd] = estimate_gradient(
                f, x[okd], estimator=self.estimator, samples=self.samples, sigma=self.sigma,
                bounds=self.bounds, generator=gen,
            )  # fmt: skip
        return grad


class EstimatedQuery(Query):
    """:class:`EstimatedGradients` over a scores Query, itself a Query (of kind
    ``"logits"``) so white-box attack code narrows it with ``restrict()`` and reads
    ``exhausted``/``remaining`` as usual; queries are charged to the underlying view."""

    def __init__(self, est: EstimatedGradients) -> None:
        if not isinstance(est.scores, Query):
            raise InputError("EstimatedQuery needs an estimator over a Query")
        super().__init__(est.scores.oracle, est.scores.idx, "logits")
        self.est = est

    def at(self, sub: Tensor) -> EstimatedQuery:
        return EstimatedQuery(self.est.at(sub))

    def as_kind(self, kind: str) -> Query:
        raise InputError("an estimated-gradient view has one kind: log-probabilities")

    def __call__(self, x: Tensor) -> Tensor:
        return self.est(x)


def estimated(scores: Callable[[Tensor], Tensor], **settings: Any) -> Callable[[Tensor], Tensor]:
    """``scores`` (a plain callable or a scores Query) as a "logits" model with estimated
    gradients; ``settings`` as for :class:`EstimatedGradients`."""
    return EstimatedGradients(scores, **settings).view()


def resolve_inner(
    owner: str,
    attack: Attack | str,
    settings: Mapping[str, Any] | None,
    eps: Any,
    norm: str,
    early_stop: bool = True,
) -> Attack:
    """The white-box attack a wrapper runs: an :class:`Attack` instance as is, or a
    registry slug built with ``eps``, ``norm``, ``early_stop`` and ``settings``."""
    if isinstance(attack, str):
        kwargs = {"eps": eps, "norm": norm, "early_stop": early_stop, **dict(settings or {})}
        inner = create(attack, **kwargs)
    elif isinstance(attack, Attack):
        if settings:
            raise InputError(f"{owner}: settings apply to a slug; configure the attack instance")
        inner = attack
    else:
        raise InputError(f"{owner}: attack must be an Attack or a registry slug, got {attack!r}")
    out: Attack = inner
    return out


@register(
    "nes-pgd",
    "PGD on NES gradient estimates from scores (Ilyas et al. 2018)",
    attack="pgd",
    estimator="nes",
)
@register(
    "spsa-pgd",
    "PGD on SPSA gradient estimates from scores (Uesato et al. 2018)",
    attack="pgd",
    estimator="spsa",
)
@dataclass(frozen=True, kw_only=True)
class Estimated(Attack):
    """A white-box attack run on estimated gradients, so it needs scores only.

    Args:
        attack: the white-box attack, an instance (``PGD(eps=0.05, steps=100)``) or a
            registry slug (``"pgd"``) built with this wrapper's ``eps``, ``norm`` and
            ``settings``. With an instance, its ``norm`` is used and its ``eps`` is the
            default of this wrapper's.
        settings: the slug's settings, e.g. ``{"steps": 100, "rel_step_size": 0.05}``.
        estimator: ``"nes"`` (Gaussian, Ilyas et al. 2018) or ``"spsa"`` (Rademacher,
            Uesato et al. 2018); see :func:`estimate_gradient`.
        samples: score queries per gradient estimate, in antithetic pairs (default 50,
            NES's query-limited setting); each step of the inner attack costs
            ``1 + samples`` queries per example.
        sigma: finite-difference radius in input units (default 0.001, as in NES).

    Query budgets (``max_queries``) are honoured: an example that cannot pay for a
    gradient gets a zero gradient and stays where it is.

    Example:
        >>> from advx.attacks.pgd import PGD
        >>> Estimated(attack=PGD(eps=0.1, steps=20), estimator="nes", samples=50)  # doctest: +SKIP
        >>> create("spsa-pgd", eps=0.1, settings={"steps": 20}, samples=64)        # doctest: +SKIP
    """

    name = "estimated"
    access = Access.SCORES
    norms: ClassVar[tuple[str, ...]] = ("linf", "l2", "l1")
    attack: Attack | str = "pgd"
    settings: Mapping[str, Any] | None = None
    estimator: str = "nes"
    samples: int = 50
    sigma: float = 1e-3

    def __post_init__(self) -> None:
        inner = resolve_inner(
            self.name, self.attack, self.settings, self.eps, self.norm, self.early_stop
        )
        if inner.access != Access.GRADIENTS:
            raise InputError(
                f"{self.name}: wraps white-box attacks; {inner.name} already needs only "
                f"{inner.access.label}, use it directly"
            )
        object.__setattr__(self, "attack", inner)
        object.__setattr__(self, "settings", None)
        object.__setattr__(self, "norm", inner.norm)
        if self.eps is None:
            object.__setattr__(self, "eps", inner.eps)
        object.__setattr__(self, "name", f"{self.estimator}-{inner.name}")
        super().__post_init__()

    def validate(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise InputError(f"unknown estimator {self.estimator!r}; choose one of {ESTIMATORS}")
        if self.samples < 2 or self.samples % 2:
            raise InputError(f"{self.name}: samples must be even and >= 2, got {self.samples}")
        self.positive(sigma=self.sigma)

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
        est = estimated(
            model, estimator=self.estimator, samples=self.samples, sigma=self.sigma,
            bounds=bounds, generator=generator,
        )  # fmt: skip
        inner = self.attack
        if not isinstance(inner, Attack):  # resolved in __post_init__
            raise InputError(f"{self.name}: inner attack not resolved")
        return inner.run(est, x, y, targets, eps=eps, bounds=bounds, generator=generator)
