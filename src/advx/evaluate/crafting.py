"""Crafting adversarial examples on non-neural source models (for transfer matrices).

Papernot, McDaniel & Goodfellow (2016, "Transferability in Machine Learning: from
Phenomena to Black-Box Attacks using Adversarial Samples") craft on each technique with
a technique-specific method. advx follows that, inside one common threat model (an
``eps`` ball in the chosen norm, clipped to the input bounds), so every cell of a matrix
compares like with like:

* **linear models** (logistic regression, linear SVM, any scikit-learn linear classifier,
  after optional per-feature scaling) are converted *exactly* into a torch linear layer
  (:func:`linear_module`), so every white-box attack applies — for a linear model the
  gradient step *is* the paper's SVM/LR crafting direction (``w_j - w_y``).
* **decision trees**: :func:`tree_craft` finds, by enumerating the leaves, the leaf of
  another class nearest to ``x`` in the norm and moves ``x`` just inside it; it is the
  exact minimum-perturbation attack on one tree (the paper's tree algorithm searches the
  neighbourhood of the current leaf for the same purpose).
* **k-nearest neighbours**: :func:`knn_craft` steps (a full-budget ``eps`` step) towards
  the centroid of the ``k`` nearest training points of another class, trying the nearest
  classes first (a neighbourhood heuristic; exact kNN attacks are intractable).
* **anything else** that only answers queries (forests, kernel SVMs, HTTP endpoints):
  :func:`distill` trains a small torch substitute on the model's own labels of training
  inputs (Papernot et al. 2017's substitute idea without Jacobian augmentation), and the
  attack runs on the substitute.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from advx.errors import InputError
from advx.models.adapter import Classifier
from advx.training import TrainConfig, fit

_SCALERS = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler")
_LINEAR = (
    "LogisticRegression",
    "LinearSVC",
    "SGDClassifier",
    "RidgeClassifier",
    "Perceptron",
    "PassiveAggressiveClassifier",
    "LinearDiscriminantAnalysis",
)


def unwrap(model: Any) -> Any:
    """The scikit-learn estimator inside a wrapper (attributes ``estimator``, ``model``,
    ``pipeline`` or ``clf``), or ``model`` itself. scikit-learn estimators are returned as
    they are (a forest's ``estimator`` is its unfitted template, not the model)."""
    try:
        from sklearn.base import BaseEstimator

        if isinstance(model, BaseEstimator):
            return model
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        pass
    for attr in ("estimator", "pipeline", "model", "clf"):
        inner = getattr(model, attr, None)
        if inner is not None and hasattr(inner, "predict") and not isinstance(inner, nn.Module):
            return unwrap(inner)
    return model


def split_pipeline(est: Any) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
    """``(scale, shift, final)``: a pipeline of per-feature scalers followed by a final
    estimator, as features ``f = x * scale + shift`` (None, None when there is no
    scaler). Raises :class:`InputError` for other preprocessing steps."""
    steps = getattr(est, "steps", None)
    if steps is None:
        return None, None, est
    scale: np.ndarray | None = None
    shift: np.ndarray | None = None
    for name, step in steps[:-1]:
        kind = type(step).__name__
        if step in (None, "passthrough"):
            continue
        if kind not in _SCALERS:
            raise InputError(
                f"pipeline step {name!r} ({kind}) is not a per-feature scaler; only "
                f"{', '.join(_SCALERS)} can precede a crafted-on model (use a substitute)"
            )
        if kind == "StandardScaler":
            s = 1.0 / np.where(step.scale_ is None, 1.0, step.scale_)
            b = -(step.mean_ if step.mean_ is not None else 0.0) * s
        elif kind == "MinMaxScaler":
            s, b = np.asarray(step.scale_), np.asarray(step.min_)
        else:
            s = 1.0 / np.asarray(step.scale_)
            b = np.zeros_like(s)
        s = np.broadcast_to(np.asarray(s, dtype=np.float64), np.shape(s) or (1,))
        scale = s if scale is None else scale * s
        shift = b if shift is None else shift * s + b
    return scale, shift, steps[-1][1]


def route(model: Any) -> str:
    """How a source is attacked: ``"torch"``, ``"linear"``, ``"tree"``, ``"knn"`` or
    ``"query"`` (only queries: needs a substitute)."""
    from advx.targets import WhiteBox

    if isinstance(model, (nn.Module, WhiteBox)):
        return "torch"
    est = unwrap(model)
    if not hasattr(est, "predict"):
        return "query"
    try:
        _, _, final = split_pipeline(est)
    except InputError:
        return "query"
    kind = type(final).__name__
    if kind in _LINEAR or (
        kind == "SVC" and getattr(final, "kernel", "") == "linear" and len(final.classes_) == 2
    ):
        return "linear"
    if kind in ("DecisionTreeClassifier", "ExtraTreeClassifier"):
        return "tree"
    if kind == "KNeighborsClassifier":
        return "knn"
    return "query"


class _Affine(nn.Module):
    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)

    def forward(self, x: Tensor) -> Tensor:  # (N, ...) -> (N, C)
        out: Tensor = self.linear(x.flatten(1))
        return out


