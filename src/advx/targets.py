"""Targets: how an attack may touch a model.

Three access levels, each a strict superset of the next:

* :class:`WhiteBox` — differentiable ``x -> logits`` (gradient attacks: FGSM, PGD, ...),
* :class:`ScoreBox` — ``x -> probabilities`` (score-based attacks: Square, SimBA, ...),
* :class:`LabelBox` — ``x -> label`` (decision-based attacks: HopSkipJump, RayS, ...).

A stronger target can be used wherever a weaker one is asked for (``white.as_scores()``),
never the reverse: an attack that needs more access than the target grants raises
:class:`~advx.errors.AccessError` naming what it needs.

Every target counts the rows it evaluates (``target.queries``). Per-example accounting and
budgets for one attack call live in :class:`Oracle`, which attacks receive instead of the
target: its views are plain callables, so the attack math stays plain functions.

Adapters for other kinds of models (torch without gradients, scikit-learn, ONNX Runtime,
HTTP endpoints speaking the Open Inference Protocol) and the opt-in query cache
(:class:`~advx.adapters.CachedTarget`) live in :mod:`advx.adapters`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from enum import IntEnum
from typing import Any

import torch
from torch import Tensor, nn

from advx.errors import AccessError, InputError, QueryBudgetExceeded

# Called with the number of rows each Oracle charge counts: progress bars of long
# black-box runs listen here (advx.attacks.dataset sets it for the duration of a run).
QUERY_HOOK: ContextVar[Callable[[int], None] | None] = ContextVar("advx_query_hook", default=None)


class Access(IntEnum):
    """What a target reveals; higher includes lower."""

    LABELS = 0
    SCORES = 1
    GRADIENTS = 2

    @property
    def label(self) -> str:
        """Human name used in messages."""
        return {0: "labels only (LabelBox)", 1: "scores (ScoreBox)", 2: "gradients (WhiteBox)"}[
            int(self)
        ]


class Target:
    """Base of every target: metadata, access level and a query counter.

    Subclasses implement the one evaluation their access level provides
    (``_logits``, ``_scores`` or ``_labels``); the others derive from it.
    """

    access: Access = Access.LABELS

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        class_names: Sequence[str] | None = None,
        name: str = "model",
    ) -> None:
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.bounds = (float(bounds[0]), float(bounds[1]))
        self.class_names = (
            tuple(class_names) if class_names else tuple(str(i) for i in range(num_classes))
        )
        self.name = name
        self.queries = 0  # rows evaluated through this target, all callers together

    # -- evaluations (public ones count queries) -------------------------------------
    def logits(self, x: Tensor) -> Tensor:
        """Differentiable logits ``(N, C)``; white-box targets only."""
        self._require(Access.GRADIENTS, "logits")
        self.queries += x.shape[0]
        return check_output(self, self._logits(x), x.shape[0], "logits")

    def scores(self, x: Tensor) -> Tensor:
        """Class probabilities ``(N, C)`` (no gradient); score or white-box targets."""
        self._require(Access.SCORES, "scores")
        self.queries += x.shape[0]
        with torch.no_grad():
            return check_output(self, self._scores(x), x.shape[0], "scores")

    def labels(self, x: Tensor) -> Tensor:
        """Predicted labels ``(N,)`` (int64); every target."""
        self.queries += x.shape[0]
        with torch.no_grad():
            return check_output(self, self._labels(x), x.shape[0], "labels")

    def _logits(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _scores(self, x: Tensor) -> Tensor:
        return self._logits(x).softmax(dim=1)

    def _labels(self, x: Tensor) -> Tensor:
        return self._scores(x).argmax(dim=1)

    def _require(self, access: Access, what: str) -> None:
        if self.access < access:
            raise AccessError(
                f"target {self.name!r} gives {self.access.label}, but {what} needs "
                f"{access.label}; use an attack for this access level "
                "(`advx attack --list` shows what each attack needs)"
            )

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype the model computes in (attacks run in it); float32 by default."""
        return torch.float32

    @property
    def device(self) -> torch.device | None:
        """Device the model wants its inputs on (attacks run there), or None when it
        takes inputs wherever they are (remote and scikit-learn models)."""
        return None

    # -- modes and views ---------------------------------------------------------------
    def attacking(self) -> Any:
        """Context for the duration of an attack (eval mode, frozen parameters)."""
        return nullcontext(self)

    def as_scores(self) -> Target:
        """This target seen as a :class:`ScoreBox` (only probabilities visible)."""
        self._require(Access.SCORES, "as_scores()")
        return _Weakened(self, Access.SCORES)

    def as_labels(self) -> Target:
        """This target seen as a :class:`LabelBox` (only labels visible)."""
        return _Weakened(self, Access.LABELS)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, bounds={self.bounds})"
        )


