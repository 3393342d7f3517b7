"""Scikit-learn classifiers as targets: :func:`sklearn_target` (``predict_proba`` ->
ScoreBox, ``predict`` -> LabelBox), for raw estimators and the zoo's wrappers alike."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from advx.errors import AccessError, InputError
from advx.targets import (
    OUTPUT_KINDS,
    LabelBox,
    ScoreBox,
    check_outputs_arg,
)


def _is_raw_sklearn(model: Any) -> bool:
    """True for a scikit-learn estimator working on flat numpy features; False for a
    wrapper (such as the zoo's) taking image tensors."""
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return False
    return isinstance(model, BaseEstimator)


def sklearn_target(
    estimator: Any,
    *,
    outputs: str = "auto",
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    bounds: tuple[float, float] | None = None,
    class_names: Sequence[str] | None = None,
    name: str | None = None,
) -> ScoreBox | LabelBox:
    """A scikit-learn classifier as a target.

    Two kinds of objects are accepted:

    * a fitted scikit-learn estimator or pipeline working on flat features ``(N, D)``:
      inputs ``(N, *input_shape)`` are flattened to ``(N, D)`` (float32, as a model
      server would receive them). ``predict_proba`` columns and ``predict`` labels follow
      ``estimator.classes_``; labels are returned as *indices* into ``classes_``.
    * a wrapper taking image tensors (the zoo's scikit-learn models, loaded from skops
      files by :func:`advx.models.load`): it must have ``predict_proba``/``predict`` on
      tensors and ``input_shape``, ``num_classes`` (``bounds``, ``class_names`` used
      when present).

    Args:
        estimator: the model.
        outputs: ``"scores"`` (``predict_proba``: a ScoreBox), ``"labels"``
            (``predict``: a LabelBox) or ``"auto"`` (default: scores when the model has
            ``predict_proba``, e.g. not an ``SVC(probability=False)``).
        input_shape: shape of one example; default the wrapper's, or ``(n_features_in_,)``.
        num_classes: default ``len(classes_)`` / the wrapper's.
        bounds: input domain; default the wrapper's, else ``(0, 1)``.
        class_names: default the wrapper's, else ``classes_`` as strings.
        name: shown in messages; default the estimator's class name.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> est = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
        >>> sklearn_target(est).scores(torch.eye(4)).shape
        torch.Size([4, 2])
    """
    check_outputs_arg(outputs, ("auto", *OUTPUT_KINDS))
    has_proba = hasattr(estimator, "predict_proba")
    if outputs == "auto":
        outputs = "scores" if has_proba else "labels"
    if outputs == "scores" and not has_proba:
        raise AccessError(
            f"{type(estimator).__name__} has no predict_proba (e.g. SVC needs probability=True); "
            "use outputs='labels' for a decision-only target"
        )
    if outputs == "labels" and not hasattr(estimator, "predict"):
        raise InputError(f"{type(estimator).__name__} has no predict method")
    name = name or type(estimator).__name__
    if _is_raw_sklearn(estimator):
        return _raw_sklearn(estimator, outputs, input_shape, num_classes, bounds, class_names, name)
    shape = input_shape or getattr(estimator, "input_shape", None)
    classes = num_classes or getattr(estimator, "num_classes", None)
    if shape is None or classes is None:
        raise InputError(
            f"{type(estimator).__name__} is not a scikit-learn estimator and does not say its "
            "input_shape/num_classes; pass input_shape= and num_classes="
        )
    lo, hi = bounds or getattr(estimator, "bounds", None) or (0.0, 1.0)
    meta: dict[str, Any] = {
        "input_shape": tuple(shape),
        "num_classes": int(classes),
        "bounds": (float(lo), float(hi)),
        "class_names": class_names or getattr(estimator, "class_names", None),
        "name": name,
    }
    if outputs == "scores":
        return ScoreBox(lambda x: torch.as_tensor(estimator.predict_proba(x)).float(), **meta)
    return LabelBox(lambda x: torch.as_tensor(estimator.predict(x)).long(), **meta)


def _raw_sklearn(
    est: Any,
    outputs: str,
    input_shape: Sequence[int] | None,
    num_classes: int | None,
    bounds: tuple[float, float] | None,
    class_names: Sequence[str] | None,
    name: str,
) -> ScoreBox | LabelBox:
    classes = getattr(est, "classes_", None)
    if classes is None:
        raise InputError(f"{name} is not fitted (no classes_); fit it first")
    classes = np.asarray(classes)
    n_features: Any = getattr(est, "n_features_in_", None)
    if input_shape is None and n_features is None:
        raise InputError(f"{name} does not record n_features_in_; pass input_shape=")
    shape: tuple[int, ...] = tuple(input_shape) if input_shape is not None else (int(n_features),)
    if n_features is not None and math.prod(shape) != n_features:
        raise InputError(
            f"input_shape {shape} has {math.prod(shape)} values but {name} expects "
            f"{n_features} features"
        )
    if num_classes is not None and num_classes != len(classes):
        raise InputError(f"num_classes={num_classes} but {name} has {len(classes)} classes")
    index = {c.item() if hasattr(c, "item") else c: i for i, c in enumerate(classes)}
    meta = {
        "input_shape": shape,
        "num_classes": len(classes),
        "bounds": bounds or (0.0, 1.0),
        "class_names": class_names or [str(c) for c in classes],
        "name": name,
    }

    def flat(x: Tensor) -> np.ndarray:
        return x.detach().cpu().reshape(x.shape[0], -1).numpy().astype(np.float32, copy=False)

    def scores(x: Tensor) -> Tensor:
        return torch.from_numpy(np.asarray(est.predict_proba(flat(x)), dtype=np.float32))

    def labels(x: Tensor) -> Tensor:
        pred = np.asarray(est.predict(flat(x)))
        return torch.tensor([index[p.item() if hasattr(p, "item") else p] for p in pred])

    if outputs == "scores":
        return ScoreBox(scores, **meta)
    return LabelBox(labels, **meta)