def linear_module(
    model: Any,
    *,
    input_shape: Sequence[int],
    bounds: tuple[float, float] = (0.0, 1.0),
    class_names: Sequence[str] | None = None,
) -> Classifier:
    """An exact torch copy of a fitted linear scikit-learn classifier (optionally after
    per-feature scalers): logits are its ``decision_function`` on flattened inputs, so
    ``argmax`` equals ``predict`` and input gradients are exact.

    Binary models (one decision value ``d``) get logits ``(-d/2, d/2)``. Labels are
    indices into ``classes_``.

    Example:
        >>> clf = linear_module(LogisticRegression().fit(X, y), input_shape=(1, 8, 8))  # doctest: +SKIP
    """
    est = unwrap(model)
    scale, shift, final = split_pipeline(est)
    coef = np.atleast_2d(np.asarray(final.coef_, dtype=np.float64))  # (K, D)
    inter = np.atleast_1d(np.asarray(getattr(final, "intercept_", 0.0), dtype=np.float64))
    d = coef.shape[1]
    if math.prod(input_shape) != d:
        raise InputError(
            f"input_shape {tuple(input_shape)} has {math.prod(input_shape)} values, model expects {d}"
        )
    if scale is not None and shift is not None:
        s = np.broadcast_to(scale, (d,))
        b = np.broadcast_to(shift, (d,))
        inter = inter + coef @ b
        coef = coef * s[None, :]
    if coef.shape[0] == 1:  # binary: one decision value d -> logits (-d/2, d/2)
        coef = np.concatenate([-coef / 2, coef / 2])
        inter = np.concatenate([-inter / 2, inter / 2])
    k = coef.shape[0]
    net = _Affine(torch.tensor(coef, dtype=torch.float32), torch.tensor(inter, dtype=torch.float32))
    names = class_names or [str(c) for c in getattr(final, "classes_", range(k))]
    return Classifier(
        net, input_shape=input_shape, num_classes=k, bounds=bounds, class_names=names
    ).eval()


@dataclass(frozen=True)
class _Leaves:
    """Axis-aligned boxes of a tree's leaves in input space (sparse constraints)."""

    leaf: Tensor  # (C,) leaf id of each constraint
    feature: Tensor  # (C,)
    lo: Tensor  # (C,) strict lower bound (x > lo), input units
    hi: Tensor  # (C,) upper bound (x <= hi)
    leaf_class: Tensor  # (L,) class index of each leaf
    n_leaves: int


def _leaves(tree: Any, scale: np.ndarray | None, shift: np.ndarray | None, d: int) -> _Leaves:
    t = tree.tree_
    left, right, feat, thr = t.children_left, t.children_right, t.feature, t.threshold
    leaf_ids: list[int] = []
    rows: list[tuple[int, int, float, float]] = []
    stack: list[tuple[int, dict[int, tuple[float, float]]]] = [(0, {})]
    while stack:
        node, box = stack.pop()
        if left[node] == -1:
            li = len(leaf_ids)
            leaf_ids.append(node)
            rows.extend((li, f, lo, hi) for f, (lo, hi) in box.items())
            continue
        f, th = int(feat[node]), float(thr[node])
        lo, hi = box.get(f, (-math.inf, math.inf))
        stack.append((int(left[node]), {**box, f: (lo, min(hi, th))}))
        stack.append((int(right[node]), {**box, f: (max(lo, th), hi)}))
    arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
    fidx = arr[:, 1].astype(np.int64)
    lo_f, hi_f = arr[:, 2], arr[:, 3]
    if scale is not None and shift is not None:  # f = x * s + b  ->  x = (f - b) / s
        s = np.broadcast_to(scale, (d,))[fidx]
        b = np.broadcast_to(shift, (d,))[fidx]
        lo_f, hi_f = (lo_f - b) / s, (hi_f - b) / s
    values = t.value[leaf_ids][:, 0, :]  # (L, K)
    return _Leaves(
        leaf=torch.tensor(arr[:, 0], dtype=torch.int64),
        feature=torch.tensor(fidx),
        lo=torch.tensor(lo_f, dtype=torch.float64),
        hi=torch.tensor(hi_f, dtype=torch.float64),
        leaf_class=torch.tensor(values.argmax(axis=1)),
        n_leaves=len(leaf_ids),
    )


