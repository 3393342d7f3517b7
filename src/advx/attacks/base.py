"""The attack base class. It owns the invariants so attack authors cannot forget them.

``Attack.__call__`` (final) validates inputs, puts the model in eval mode with frozen
parameters (restored exactly afterwards), checks the clean predictions, skips examples
already misclassified, runs the attack on the rest, projects onto the eps-ball and the
bounds, recomputes success from the model, and returns a typed
:class:`~advx.attacks.result.AttackResult` (or a
:class:`~advx.attacks.result.SweepResult` when ``eps`` is a list).

An attack author writes a frozen, keyword-only dataclass subclass and one method,
:meth:`Attack.run`, which usually calls the attack's plain function.
"""

from __future__ import annotations

import difflib
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol, final

import torch
from torch import Tensor

from advx.attacks._typecheck import check_settings
from advx.attacks.result import AttackResult, Status, SweepResult
from advx.attacks.rng import ExampleRng, draw_seed
from advx.errors import AccessError, InputError
from advx.targets import Access, Oracle, Target, full_precision
from advx.threat import NORMS, ThreatModel

Model = Callable[[Tensor], Tensor]
# one class, or per example class indices or names (mixed allowed), or a helper name
TargetSpec = Tensor | int | str | Sequence[int | str] | None
TARGET_HELPERS = ("random", "least-likely", "next")