def check_output(target: Target, out: Any, n: int, kind: str) -> Tensor:
    """``out`` if it is what ``target`` promises for ``n`` inputs: ``(n, num_classes)``
    logits/scores without NaN, or ``(n,)`` labels in ``[0, num_classes)``; otherwise an
    :class:`~advx.errors.InputError` naming the model and what it returned (a model that
    answers NaN or too few classes would make every number computed from it meaningless)."""
    c = target.num_classes
    if not isinstance(out, Tensor):
        raise InputError(
            f"model {target.name!r} returned a {type(out).__name__} for {kind}; expected a tensor"
        )
    if kind == "labels":
        if tuple(out.shape) != (n,):
            raise InputError(
                f"model {target.name!r} returned labels of shape {tuple(out.shape)} for {n} "
                f"inputs; expected ({n},)"
            )
        if out.numel() and (bool((out < 0).any()) or bool((out >= c).any())):
            raise InputError(
                f"model {target.name!r} returned labels outside [0, {c - 1}] for its {c} classes"
            )
        return out
    if tuple(out.shape) != (n, c):
        raise InputError(
            f"model {target.name!r} returned {kind} of shape {tuple(out.shape)} for {n} inputs; "
            f"expected ({n}, {c}) for its {c} classes (check num_classes and the model's "
            "last layer)"
        )
    nan = torch.isnan(out.detach()).any(dim=1)
    if bool(nan.any()):
        bad = nan.nonzero().flatten()[:5].tolist()
        raise InputError(
            f"model {target.name!r} returned NaN {kind} for inputs {bad}; its outputs are "
            "undefined there (check the weights and the normalisation), so nothing about it "
            "can be measured"
        )
    return out


class _Weakened(Target):
    """A view of a stronger target restricted to a lower access level."""

    def __init__(self, inner: Target, access: Access) -> None:
        super().__init__(
            input_shape=inner.input_shape,
            num_classes=inner.num_classes,
            bounds=inner.bounds,
            class_names=inner.class_names,
            name=inner.name,
        )
        self.inner = inner
        self.access = access

    @property
    def dtype(self) -> torch.dtype:
        return self.inner.dtype

    @property
    def device(self) -> torch.device | None:
        return self.inner.device

    def _scores(self, x: Tensor) -> Tensor:
        return self.inner._scores(x)

    def _labels(self, x: Tensor) -> Tensor:
        return self.inner._labels(x)

    def attacking(self) -> Any:
        return self.inner.attacking()