def tree_craft(
    model: Any,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: str = "linf",
    bounds: tuple[float, float] = (0.0, 1.0),
    margin: float = 1e-4,
) -> Tensor:
    """Move each input into the nearest leaf of another class of a decision tree.

    Exact for one tree in the linf norm: the leaves are boxes, the linf distance to a box
    is the largest per-feature violation, and the nearest box of another class is found
    by enumeration. Examples whose nearest such leaf is farther than ``eps`` are returned
    unchanged. ``margin`` (input units) keeps the point strictly inside split thresholds.
    Other norms use the same target leaf and report whatever distance it costs, then the
    caller projects.

    Returns ``(N, ...)`` inside the bounds.
    """
    est = unwrap(model)
    scale, shift, tree = split_pipeline(est)
    n = x.shape[0]
    flat = x.detach().reshape(n, -1).double()
    d = flat.shape[1]
    lv = _leaves(tree, scale, shift, d)
    lo_b, hi_b = bounds
    lo = lv.lo.clamp(min=lo_b - margin)
    hi = lv.hi.clamp(max=hi_b)
    xf = flat[:, lv.feature]  # (N, C)
    need_lo = (lo + margin - xf).clamp_min(0)  # move up to enter (x > lo)
    need_hi = (xf - hi).clamp_min(0)  # move down to enter (x <= hi)
    viol = torch.maximum(need_lo, need_hi)  # (N, C)
    empty = (lo + margin > hi).expand_as(viol)  # box does not meet the bounds
    viol = torch.where(empty, torch.full_like(viol, math.inf), viol)
    dist = torch.zeros(n, lv.n_leaves, dtype=torch.float64)
    dist.scatter_reduce_(1, lv.leaf.expand(n, -1), viol, reduce="amax")
    classes = torch.from_numpy(
        np.asarray(getattr(tree, "classes_", np.arange(int(lv.leaf_class.max()) + 1))).astype(
            np.int64
        )
    )
    wrong = lv.leaf_class.unsqueeze(0) != _class_positions(y, classes).unsqueeze(1)  # (N, L)
    dist = torch.where(wrong, dist, torch.full_like(dist, math.inf))
    best_d, best = dist.min(dim=1)
    out = flat.clone()
    for i in (best_d <= eps + 1e-12).nonzero().flatten().tolist():
        mask = lv.leaf == best[i]
        f = lv.feature[mask]
        out[i, f] = torch.minimum(torch.maximum(out[i, f], lo[mask] + margin), hi[mask])
    return out.clamp(lo_b, hi_b).to(x.dtype).view_as(x)


def _class_positions(y: Tensor, classes: Tensor) -> Tensor:
    """Map labels (indices into ``classes_`` for our datasets) to positions."""
    if classes.numel() and bool((classes == torch.arange(classes.numel())).all()):
        return y
    lookup = {int(c): i for i, c in enumerate(classes.tolist())}
    return torch.tensor([lookup.get(int(v), -1) for v in y.tolist()])


