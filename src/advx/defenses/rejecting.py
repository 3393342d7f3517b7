"""A classifier that abstains: a model plus a detector, as one :class:`~advx.targets.Target`.

``RejectingClassifier(model, detector)`` answers ``num_classes + 1`` labels: the model's
classes ``0..C-1`` and **"rejected" = class index ``C``** (``.reject_label``) when the
detector flags the input. Because it is a white-box Target, every attack can be pointed at
the defended system, and the adaptive attacks of :mod:`advx.defenses.adaptive` use its
differentiable logits.

Its logits are the model's logits plus one *reject logit*

    z_R(x) = max_j z_j(x) + (score(x) - threshold) / score_scale,

so ``argmax = C`` exactly when ``score > threshold`` (ties go to the model), and the
margin is measured in units of the clean scores' spread. Gradients flow through the
detector wherever it is differentiable (bit-depth squeezing uses straight-through, BPDA).

Reading attack results on it: the attack base counts any label change as success, so a
*rejected* adversarial input is recorded as "succeeded". Score the defended system with
:func:`defended_accuracy`, where a rejection is a correct answer on an adversarial input
(the attack was caught) and an error on a clean one (a false alarm).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from advx.defenses.detectors import Detector
from advx.errors import InputError
from advx.models.adapter import Classifier
from advx.targets import Access, Target

REJECTED = "rejected"


class RejectingClassifier(Target):
    """The defended system: ``model`` answers unless ``detector`` flags the input.

    Args:
        model: the classifier (an :class:`~advx.models.adapter.Classifier`).
        detector: a calibrated :class:`~advx.defenses.detectors.Detector` guarding
            ``model`` (its ``threshold`` is finite).
        name: shown in messages and reports.

    Labels: ``0..C-1`` as the model; ``C`` (``reject_label``, class name ``"rejected"``)
    when rejected. Access: white-box (logits ``(N, C+1)``, differentiable).

    Example:
        >>> system = RejectingClassifier(clf, det)                       # doctest: +SKIP
        >>> system.labels(x_adv)          # C where the detector fires   # doctest: +SKIP
        >>> create("pgd", eps=0.1)(system, x, y)   # any attack applies  # doctest: +SKIP
    """

    access = Access.GRADIENTS

    def __init__(self, model: Classifier, detector: Detector, *, name: str = "defended") -> None:
        if not isinstance(detector, Detector):
            raise InputError(f"detector must be an advx Detector, got {type(detector).__name__}")
        if detector.model is not model:
            raise InputError("the detector guards a different model object; pass the same model")
        if not torch.isfinite(torch.tensor(detector.threshold)):
            raise InputError("the detector is not calibrated; call detector.calibrate(x_clean)")
        super().__init__(
            input_shape=model.input_shape,
            num_classes=model.num_classes + 1,
            bounds=model.bounds,
            class_names=(*model.class_names, REJECTED),
            name=name,
        )
        self.model = model
        self.detector = detector

    @property
    def reject_label(self) -> int:
        """The label meaning "rejected": the model's number of classes."""
        return self.model.num_classes

    def _logits(self, x: Tensor) -> Tensor:
        logits, score = self.detector(x)  # (N, C), (N,)
        margin = (score - self.detector.threshold) / self.detector.score_scale
        reject = logits.max(dim=1).values + margin
        return torch.cat([logits, reject.unsqueeze(1)], dim=1)  # (N, C+1)

    def _labels(self, x: Tensor) -> Tensor:
        # decided on the score itself, so float rounding in the logit cannot flip it
        logits, score = self.detector(x)
        pred = logits.argmax(dim=1)
        return torch.where(score > self.detector.threshold, self.reject_label, pred)

    @contextmanager
    def attacking(self) -> Iterator[RejectingClassifier]:
        with self.detector.frozen():
            yield self

    def cost(self, x: Tensor, *, repeats: int = 5) -> dict[str, Any]:
        """What the defence costs: parameters and wall time per batch ``x``, bare model
        vs defended system: the fastest of ``repeats`` timed runs each, after one warm-up,
        alternating the two so that a busy machine slows both alike (the minimum is the
        estimate least inflated by other processes).

        Returns a dict: ``model_parameters``, ``detector_parameters`` (trained weights),
        ``detector_buffers`` (other stored numbers: Mahalanobis class means and
        precision, feature normalisation), ``model_ms_per_batch``,
        ``defended_ms_per_batch``, ``latency_ratio``, ``batch_size``. Feature squeezing
        stores nothing but runs the model ``1 + len(squeezers)`` times; a binary detector
        adds a network.
        """
        if repeats < 1:
            raise InputError(f"repeats must be >= 1, got {repeats}")

        def timed(fn: Any) -> float:
            t0 = time.perf_counter()
            fn(x)
            return 1000.0 * (time.perf_counter() - t0)

        with self.attacking(), torch.no_grad():
            self.model(x), self._labels(x)  # warm-up
            runs = [(timed(self.model), timed(self._labels)) for _ in range(repeats)]
        bare, defended = min(r[0] for r in runs), min(r[1] for r in runs)
        return {
            "model_parameters": self.model.num_parameters(),
            "detector_parameters": sum(p.numel() for p in self.detector.parameters()),
            "detector_buffers": sum(b.numel() for b in self.detector.buffers()),
            "model_ms_per_batch": bare,
            "defended_ms_per_batch": defended,
            "latency_ratio": defended / max(bare, 1e-9),
            "batch_size": int(x.shape[0]),
        }


def defended_accuracy(pred: Tensor, y: Tensor, reject_label: int, *, adversarial: bool) -> float:
    """Accuracy of a rejecting system's answers ``pred`` (N,) against labels ``y`` (N,).

    On adversarial inputs (``adversarial=True``) a rejection counts as correct (the
    attack was caught); on clean inputs it counts as an error (a false alarm).
    """
    ok = pred == y
    if adversarial:
        ok = ok | (pred == reject_label)
    return float(ok.float().mean()) if pred.numel() else float("nan")
