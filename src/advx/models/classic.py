"""Non-neural members of the zoo: scikit-learn models on flattened images.

``logreg``, ``svm``, ``tree``, ``forest`` and ``knn`` are first-class models: they train
through ``advx train`` like the torch ones, are saved with skops (never pickle), and are
black-box targets (probabilities and labels, no gradients) for score- and decision-based
attacks and for the transfer matrix.

:class:`SklearnClassifier` wraps a fitted estimator so it looks like every other model:
``input_shape``, ``num_classes``, ``class_names``, ``bounds``, and ``predict_proba`` /
``predict`` on image tensors ``(N, *input_shape)`` (flattened inside). It is a
:class:`~advx.targets.Target` with score access, so attacks can use it directly.

Training-set sizes: the slow learners are fitted on a seeded random subsample of the
training split (``max_train`` in their training defaults), chosen so each fits on
Fashion-MNIST in well under two minutes on two CPU cores: ``svm`` 5,000 images, ``knn``
10,000 (its "fit" is storing them; the subsample bounds prediction cost and file size),
``logreg``/``tree``/``forest`` 20,000. Override with ``advx train --max-train``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from advx.errors import CheckpointError, InputError, ModelModeError
from advx.models.registry import ArchSpec, Backend, BuildRequest, register, register_backend
from advx.targets import Access, Target


class SklearnClassifier(Target):
    """A scikit-learn estimator over flattened images, with the zoo's metadata.

    Args:
        estimator: a scikit-learn classifier (fitted or not) taking ``(N, D)`` features,
            ``D = prod(input_shape)``; it must have ``predict_proba``.
        arch: registry name it was built from (recorded in ``model.json``).
        arch_kwargs: the architecture options it was built with.
        input_shape: shape of one example, e.g. ``(1, 28, 28)``.
        num_classes: number of classes; ``predict_proba`` always has this many columns
            (a class missing from the training subsample gets probability 0).
        class_names: one name per class.
        bounds: valid input domain ``(lo, hi)``, default ``(0, 1)``.

    Example:
        >>> from advx.models import build
        >>> clf = build("logreg", input_shape=(1, 2, 2), num_classes=2)
        >>> _ = clf.fit(torch.rand(20, 1, 2, 2), torch.arange(20) % 2)
        >>> clf.predict_proba(torch.rand(3, 1, 2, 2)).shape
        torch.Size([3, 2])
    """

    access = Access.SCORES

    def __init__(
        self,
        estimator: Any,
        *,
        arch: str,
        arch_kwargs: dict[str, Any] | None = None,
        input_shape: Sequence[int],
        num_classes: int,
        class_names: Sequence[str] | None = None,
        bounds: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        super().__init__(
            input_shape=input_shape,
            num_classes=num_classes,
            bounds=bounds,
            class_names=class_names,
            name=arch,
        )
        if not hasattr(estimator, "predict_proba"):
            raise InputError(f"{type(estimator).__name__} has no predict_proba")
        self.estimator = estimator
        self.arch = arch
        self.arch_kwargs: dict[str, Any] = dict(arch_kwargs or {})
        self.num_features = math.prod(self.input_shape)

    # -- data conversion ---------------------------------------------------------------
    def _features(self, x: Tensor | np.ndarray) -> np.ndarray:
        """``(N, *input_shape)`` or ``(N, D)`` -> float32 ``(N, D)`` numpy."""
        t = torch.as_tensor(x)
        if t.dim() < 2 or math.prod(t.shape[1:]) != self.num_features:
            raise InputError(
                f"{self.arch}: expected inputs of shape (N, {', '.join(map(str, self.input_shape))})"
                f" or (N, {self.num_features}), got {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise InputError(f"{self.arch}: inputs must be floating point, got {t.dtype}")
        if not bool(torch.isfinite(t).all()):
            raise InputError(f"{self.arch}: inputs contain NaN or inf")
        return t.detach().cpu().reshape(t.shape[0], -1).numpy().astype(np.float32, copy=False)

    @property
    def fitted(self) -> bool:
        """True once the estimator has been fitted."""
        return hasattr(self.estimator, "classes_")

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise ModelModeError(
                f"{self.arch} is not fitted; call .fit(x, y) or advx.training.train first"
            )

    # -- public API ----------------------------------------------------------------------
    def fit(self, x: Tensor, y: Tensor) -> SklearnClassifier:
        """Fit on images ``x (N, *input_shape)`` and labels ``y (N,)``; returns self."""
        labels = torch.as_tensor(y)
        if labels.dim() != 1 or labels.shape[0] != x.shape[0]:
            raise InputError(f"labels must have shape ({x.shape[0]},), got {tuple(labels.shape)}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise InputError(f"labels must lie in 0..{self.num_classes - 1}")
        self.estimator.fit(self._features(x), labels.cpu().numpy().astype(np.int64))
        return self

    def predict_proba(self, x: Tensor) -> Tensor:
        """Class probabilities ``(N, num_classes)`` float32 for images ``x (N, *input_shape)``."""
        self._check_fitted()
        feats = self._features(x)
        p = np.asarray(self.estimator.predict_proba(feats), dtype=np.float32)  # (N, k)
        classes = np.asarray(self.estimator.classes_, dtype=np.int64)
        if len(classes) == self.num_classes and bool((classes == np.arange(len(classes))).all()):
            return torch.from_numpy(np.ascontiguousarray(p))
        out = np.zeros((feats.shape[0], self.num_classes), dtype=np.float32)
        out[:, classes] = p  # classes absent from the training data get probability 0
        return torch.from_numpy(out)

    def predict(self, x: Tensor) -> Tensor:
        """Predicted labels ``(N,)`` int64: the argmax of :meth:`predict_proba` (so labels
        and scores never disagree, unlike some estimators' own ``predict``)."""
        return self.predict_proba(x).argmax(dim=1)

    def _scores(self, x: Tensor) -> Tensor:
        return self.predict_proba(x)

    def _labels(self, x: Tensor) -> Tensor:
        return self.predict(x)

    def __repr__(self) -> str:
        return (
            f"SklearnClassifier(arch={self.arch!r}, estimator={type(self.estimator).__name__}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes}, "
            f"fitted={self.fitted})"
        )


# ------------------------------------------------------------------------------ backend
def _make_sklearn(spec: ArchSpec, request: BuildRequest) -> SklearnClassifier:
    estimator = spec.builder(seed=request.seed, **request.kwargs)
    return SklearnClassifier(
        estimator,
        arch=request.arch,
        arch_kwargs=request.kwargs,
        input_shape=request.input_shape,
        num_classes=request.num_classes,
        class_names=request.class_names,
        bounds=request.bounds,
    )


def _write_sklearn(model: SklearnClassifier, file: Path) -> None:
    import skops.io

    skops.io.dump(model.estimator, file)
    with open(file, "rb") as f:  # durable before model.json says it is there
        os.fsync(f.fileno())


def _qualname(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def _read_sklearn(
    d: Path, info: dict[str, Any], spec: ArchSpec, kwargs: dict[str, Any]
) -> SklearnClassifier:
    import skops.io

    f = d / SKLEARN.weights_file
    try:
        untrusted = skops.io.get_untrusted_types(file=f)
    except Exception as e:  # skops raises many types for a malformed archive; all mean "bad file"
        raise CheckpointError(f"{f}: not a readable skops file ({e})") from None
    refused = sorted(set(untrusted) - set(spec.trusted_types))
    if refused:
        raise CheckpointError(
            f"{f} contains types not trusted for architecture {spec.name!r}: "
            f"{', '.join(refused)}; refusing to load it (it may run foreign code)"
        )
    try:
        estimator = skops.io.load(f, trusted=list(untrusted))
    except Exception as e:  # see above
        raise CheckpointError(f"{f}: cannot load the estimator ({e})") from None
    if spec.estimator_types and _qualname(estimator) not in spec.estimator_types:
        raise CheckpointError(
            f"{f} holds a {_qualname(estimator)}, but {spec.name!r} saves "
            f"{' or '.join(spec.estimator_types)}"
        )
    n_features = int(np.prod(info["input_shape"]))
    if getattr(estimator, "n_features_in_", n_features) != n_features:
        raise CheckpointError(
            f"{f}: the estimator expects {estimator.n_features_in_} features but input_shape "
            f"{info['input_shape']} has {n_features}"
        )
    classes = np.asarray(getattr(estimator, "classes_", []))
    if classes.size == 0 or classes.min() < 0 or classes.max() >= info["num_classes"]:
        raise CheckpointError(
            f"{f}: the estimator's classes {classes.tolist()[:10]} do not fit num_classes="
            f"{info['num_classes']}"
        )
    bounds = info.get("bounds", [0.0, 1.0])
    clf = SklearnClassifier(
        estimator,
        arch=spec.name,
        arch_kwargs=dict(info["arch_kwargs"]),
        input_shape=info["input_shape"],
        num_classes=info["num_classes"],
        class_names=info["class_names"],
        bounds=(float(bounds[0]), float(bounds[1])),
    )
    clf.name = d.resolve().name
    return clf


def _fit_sklearn(model: SklearnClassifier, x: Tensor, y: Tensor) -> None:
    model.fit(x, y)


SKLEARN = register_backend(
    Backend(
        name="sklearn",
        model_type=SklearnClassifier,
        weights_file="model.skops",  # advx.models.checkpoint.SKLEARN_FILE
        make=_make_sklearn,
        write=_write_sklearn,
        read=_read_sklearn,
        fit=_fit_sklearn,
    )
)
"""The scikit-learn backend: :class:`SklearnClassifier` models, skops files (no pickle;
only the types an architecture declares are trusted), fitted in one call."""


# ----------------------------------------------------------------------------- builders
def logreg(*, seed: int = 0, C: float = 0.1, max_iter: int = 100) -> Any:
    """Multinomial logistic regression (L2, lbfgs)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=max_iter, random_state=seed)


def svm(*, seed: int = 0, C: float = 10.0, gamma: str | float = "scale", cv: int = 3) -> Any:
    """RBF support-vector machine with sigmoid (Platt) probability calibration.

    Platt, "Probabilistic outputs for support vector machines", 1999. Calibration is fitted
    on ``cv``-fold out-of-fold decision values, then one SVC is refitted on all data
    (``CalibratedClassifierCV(..., ensemble=False)``: about ``cv + 1`` SVC fits, cheaper
    than ``SVC(probability=True)``, which scikit-learn 1.9 deprecates).
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    return CalibratedClassifierCV(
        SVC(C=C, gamma=gamma, kernel="rbf", random_state=seed),
        method="sigmoid",
        cv=cv,
        ensemble=False,
    )


def tree(*, seed: int = 0, max_depth: int | None = None, min_samples_leaf: int = 5) -> Any:
    """CART decision tree; leaves of at least ``min_samples_leaf`` images give smoother
    probabilities than pure leaves (useful to score-based attacks)."""
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(
        max_depth=max_depth, min_samples_leaf=min_samples_leaf, random_state=seed
    )


def forest(
    *, seed: int = 0, n_estimators: int = 50, min_samples_leaf: int = 3, n_jobs: int = -1
) -> Any:
    """Random forest (Breiman 2001, "Random forests", Machine Learning 45)."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=n_estimators,
        min_samples_leaf=min_samples_leaf,
        max_features="sqrt",
        n_jobs=n_jobs,
        random_state=seed,
    )


def knn(*, seed: int = 0, n_neighbors: int = 10, weights: str = "distance") -> Any:
    """k-nearest neighbours in pixel space; distance weighting gives graded probabilities.

    ``seed`` is unused (kNN is deterministic); it is accepted like every sklearn builder.
    """
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=n_neighbors, weights=weights)


_TREE_TYPES = ("sklearn.tree._tree.Tree",)

register(
    ArchSpec(
        "logreg",
        "scikit-learn multinomial logistic regression on pixels",
        "sklearn",
        "image",
        logreg,
        train_defaults={"max_train": 20000},
        estimator_types=("sklearn.linear_model._logistic.LogisticRegression",),
    )
)
register(
    ArchSpec(
        "svm",
        "scikit-learn RBF SVM, Platt-calibrated probabilities (5k-image subsample)",
        "sklearn",
        "image",
        svm,
        train_defaults={"max_train": 5000},
        trusted_types=(
            "sklearn.calibration._CalibratedClassifier",
            "sklearn.calibration._SigmoidCalibration",
        ),
        estimator_types=("sklearn.calibration.CalibratedClassifierCV",),
    )
)
register(
    ArchSpec(
        "tree",
        "scikit-learn decision tree (CART)",
        "sklearn",
        "image",
        tree,
        train_defaults={"max_train": 20000},
        trusted_types=_TREE_TYPES,
        estimator_types=("sklearn.tree._classes.DecisionTreeClassifier",),
    )
)
register(
    ArchSpec(
        "forest",
        "scikit-learn random forest, 50 trees",
        "sklearn",
        "image",
        forest,
        train_defaults={"max_train": 20000},
        trusted_types=_TREE_TYPES,
        estimator_types=("sklearn.ensemble._forest.RandomForestClassifier",),
    )
)
register(
    ArchSpec(
        "knn",
        "scikit-learn k-nearest neighbours (k=10, distance-weighted; 10k-image subsample)",
        "sklearn",
        "image",
        knn,
        train_defaults={"max_train": 10000},
        estimator_types=("sklearn.neighbors._classification.KNeighborsClassifier",),
    )
)