def knn_craft(
    model: Any,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: str = "linf",
    bounds: tuple[float, float] = (0.0, 1.0),
    tries: int = 3,
) -> Tensor:
    """Step towards the nearest other classes of a k-nearest-neighbour classifier.

    For each input and each other class ``c``, the centroid of its ``k`` nearest training
    points of class ``c`` is a candidate; the ``tries`` nearest candidates are tried in
    order with a full-budget step (``eps * sign(c - x)`` in linf, ``eps * (c - x)/||c - x||``
    in l2) and the first that changes the kNN's label is kept (else the nearest one).
    """
    from advx.threat import clip_to_bounds, norm_of

    est = unwrap(model)
    scale, shift, knn = split_pipeline(est)
    train = torch.as_tensor(np.asarray(knn._fit_X), dtype=torch.float64)  # (M, D) features
    labels = torch.as_tensor(np.asarray(knn._y), dtype=torch.int64)  # positions in classes_
    if scale is not None and shift is not None:
        d = train.shape[1]
        s = torch.as_tensor(np.broadcast_to(scale, (d,)).copy())
        b = torch.as_tensor(np.broadcast_to(shift, (d,)).copy())
        train = (train - b) / s  # back to input space
    k = int(knn.n_neighbors)
    n = x.shape[0]
    flat = x.detach().reshape(n, -1).double()
    classes = torch.from_numpy(np.asarray(knn.classes_).astype(np.int64))
    pos = _class_positions(y, classes)
    n_classes = classes.numel()
    dist = torch.cdist(flat, train)  # (N, M)
    cents = torch.full((n, n_classes, flat.shape[1]), math.nan, dtype=torch.float64)
    cdist = torch.full((n, n_classes), math.inf, dtype=torch.float64)
    for c in range(n_classes):
        cols = (labels == c).nonzero().flatten()
        if cols.numel() == 0:
            continue
        kk = min(k, cols.numel())
        dd, ii = dist[:, cols].topk(kk, dim=1, largest=False)
        cents[:, c] = train[cols[ii]].mean(dim=1)
        cdist[:, c] = dd.mean(dim=1)
    cdist[torch.arange(n), pos.clamp_min(0)] = math.inf
    order = cdist.argsort(dim=1)[:, : max(1, min(tries, n_classes - 1))]  # (N, T)
    shape = (n, *x.shape[1:])
    fooled = torch.zeros(n, dtype=torch.bool)
    out = x.detach().clone()
    for t in range(order.shape[1]):
        direction = cents[torch.arange(n), order[:, t]] - flat  # (N, D)
        if norm == "linf":
            step = eps * direction.sign()
        else:
            step = eps * direction / norm_of(direction, "l2").clamp_min(1e-12).unsqueeze(1)
        cand = clip_to_bounds((flat + step).to(x.dtype).view(shape), bounds)
        if t == 0:
            out = cand.clone()  # the nearest class, kept when no candidate fools the kNN
        pred = torch.as_tensor(np.asarray(est.predict(cand.reshape(n, -1).numpy())))
        hit = (_class_positions(pred, classes) != pos) & ~fooled
        out[hit] = cand[hit]
        fooled |= hit
    return out


def distill(
    labels: Callable[[Tensor], Tensor],
    x_train: Tensor,
    *,
    num_classes: int,
    bounds: tuple[float, float] = (0.0, 1.0),
    class_names: Sequence[str] | None = None,
    hidden: int = 256,
    epochs: int = 10,
    batch_size: int = 128,
    seed: int = 0,
) -> tuple[Classifier, float]:
    """Train a torch MLP substitute on ``labels(x_train)`` (the source's own answers).

    Args:
        labels: the source model's label function ``(N, ...) -> (N,)`` (queries).
        x_train: inputs to label ``(M, ...)``; the source is queried once per input.
        num_classes: output size.
        hidden, epochs, batch_size: the MLP and its Adam schedule (lr 1e-3).
        seed: initialisation and shuffling seed.

    Returns:
        ``(substitute, agreement)``: a :class:`~advx.models.adapter.Classifier` in eval
        mode and the share of ``x_train`` on which it agrees with the source.

    The training is :func:`advx.training.fit` (Adam, constant learning rate); torch's
    global random state is left as it was.
    """
    with torch.no_grad():
        teacher = torch.cat([labels(x_train[i : i + 1000]) for i in range(0, len(x_train), 1000)])
    d = math.prod(x_train.shape[1:])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )
    clf = Classifier(
        net, input_shape=tuple(x_train.shape[1:]), num_classes=num_classes, bounds=bounds,
        class_names=class_names,
    )  # fmt: skip
    config = TrainConfig(
        epochs=epochs, lr=1e-3, batch_size=batch_size, optimizer="adam", schedule="constant",
        seed=seed,
    )  # fmt: skip
    fit(clf, (x_train, teacher), config=config)
    with torch.no_grad():
        agree = float((clf(x_train).argmax(1) == teacher).float().mean())
    return clf, agree
