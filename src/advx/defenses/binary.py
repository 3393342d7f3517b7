"""A binary detector network (Metzen, Genewein, Fischer & Bischoff, ICLR 2017, "On
Detecting Adversarial Perturbations").

A small network is attached to the classifier's input or to one of its layers and trained
to tell clean inputs (label 0) from adversarial ones (label 1) crafted on the frozen
classifier. The paper attaches convolutional detectors to ResNet stages; here the head is
a small CNN for image-shaped features (``(C, H, W)``: input or conv layers) and an MLP for
vector features (``penultimate`` or linear layers). Features are standardised per
coordinate with statistics of the fitting set. The paper's "dynamic adversary" training
(attacks that also target the detector while it learns) is not implemented: the detector
learns from a fixed set of attack outputs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advx.defenses.detector_base import Detector, Progress, register_detector
from advx.defenses.features import logits_and_features
from advx.errors import InputError
from advx.models.adapter import Classifier
from advx.training import StepInfo, TrainBatch, TrainConfig, fit


def _head(shape: tuple[int, ...], hidden: int) -> nn.Module:
    """Detector head for one example's feature ``shape`` -> one logit."""
    if len(shape) == 3:
        c, h, w = shape
        pool: list[nn.Module] = [nn.MaxPool2d(2)] if min(h, w) >= 8 else []
        return nn.Sequential(
            nn.Conv2d(c, hidden // 2, 3, padding=1), nn.ReLU(), *pool,
            nn.Conv2d(hidden // 2, hidden, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(hidden, 1),
        )  # fmt: skip
    d = math.prod(shape)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, 1),
    )  # fmt: skip


class _LogisticLoss:
    """:func:`advx.training.fit`'s loss hook for a one-logit head: binary cross-entropy on
    labels 0 (clean) / 1 (adversarial). The logits it reports, ``[0, out]``, make fit's
    accuracy that of the rule ``out > 0``."""

    def loss(self, batch: TrainBatch) -> tuple[Tensor, Tensor]:
        out = batch.forward(batch.x).squeeze(1)  # (B,)
        loss = F.binary_cross_entropy_with_logits(out, batch.y)
        return loss, torch.stack([torch.zeros_like(out), out], dim=1)


@register_detector("binary")
class BinaryDetector(Detector):
    """Detector network on the input or a layer of the classifier (Metzen et al. 2017).

    Args:
        model: the classifier to guard.
        layer: ``"input"`` (default), ``"penultimate"`` or a module name of the model
            (see :mod:`advx.defenses.features`).
        hidden: width of the head (channels or units), default 64.
        epochs: passes over the fitting set (default 10), Adam with ``lr`` (default 1e-3),
            mini-batches of ``batch_size`` (default 128).
        seed: seed of the head's initialisation and of the batch order.

    Score: the head's logit (higher = adversarial).

    Example:
        >>> det = BinaryDetector(clf, layer="input")                      # doctest: +SKIP
        >>> det.fit(x, y, x_adv); det.calibrate(x_heldout, fpr=0.05)       # doctest: +SKIP
    """

    feat_mean: Tensor
    feat_std: Tensor

    def __init__(
        self,
        model: Classifier,
        *,
        layer: str = "input",
        hidden: int = 64,
        epochs: int = 10,
        lr: float = 1e-3,
        batch_size: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__(model)
        if hidden < 2 or epochs < 1 or batch_size < 1 or not lr > 0:
            raise InputError("binary detector: hidden >= 2, epochs >= 1, batch_size >= 1, lr > 0")
        self.layer, self.hidden, self.epochs = layer, int(hidden), int(epochs)
        self.lr, self.batch_size, self.seed = float(lr), int(batch_size), int(seed)
        with model.frozen_eval(), torch.no_grad():
            probe = torch.full((1, *model.input_shape), model.bounds[0], device=model.device)
            _, feats = logits_and_features(model, probe, layer)
        shape = tuple(feats.shape[1:])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.head = _head(shape, self.hidden)
        self.register_buffer("feat_mean", torch.zeros(shape))
        self.register_buffer("feat_std", torch.ones(shape))

    @property
    def needs_adversarial(self) -> bool:
        return True

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logits, feats = logits_and_features(self.model, x, self.layer)
        z = (feats - self.feat_mean) / self.feat_std
        return logits, self.head(z).squeeze(1)

    def _features(self, x: Tensor) -> Tensor:
        out = []
        with self.model.frozen_eval(), torch.no_grad():
            for i in range(0, x.shape[0], 500):
                out.append(logits_and_features(self.model, x[i : i + 500], self.layer)[1])
        return torch.cat(out)

    def fit(
        self,
        x: Tensor,
        y: Tensor,
        x_adv: Tensor | None = None,
        *,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Train the head on clean ``x`` (label 0) vs ``x_adv`` (label 1); returns the
        final training loss and accuracy."""
        if x_adv is None or x_adv.shape[1:] != x.shape[1:] or x_adv.shape[0] == 0:
            raise InputError("the binary detector needs adversarial examples x_adv shaped like x")
        feats = torch.cat([self._features(x), self._features(x_adv)])
        labels = torch.cat([torch.zeros(x.shape[0]), torch.ones(x_adv.shape[0])])
        self.feat_mean.copy_(feats.mean(dim=0))
        self.feat_std.copy_(feats.std(dim=0).clamp_min(1e-3))
        z = (feats - self.feat_mean) / self.feat_std
        # the head as a classifier over standardised features, trained by the one loop
        head = Classifier(
            self.head, input_shape=z.shape[1:], num_classes=2, bounds=(-math.inf, math.inf)
        )
        config = TrainConfig(
            epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, optimizer="adam",
            schedule="constant", seed=self.seed,
        )  # fmt: skip

        def on_step(s: StepInfo) -> None:
            if progress and s.step == s.steps:
                progress(f"detector epoch {s.epoch + 1}/{s.epochs}", (s.epoch + 1) / s.epochs)

        history = fit(head, (z, labels), config=config, adversary=_LogisticLoss(), on_step=on_step)
        last = history.epochs[-1]
        return {"train_loss": last["loss"], "train_accuracy": last["accuracy"]}
