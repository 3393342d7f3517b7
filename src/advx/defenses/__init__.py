"""Defences, proactive and reactive, and the attacks that test them.

Proactive — adversarial training (:mod:`~advx.defenses.adversarial_training`): the
ordinary training loop with an adversary in its loss hook (FGSM, FGSM with random start,
PGD, TRADES), a registry behind ``advx train --adv``, a catastrophic-overfitting guard, and
multi-process training under ``torchrun`` (:mod:`~advx.defenses.distributed`).

Reactive — detection (:mod:`~advx.defenses.detectors`): feature squeezing, a binary
detector network, and a Mahalanobis detector, calibrated at a false-positive rate and
saved as safetensors + JSON; :class:`~advx.defenses.rejecting.RejectingClassifier` (model
+ detector, itself a Target whose label ``num_classes`` means "rejected"); adaptive
attacks and the detector report (:mod:`~advx.defenses.adaptive`).

Example:
    >>> from advx.defenses import create_adversary, train_detector, RejectingClassifier
    >>> adv = create_adversary("fgsm-rs", eps=0.1)
    >>> det = train_detector(clf, x, y, kind="binary", eps=0.1)   # doctest: +SKIP
    >>> system = RejectingClassifier(clf, det)                     # doctest: +SKIP
"""

from __future__ import annotations

from advx.defenses.adaptive import AdaptivePGD, DetectorReport, evaluate_detector, evasion_loss
from advx.defenses.adversarial_training import (
    OverfitGuard,
    adversarial_train,
    adversaries,
    create_adversary,
    register_adversary,
)
from advx.defenses.detectors import (
    Detector,
    create_detector,
    detector_kinds,
    load_detector,
    train_detector,
)
from advx.defenses.rejecting import RejectingClassifier, defended_accuracy

__all__ = [
    "AdaptivePGD",
    "Detector",
    "DetectorReport",
    "OverfitGuard",
    "RejectingClassifier",
    "adversarial_train",
    "adversaries",
    "create_adversary",
    "create_detector",
    "defended_accuracy",
    "detector_kinds",
    "evaluate_detector",
    "evasion_loss",
    "load_detector",
    "register_adversary",
    "train_detector",
]
