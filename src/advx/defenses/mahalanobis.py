"""Mahalanobis-distance detector (Lee, Lee, Lee & Shin, NeurIPS 2018, "A Simple Unified
Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks").

Fit class-conditional Gaussians with one shared ("tied") covariance to the classifier's
penultimate features of clean training data. The score of an input is its Mahalanobis
distance to the closest class mean,

    score(x) = min_c (f(x) - mu_c)^T Sigma^{-1} (f(x) - mu_c),

the negative of the paper's confidence score M(x). Higher = further from every class =
more likely adversarial or out of distribution. This is the paper's single-layer detector
without its two extras: input pre-processing (a small gradient step that raises M(x)) and
the logistic-regression ensemble over layers trained on adversarial examples.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from advx.defenses.detector_base import Detector, Progress, register_detector
from advx.defenses.features import logits_and_features
from advx.errors import InputError
from advx.models.adapter import Classifier


@register_detector("mahalanobis")
class MahalanobisDetector(Detector):
    """Tied-covariance Gaussian detector on a layer's features (Lee et al. 2018).

    Args:
        model: the classifier to guard.
        layer: features to model; default ``"penultimate"`` (input of the last Linear).
        ridge: added to the covariance's diagonal as a share of its mean variance before
            inverting (default 1e-3), which keeps the precision finite when features are
            collinear (e.g. dead ReLUs).

    Fitting uses clean inputs and their true labels only (no attack needed).

    Example:
        >>> det = MahalanobisDetector(clf); det.fit(x_train, y_train)   # doctest: +SKIP
        >>> det.calibrate(x_heldout, fpr=0.05)                          # doctest: +SKIP
    """

    means: Tensor
    precision: Tensor

    def __init__(
        self, model: Classifier, *, layer: str = "penultimate", ridge: float = 1e-3
    ) -> None:
        super().__init__(model)
        if not ridge >= 0:
            raise InputError(f"ridge must be >= 0, got {ridge}")
        self.layer, self.ridge = layer, float(ridge)
        with model.frozen_eval(), torch.no_grad():
            probe = torch.full((1, *model.input_shape), model.bounds[0], device=model.device)
            _, feats = logits_and_features(model, probe, layer)
        d = math.prod(feats.shape[1:])
        self.register_buffer("means", torch.zeros(model.num_classes, d))
        self.register_buffer("precision", torch.eye(d))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logits, feats = logits_and_features(self.model, x, self.layer)
        f = feats.flatten(1)  # (N, D)
        diff = f.unsqueeze(1) - self.means  # (N, C, D)
        dist = torch.einsum("ncd,de,nce->nc", diff, self.precision, diff)  # (N, C)
        return logits, dist.amin(dim=1)

    def fit(
        self,
        x: Tensor,
        y: Tensor,
        x_adv: Tensor | None = None,
        *,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Class means and tied covariance of the features of clean ``x`` by label ``y``."""
        c = self.model.num_classes
        missing = sorted(set(range(c)) - set(y.unique().tolist()))
        if missing:
            raise InputError(
                f"Mahalanobis fitting needs examples of every class; none of {missing}"
            )
        out = []
        with self.model.frozen_eval(), torch.no_grad():
            for i in range(0, x.shape[0], 500):
                out.append(logits_and_features(self.model, x[i : i + 500], self.layer)[1])
        f = torch.cat(out).flatten(1).double()  # (N, D)
        y = y.to(f.device)
        means = torch.stack([f[y == k].mean(dim=0) for k in range(c)])  # (C, D)
        centred = f - means[y]
        cov = centred.T @ centred / f.shape[0]
        cov += (
            self.ridge
            * float(cov.diagonal().mean().clamp_min(1e-12))
            * torch.eye(cov.shape[0], dtype=cov.dtype)
        )
        self.means.copy_(means.float())
        self.precision.copy_(torch.linalg.inv(cov).float())
        if progress:
            progress("fitted class-conditional Gaussians", 1.0)
        return {"feature_dim": int(f.shape[1]), "n": int(f.shape[0])}