class WhiteBox(Target):
    """Full access to a torch classifier: logits and input gradients.

    Args:
        model: an :class:`~advx.models.adapter.Classifier` (preferred: it carries input
            shape, bounds and normalisation) or a plain ``nn.Module`` mapping bounded
            inputs to logits, in which case ``input_shape`` and ``num_classes`` are needed.
        bounds: input domain, overriding the classifier's.
        name: shown in messages and reports.
        amp: run the forward under :func:`advx.devices.autocast` (bfloat16 on CUDA, where it is
            faster); the input gradients and the adversarial inputs keep the input's
            dtype. Off the GPU it does nothing. The clean and final predictions that decide
            an attack's success run in full precision (:func:`full_precision`): an input
            that fools the model only in bfloat16 counts as a failure.

    During an attack (:meth:`attacking`) the model is put in eval mode and its parameters
    stop requiring gradients; both are restored exactly afterwards. Input gradients come
    from ``torch.autograd.grad``, so no parameter ``.grad`` is ever written.

    Example:
        >>> from advx.models.adapter import Classifier
        >>> clf = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)),
        ...                  input_shape=(1, 2, 2), num_classes=2)
        >>> WhiteBox(clf).logits(torch.zeros(3, 1, 2, 2)).shape
        torch.Size([3, 2])
    """

    access = Access.GRADIENTS

    def __init__(
        self,
        model: nn.Module,
        *,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        bounds: tuple[float, float] | None = None,
        class_names: Sequence[str] | None = None,
        name: str = "model",
        amp: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise InputError(
                f"WhiteBox needs a torch nn.Module, got {type(model).__name__}; for other "
                "models use ScoreBox/LabelBox adapters (advx.targets)"
            )
        # imported here, not at the top: advx.models imports this module (its scikit-learn
        # models are Targets), so a top-level import is circular when targets loads first
        from advx.models.adapter import Classifier

        if isinstance(model, Classifier):
            input_shape = input_shape or model.input_shape
            num_classes = num_classes or model.num_classes
            bounds = bounds or model.bounds
            class_names = class_names or model.class_names
        if input_shape is None or num_classes is None:
            raise InputError(
                "a plain nn.Module needs input_shape= and num_classes=; or wrap it in "
                "advx.models.adapter.Classifier"
            )
        super().__init__(
            input_shape=input_shape,
            num_classes=num_classes,
            bounds=bounds or (0.0, 1.0),
            class_names=class_names,
            name=name,
        )
        self.model = model
        self.amp = bool(amp)

    @property
    def dtype(self) -> torch.dtype:
        p = next(self.model.parameters(), None)
        return p.dtype if p is not None and p.is_floating_point() else torch.float32

    @property
    def device(self) -> torch.device | None:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else None

    def _logits(self, x: Tensor) -> Tensor:
        # the model runs in its own dtype and device; autograd carries gradients back
        # through both casts, so the input gradient has the input's dtype, and the logits
        # come back where the input is
        p = next(self.model.parameters(), None)
        home = x.device
        if p is not None and (
            x.device != p.device or (p.is_floating_point() and x.dtype != p.dtype)
        ):
            x = x.to(device=p.device, dtype=p.dtype if p.is_floating_point() else x.dtype)
        if self.amp:  # mixed precision on CUDA (advx.devices.autocast); no-op elsewhere
            from advx.devices import autocast

            with autocast(x.device):
                out = self.model(x).float()
        else:
            out = self.model(x)
        # checked here too: weaker views (as_labels) reach the model through this method
        return check_output(self, out, x.shape[0], "logits").to(home)

    @contextmanager
    def attacking(self) -> Iterator[WhiteBox]:
        from advx.models.adapter import frozen_eval

        with frozen_eval(self.model):
            yield self


class ScoreBox(Target):
    """Probabilities only, from any function ``x (N, ...) -> probs (N, C)``.

    Example:
        >>> box = ScoreBox(lambda x: torch.full((len(x), 2), 0.5), input_shape=(3,),
        ...                num_classes=2)
        >>> box.scores(torch.zeros(4, 3)).shape
        torch.Size([4, 2])
    """

    access = Access.SCORES

    def __init__(self, fn: Callable[[Tensor], Tensor], **meta: Any) -> None:
        super().__init__(**meta)
        self.fn = fn

    def _scores(self, x: Tensor) -> Tensor:
        return check_output(self, self.fn(x), x.shape[0], "scores")

    @classmethod
    def from_torch(cls, module: nn.Module, **meta: Any) -> ScoreBox:
        """Softmax probabilities of a torch module, no gradients; ``meta`` as for
        :func:`torch_target` (other adapters live in :mod:`advx.adapters`)."""
        return TorchScoreBox(WhiteBox(module, **meta))


class LabelBox(Target):
    """Labels only, from any function ``x (N, ...) -> labels (N,)``."""

    access = Access.LABELS

    def __init__(self, fn: Callable[[Tensor], Tensor], **meta: Any) -> None:
        super().__init__(**meta)
        self.fn = fn

    def _labels(self, x: Tensor) -> Tensor:
        return check_output(self, torch.as_tensor(self.fn(x)).long(), x.shape[0], "labels")

    @classmethod
    def from_torch(cls, module: nn.Module, **meta: Any) -> LabelBox:
        """Argmax labels of a torch module; ``meta`` as for
        :func:`torch_target` (other adapters live in :mod:`advx.adapters`)."""
        return TorchLabelBox(WhiteBox(module, **meta))


# ------------------------------------------------------------------ torch without gradients
OUTPUT_KINDS = ("scores", "labels")


def check_outputs_arg(outputs: str, allowed: Sequence[str] = OUTPUT_KINDS) -> None:
    """Raise :class:`~advx.errors.InputError` unless ``outputs`` is one of ``allowed``
    (the ``outputs=`` argument of the adapters)."""
    if outputs not in allowed:
        raise InputError(f"outputs must be one of {', '.join(map(repr, allowed))}, got {outputs!r}")


def target_meta(t: Target) -> dict[str, Any]:
    """The metadata keyword arguments of ``t`` (input shape, classes, bounds, names), to
    build another target over the same model."""
    return {
        "input_shape": t.input_shape,
        "num_classes": t.num_classes,
        "bounds": t.bounds,
        "class_names": t.class_names,
        "name": t.name,
    }


class TorchScoreBox(ScoreBox):
    """Probabilities (softmax of the logits) of a torch module, without gradients.

    Built by :func:`torch_target`; during an attack the module is in eval mode with frozen
    parameters, exactly as for :class:`~advx.targets.WhiteBox`.
    """

    def __init__(self, white: WhiteBox) -> None:
        super().__init__(lambda x: white._logits(x).softmax(dim=1), **target_meta(white))
        self.white = white

    def attacking(self) -> Any:
        return self.white.attacking()


class TorchLabelBox(LabelBox):
    """Labels (argmax of the logits) of a torch module; see :class:`TorchScoreBox`."""

    def __init__(self, white: WhiteBox) -> None:
        super().__init__(lambda x: white._logits(x).argmax(dim=1), **target_meta(white))
        self.white = white

    def attacking(self) -> Any:
        return self.white.attacking()


@contextmanager
def full_precision(target: Target) -> Iterator[None]:
    """Inside the block, a :class:`WhiteBox` built with ``amp=True`` (or a score/label
    view of one) runs its model in full precision; anything else is left as it is. Attacks
    use it for the predictions that decide success."""
    white: object = target
    while not isinstance(white, WhiteBox) and white is not None:  # views of a WhiteBox
        white = getattr(white, "inner", None) or getattr(white, "white", None)
    if not isinstance(white, WhiteBox) or not white.amp:
        yield
        return
    white.amp = False
    try:
        yield
    finally:
        white.amp = True


def torch_target(
    module: nn.Module,
    *,
    outputs: str = "scores",
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    bounds: tuple[float, float] | None = None,
    class_names: Sequence[str] | None = None,
    name: str = "model",
) -> ScoreBox | LabelBox:
    """A torch classifier seen as a score-based or decision-based black box.

    Args:
        module: an :class:`~advx.models.adapter.Classifier` (carries its metadata) or a
            plain module mapping bounded inputs ``(N, *input_shape)`` to logits ``(N, C)``.
        outputs: ``"scores"`` (softmax probabilities; a ScoreBox, default) or ``"labels"``
            (argmax; a LabelBox).
        input_shape, num_classes, bounds, class_names: needed for a plain module;
            override the Classifier's otherwise.
        name: shown in messages and reports.

    Example:
        >>> from advx.models.adapter import Classifier
        >>> clf = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)),
        ...                  input_shape=(1, 2, 2), num_classes=3)
        >>> box = torch_target(clf)
        >>> box.scores(torch.zeros(5, 1, 2, 2)).sum(dim=1).allclose(torch.ones(5))
        True
    """
    check_outputs_arg(outputs)
    white = WhiteBox(
        module,
        input_shape=input_shape,
        num_classes=num_classes,
        bounds=bounds,
        class_names=class_names,
        name=name,
    )
    return TorchScoreBox(white) if outputs == "scores" else TorchLabelBox(white)


# ---------------------------------------------------------------------------- oracle
class Oracle:
    """Per-example query accounting and budgets for one attack call over ``n`` examples.

    Attacks never hold the target; they get views (:meth:`view`) that are plain callables
    ``x -> output`` charged to a set of examples. ``view.at(idx)`` restricts a view to a
    subset, which is how vectorised attacks stop examples individually.

    Args:
        target: the model.
        n: number of examples in the batch being attacked.
        max_queries: per-example budget; querying an example whose budget is spent raises
            :class:`~advx.errors.QueryBudgetExceeded` (attacks check ``view.exhausted``).
        device: where the attack computes (its inputs' device). The counts live there, so
            views index them with the attack's own tensors and a white-box attack (no
            budget) never waits for the GPU to count; default CPU.
    """

    def __init__(
        self,
        target: Target,
        n: int,
        *,
        max_queries: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.target = target
        self.n = n
        self.max_queries = max_queries
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.queries = torch.zeros(n, dtype=torch.int64, device=self.device)

    def charge(self, idx: Tensor) -> None:
        """Count one query for each entry of ``idx`` (repeats count repeatedly)."""
        idx = idx.to(self.device)
        if self.max_queries is None:  # nothing to check: count without waiting for a GPU
            self.queries.index_add_(0, idx, torch.ones_like(idx))
        else:
            counts = torch.bincount(idx, minlength=self.n)
            over = (self.queries + counts > self.max_queries) & (counts > 0)
            if bool(over.any()):
                bad = over.nonzero().flatten()[:5].tolist()
                raise QueryBudgetExceeded(
                    f"examples {bad} would exceed max_queries={self.max_queries}; attacks "
                    "must drop examples whose view.exhausted is True"
                )
            self.queries += counts
        hook = QUERY_HOOK.get()
        if hook is not None:
            hook(int(idx.numel()))

    @property
    def exhausted(self) -> Tensor:
        """Bool ``(n,)``: examples with no query left."""
        if self.max_queries is None:
            return torch.zeros(self.n, dtype=torch.bool, device=self.device)
        return self.queries >= self.max_queries

    def view(self, kind: str = "logits", idx: Tensor | None = None) -> Query:
        """A callable over examples ``idx`` (default all) returning ``kind`` outputs:
        ``"logits"``, ``"scores"`` or ``"labels"``."""
        if kind not in ("logits", "scores", "labels"):
            raise InputError(f"unknown view kind {kind!r}")
        if idx is None:
            idx = torch.arange(self.n, device=self.device)
        return Query(self, idx, kind)


class Query:
    """A model view charged to examples ``idx`` of an :class:`Oracle`.

    ``query(x)`` evaluates ``x`` whose rows belong, in order, to examples ``idx``; if
    ``x`` has ``k * len(idx)`` rows (e.g. k samples per example for a gradient estimate),
    rows are charged in blocks: row ``r`` to example ``idx[r // k]``.
    """

    def __init__(self, oracle: Oracle, idx: Tensor, kind: str) -> None:
        self.oracle = oracle
        self.idx = idx.to(oracle.device)  # indexes the oracle's counts
        self.kind = kind

    def __len__(self) -> int:
        return int(self.idx.numel())

    def at(self, sub: Tensor) -> Query:
        """Restrict to the examples ``sub`` (indices, or a bool mask, into this view)."""
        if sub.dtype == torch.bool:
            sub = sub.nonzero().flatten()
        return Query(self.oracle, self.idx[sub.to(self.idx.device)], self.kind)

    def as_kind(self, kind: str) -> Query:
        """The same examples, another output kind."""
        return Query(self.oracle, self.idx, kind)

    @property
    def queries(self) -> Tensor:
        """Queries spent so far by each example of this view ``(len,)``."""
        return self.oracle.queries[self.idx]

    @property
    def exhausted(self) -> Tensor:
        """Bool ``(len,)``: examples of this view with no budget left."""
        return self.oracle.exhausted[self.idx]

    @property
    def remaining(self) -> Tensor | None:
        """Queries left per example, or None when there is no budget."""
        if self.oracle.max_queries is None:
            return None
        return self.oracle.max_queries - self.queries

    def __call__(self, x: Tensor) -> Tensor:
        m = len(self)
        if m == 0 or x.shape[0] % m:
            raise InputError(
                f"query of {x.shape[0]} rows does not match the {m} examples of this view"
            )
        k = x.shape[0] // m
        idx = self.idx if k == 1 else self.idx.repeat_interleave(k)
        self.oracle.charge(idx)
        t = self.oracle.target
        if self.kind == "labels":
            return t.labels(x)
        out = t.logits(x) if self.kind == "logits" else t.scores(x)
        # attacks compute in the dtype of their inputs, whatever the model's own dtype
        return out.to(x.dtype) if out.dtype != x.dtype and x.is_floating_point() else out


def restrict(model: Callable[[Tensor], Tensor], idx: Tensor) -> Callable[[Tensor], Tensor]:
    """``model`` restricted to examples ``idx``: a :class:`Query` is narrowed so queries
    are charged to the right examples; a plain callable is returned as is."""
    if isinstance(model, Query):
        return model.at(idx)
    return model


def exhausted(model: Callable[[Tensor], Tensor], n: int) -> Tensor:
    """Bool ``(n,)`` of examples out of budget (all False for a plain callable)."""
    if isinstance(model, Query):
        return model.exhausted
    return torch.zeros(n, dtype=torch.bool)