def validate_batch(target: Target, x: Any, y: Any) -> tuple[Tensor, Tensor]:
    """Check a batch against a target's input shape, bounds and classes.

    Returns ``(x, y)`` with ``y`` as int64. Raises :class:`InputError` saying what is wrong
    and how to fix it.
    """
    if not isinstance(x, Tensor):
        raise InputError(
            f"x must be a torch.Tensor, got {type(x).__name__}; use torch.as_tensor(x)"
        )
    if not x.is_floating_point():
        raise InputError(f"x must be a floating-point tensor, got {x.dtype}; use x.float()")
    shape = tuple(target.input_shape)
    if tuple(x.shape) == shape:
        raise InputError(f"x has the shape of one example {shape}; add a batch dim: x.unsqueeze(0)")
    if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise InputError(
            f"x must have shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}"
        )
    if x.shape[0] == 0:
        raise InputError("x is an empty batch")
    finite = torch.isfinite(x.flatten(1)).all(dim=1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten()[:5].tolist()
        raise InputError(f"x has NaN or inf values (examples {bad}); clean the data first")
    lo, hi = target.bounds
    tol = 1e-6 * max(1.0, hi - lo)
    if float(x.min()) < lo - tol or float(x.max()) > hi + tol:
        raise InputError(
            f"x has values in [{float(x.min()):.4g}, {float(x.max()):.4g}] outside the model's "
            f"bounds [{lo:g}, {hi:g}]; scale inputs to the bounds (normalisation belongs "
            "inside the model adapter, not in the data)"
        )
    y = torch.as_tensor(y)
    if y.is_floating_point() or y.dtype == torch.bool:
        raise InputError(f"labels must be integers, got {y.dtype}")
    if y.shape != (x.shape[0],):
        raise InputError(f"y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")
    y = y.long()
    if bool((y < 0).any()) or bool((y >= target.num_classes).any()):
        raise InputError(
            f"labels must be in [0, {target.num_classes - 1}], got range "
            f"[{int(y.min())}, {int(y.max())}]"
        )
    return x, y


def class_index(name: str, class_names: Sequence[str]) -> int:
    """The index of class ``name`` among ``class_names``, case-insensitive; a decimal
    string is an index. Raises :class:`InputError` naming close matches."""
    key = name.strip().lower()
    if key.isdigit():
        return int(key)
    lowered = [c.lower() for c in class_names]
    if key in lowered:
        return lowered.index(key)
    close = difflib.get_close_matches(key, lowered, n=5, cutoff=0.6)
    hint = (
        f"; did you mean {', '.join(repr(class_names[lowered.index(c)]) for c in close)}?"
        if close
        else f"; the model's classes are {', '.join(map(repr, class_names[:10]))}"
        + (", ..." if len(class_names) > 10 else "")
    )
    raise InputError(
        f"targets {name!r} is neither a helper ({', '.join(TARGET_HELPERS)}) nor a class "
        f"name of the model{hint}"
    )


class Draws(Protocol):
    """What :func:`resolve_targets` draws ``"random"`` targets from: an
    :class:`~advx.attacks.rng.ExampleRng` (image attacks), or text attacks' seeded stream."""

    def randint(self, low: int, high: int) -> Tensor:
        """One integer in ``[low, high)`` per example ``(N,)``."""
        ...


def resolve_targets(
    spec: TargetSpec,
    y: Tensor,
    scores: Tensor | None,
    num_classes: int,
    generator: Draws,
    class_names: Sequence[str] = (),
) -> Tensor | None:
    """Turn a ``targets=`` argument into a label tensor ``(N,)`` (or None: untargeted).

    ``spec`` is one class for the whole batch (an int such as ``9``, or a class name such
    as ``"ostrich"``, looked up case-insensitively in ``class_names``), class indices or
    names per example (tensor or sequence of length N), or one of the helpers
    ``"random"`` (uniform over the classes other than the true one), ``"least-likely"``
    (the class the model finds least likely on the clean input; needs scores), ``"next"``
    (``(y+1) % C``). Text attacks resolve their ``targets=`` here too.
    """
    if spec is None:
        return None
    n = y.shape[0]
    if isinstance(spec, str):
        if spec == "random":
            offset = generator.randint(1, num_classes).to(y.device)  # per example
            return (y + offset) % num_classes
        if spec == "next":
            return (y + 1) % num_classes
        if spec == "least-likely":
            if scores is None:
                raise AccessError(
                    "targets='least-likely' needs scores; this target gives labels only"
                )
            return scores.argmin(dim=1)
        spec = class_index(spec, class_names)
    elif isinstance(spec, Sequence) and any(isinstance(s, str) for s in spec):
        spec = [class_index(s, class_names) if isinstance(s, str) else s for s in spec]
    t = torch.as_tensor(spec)
    broadcast = t.dim() == 0 and not t.is_floating_point() and t.dtype != torch.bool
    if broadcast:
        t = t.expand(n)  # one class for the whole batch
    if t.is_floating_point() or t.dtype == torch.bool or t.shape != (n,):
        raise InputError(
            f"targets must be one class (index or name) or integer class indices of shape "
            f"({n},), got {t.dtype} {tuple(t.shape)}"
        )
    t = t.long()
    if bool((t < 0).any()) or bool((t >= num_classes).any()):
        raise InputError(f"targets must be in [0, {num_classes - 1}]")
    t = t.to(y.device)
    same = t == y
    if bool(same.any()):
        which = same.nonzero().flatten()[:5].tolist()
        raise InputError(
            f"targets equal the true label for examples {which}; a targeted attack needs a "
            "different class"
            + (" (leave the examples of the target class out: x[y != target])" if broadcast else "")
        )
    return t


@dataclass(frozen=True, kw_only=True)
class Attack(ABC):
    """Base of every image/tabular attack. Subclasses are frozen keyword-only dataclasses.

    Common settings:
        eps: budget in the norm (float), or a list of floats for a sweep, or None for
            minimal-perturbation attacks (CW, DeepFool, ...), which then report the distance
            they needed. ``eps=0`` is an exact no-op.
        norm: ``"linf"``, ``"l2"``, ``"l1"`` or ``"l0"`` (each attack lists what it supports).
        early_stop: stop each example as soon as it fools the model (saves passes and
            queries); False runs the fixed schedule (as the papers do).
        seed: seed of the attack's random choices; equal seeds give bitwise-equal results.
            None draws one from torch's global generator (advancing it, never reseeding
            it), so ``torch.manual_seed`` makes an unseeded run reproducible.
        max_queries: per-example budget of model evaluations (mostly for black-box).

    Class attributes describe the attack: ``name`` (registry slug), ``access`` (what the
    target must reveal), ``norms`` (supported), ``minimal`` (finds a smallest perturbation,
    eps optional).
    """

    name: ClassVar[str] = ""
    access: ClassVar[Access] = Access.GRADIENTS
    norms: ClassVar[tuple[str, ...]] = ("linf", "l2")
    minimal: ClassVar[bool] = False

    eps: float | Sequence[float] | None = None
    norm: str = "linf"
    early_stop: bool = True
    seed: int | None = 0
    max_queries: int | None = None

    def __post_init__(self) -> None:
        check_settings(self)  # types from the field annotations (steps=2.5 is refused)
        if self.norm not in NORMS:
            raise InputError(f"unknown norm {self.norm!r}; choose one of {', '.join(NORMS)}")
        if self.norm not in self.norms:
            raise InputError(
                f"{self.name or type(self).__name__} supports norms {self.norms}, not {self.norm!r}"
            )
        if self.eps is None:
            if not self.minimal:
                raise InputError(
                    f"{self.name} needs eps (the perturbation budget in the {self.norm} norm)"
                )
        else:
            eps = tuple(self.eps) if isinstance(self.eps, Sequence) else (self.eps,)
            if not eps:
                raise InputError("eps sweep is empty")
            for e in eps:
                if not isinstance(e, (int, float)) or math.isnan(e) or e < 0:
                    raise InputError(f"eps must be a number >= 0, got {e!r}")
            if isinstance(self.eps, Sequence):
                object.__setattr__(self, "eps", tuple(float(e) for e in eps))
        if self.max_queries is not None and self.max_queries < 1:
            raise InputError(f"max_queries must be >= 1, got {self.max_queries}")
        self.validate()

    def validate(self) -> None:  # noqa: B027 - optional hook
        """Check attack-specific settings; raise :class:`InputError`. Override as needed."""

    def positive(self, **values: float | int) -> None:
        """Helper for :meth:`validate`: raise unless every value is > 0."""
        for k, v in values.items():
            if not v > 0:
                raise InputError(f"{self.name}: {k} must be > 0, got {v}")

    @property
    def config(self) -> dict[str, Any]:
        """The settings as a JSON-friendly dict."""
        return asdict(self)

    @abstractmethod
    def run(
        self,
        model: Callable[[Tensor], Tensor],
        x: Tensor,
        y: Tensor,
        targets: Tensor | None,
        *,
        eps: float,
        bounds: tuple[float, float],
        generator: ExampleRng,
    ) -> Tensor:
        """Return adversarial inputs for ``x`` (N, ...). ``model`` is the view the access
        level allows (logits, scores or labels), charged per example; restrict it to a
        subset with :func:`advx.targets.restrict`. ``eps`` is ``inf`` for unbounded
        minimal attacks; ``bounds`` is the input domain. The base projects and clips the
        output, so ``run`` may return raw iterates, but attacks should stay in the ball
        themselves when their algorithm relies on it. ``generator`` gives each example
        its own random stream (:class:`~advx.attacks.rng.ExampleRng`): draw every random
        choice from it, per row, so results do not depend on the batch."""

    @final
    def __call__(
        self,
        target: Target,
        x: Tensor,
        y: Tensor,
        *,
        targets: TargetSpec = None,
        index: Tensor | Sequence[int] | int | None = None,
    ) -> AttackResult | SweepResult:
        """Attack ``x`` (N, *input_shape) with labels ``y`` (N,) on ``target``.

        Args:
            target: a :class:`~advx.targets.Target` granting at least ``self.access``.
            x: inputs inside the target's bounds.
            y: true labels.
            targets: None (untargeted); one class for all (``9`` or a class name such as
                ``"ostrich"``); class indices or names per example (N,); or
                ``"random"``, ``"least-likely"``, ``"next"``.
            index: the examples' global indices in the data set ``(N,)``, or the index of
                the first one (an int offset); default ``0..N-1``. Random choices derive
                from ``(seed, index)``, so with the same seed an example gets the same
                adversarial whatever batch it is attacked in
                (:func:`advx.attacks.attack_dataset` passes the offsets).

        The attack runs on the target's device (``target.device``; the input's when the
        target does not say); the result comes back on the input's device and dtype.

        Returns:
            An :class:`AttackResult`, or a :class:`SweepResult` when eps is a list.
        """
        if not isinstance(target, Target):
            raise InputError(
                f"target must be an advx Target (WhiteBox/ScoreBox/LabelBox), got "
                f"{type(target).__name__}; wrap a torch model with advx.targets.WhiteBox(model)"
            )
        if target.access < self.access:
            raise AccessError(
                f"{self.name} needs {self.access.label}, but target {target.name!r} gives "
                f"{target.access.label}; pick an attack for that access level (advx attack --list)"
            )
        t0 = time.perf_counter()
        x, y = validate_batch(target, x, y)
        home = x.device
        device = target.device or home
        x, y = x.to(device), y.to(device)
        if isinstance(targets, Tensor):
            targets = targets.to(device)
        rows = _example_index(index, x.shape[0], device)
        seed = self.seed if self.seed is not None else draw_seed()
        epsilons: tuple[float, ...]
        if self.eps is None:
            epsilons = (math.inf,)
        elif isinstance(self.eps, tuple):
            epsilons = self.eps
        else:
            epsilons = (float(self.eps),)  # type: ignore[arg-type]

        kind = {Access.GRADIENTS: "logits", Access.SCORES: "scores", Access.LABELS: "labels"}[
            self.access
        ]
        with target.attacking():
            pred_clean, conf_clean, scores = _predict(target, x)
            tgt = resolve_targets(
                targets,
                y,
                scores,
                target.num_classes,
                ExampleRng(seed, rows, stream=1),
                target.class_names,
            )
            attack_idx = (pred_clean == y).nonzero().flatten()
            results: list[AttackResult] = []
            shared: tuple[Tensor, Oracle] | None = None  # minimal attacks run once
            for eps in epsilons:
                threat = ThreatModel(self.norm, eps, target.bounds)
                x_adv = x.detach().clone()
                oracle = Oracle(target, x.shape[0], max_queries=self.max_queries, device=device)
                attack_idx = attack_idx.to(device)
                if attack_idx.numel() and eps > 0:
                    if self.minimal and shared is not None:
                        raw, oracle = shared
                    else:
                        # every eps starts the same per-example streams afresh
                        gen = ExampleRng(seed, rows).subset(attack_idx)
                        # the attack computes in the model's dtype; the projection below
                        # puts the result back in the caller's dtype, inside the ball
                        raw = self.run(
                            oracle.view(kind, attack_idx),
                            x[attack_idx].to(target.dtype),
                            y[attack_idx],
                            None if tgt is None else tgt[attack_idx],
                            eps=math.inf if self.minimal else eps,
                            bounds=target.bounds,
                            generator=gen,
                        ).detach()
                        if self.minimal:
                            shared = (raw, oracle)
                    x_adv[attack_idx] = threat.project(raw.to(x.dtype), x[attack_idx])
                pred_adv, conf_adv, _ = _predict(target, x_adv)
                if tgt is None:
                    success = pred_adv != y
                else:
                    success = pred_adv == tgt
                status = torch.full_like(y, int(Status.FAILED), dtype=torch.int8)  # on device
                status[success] = int(Status.SUCCEEDED)
                status[pred_clean != y] = int(Status.SKIPPED)
                results.append(
                    AttackResult(
                        x_adv=x_adv,
                        y=y,
                        targets=tgt,
                        status=status,
                        pred_clean=pred_clean,
                        conf_clean=conf_clean,
                        pred_adv=pred_adv,
                        conf_adv=conf_adv,
                        distance=threat.distance(x_adv, x).to(torch.float32),
                        queries=oracle.queries.clone(),
                        threat=threat,
                        attack=self.name,
                        config=self.config,
                        overhead_queries=2 * x.shape[0] if not results else x.shape[0],
                    )
                )
        seconds = time.perf_counter() - t0
        results = [_with_seconds(r, seconds / len(results)).to(home) for r in results]
        if isinstance(self.eps, tuple):
            return SweepResult(tuple(results))
        return results[0]


def _example_index(
    index: Tensor | Sequence[int] | int | None, n: int, device: torch.device
) -> Tensor:
    """Global example indices ``(n,)`` (int64) from an ``index=`` argument."""
    if index is None or isinstance(index, int) and not isinstance(index, bool):
        start = int(index or 0)
        if start < 0:
            raise InputError(f"index must be >= 0, got {start}")
        return torch.arange(start, start + n, device=device)
    t = torch.as_tensor(index)
    if t.is_floating_point() or t.dtype == torch.bool or t.shape != (n,):
        raise InputError(
            f"index must be an int offset or integer indices of shape ({n},), got "
            f"{t.dtype} {tuple(t.shape)}"
        )
    return t.to(device=device, dtype=torch.int64)


def _with_seconds(r: AttackResult, seconds: float) -> AttackResult:
    from dataclasses import replace

    return replace(r, seconds=seconds)


def _predict(target: Target, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    """Labels, confidence of the predicted label (NaN if labels only) and scores, in full
    precision even where the attack's own passes use bfloat16 autocast."""
    with torch.no_grad(), full_precision(target):
        if target.access >= Access.SCORES:
            scores = target.scores(x)
            conf, pred = scores.max(dim=1)
            return pred.long(), conf.float(), scores
        pred = target.labels(x).long()
        return pred, torch.full(pred.shape, float("nan"), device=pred.device), None
