"""Adversarial-example detectors: creating one by kind, loading a saved one (safetensors +
JSON, never pickle), and :func:`train_detector` (fit + calibrate at a chosen false-positive
rate). The base class and the kind registry are :mod:`advx.defenses.detector_base`.

A detector guards one classifier. ``detector(x)`` returns ``(logits, score)``: the
classifier's logits ``(N, C)`` and an anomaly score ``(N,)`` (higher = more likely
adversarial), computed in one pass where the method allows, and differentiable w.r.t.
``x`` so adaptive attacks (:mod:`advx.defenses.adaptive`) can go through it. An input is
flagged when ``score > threshold``; :meth:`Detector.calibrate` sets the threshold so that
a chosen share of clean inputs (default 5%) is flagged.

Kinds (``create_detector(kind, model, **settings)``):

* ``"squeeze"`` — feature squeezing (Xu, Evans & Qi, NDSS 2018),
  :class:`~advx.defenses.squeezing.FeatureSqueezing`;
* ``"binary"`` — a detector network on inputs or features (Metzen et al., ICLR 2017),
  :class:`~advx.defenses.binary.BinaryDetector`;
* ``"mahalanobis"`` — class-conditional Gaussians with tied covariance on penultimate
  features (Lee et al., NeurIPS 2018), :class:`~advx.defenses.mahalanobis.MahalanobisDetector`.

Example:
    >>> det = train_detector(clf, x_train, y_train, kind="mahalanobis", eps=0.1)  # doctest: +SKIP
    >>> det.flag(x_test).float().mean()   # ~0.05 on clean data               # doctest: +SKIP
    >>> det.save("runs/det"); load_detector("runs/det", clf)                    # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

from advx.defenses.detector_base import (
    FORMAT,
    VERSION,
    Detector,
    Progress,
    model_fingerprint,
    register_detector,
    registered_kinds,
)
from advx.errors import CheckpointError, ConfigError, InputError
from advx.models.adapter import Classifier

__all__ = [  # the base and the kind registry live in advx.defenses.detector_base
    "FORMAT",
    "VERSION",
    "Detector",
    "Progress",
    "adversarial_examples",
    "create_detector",
    "detector_kinds",
    "load_detector",
    "model_fingerprint",
    "read_detector_info",
    "register_detector",
    "train_detector",
]

log = logging.getLogger(__name__)


def detector_kinds() -> dict[str, type[Detector]]:
    """The registered detector classes by kind (loads the built-in ones)."""
    import advx.defenses.binary  # noqa: F401  (each registers its kind)
    import advx.defenses.mahalanobis  # noqa: F401
    import advx.defenses.squeezing  # noqa: F401

    return registered_kinds()


def create_detector(kind: str, model: Classifier, **settings: Any) -> Detector:
    """A new, unfitted detector of ``kind`` guarding ``model``.

    Raises:
        ConfigError: unknown kind, or a setting the kind does not have.
    """
    kinds = detector_kinds()
    if kind not in kinds:
        raise ConfigError(f"unknown detector {kind!r}; choose one of {sorted(kinds)}")
    cls = kinds[kind]
    unknown = set(settings) - set(cls.setting_names())
    if unknown:
        raise ConfigError(
            f"detector {kind!r} has no setting(s) {sorted(unknown)}; "
            f"it accepts {sorted(cls.setting_names())}"
        )
    return cls(model, **settings)


def read_detector_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``detector.json`` of a saved detector, checked for format and version."""
    p = Path(path) / "detector.json"
    if not p.is_file():
        raise CheckpointError(
            f"{path}: no detector.json; is this a directory written by `advx detect train`?"
        )
    try:
        meta = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not an advx detector (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{p}: detector format version {meta.get('version')}, need {VERSION}")
    for key in ("kind", "settings", "threshold", "score_scale", "model"):
        if key not in meta:
            raise CheckpointError(f"{p}: missing key {key!r}")
    return meta


def load_detector(
    path: str | os.PathLike[str], model: Classifier, *, strict: bool = True
) -> Detector:
    """Load a detector saved by :meth:`Detector.save`, guarding ``model``.

    Args:
        path: the detector directory.
        model: the classifier it was fitted on.
        strict: refuse a model whose weights differ from the ones the detector was
            calibrated on (the threshold would be meaningless); False only warns.

    Raises:
        CheckpointError: missing/corrupt files, or a model that does not match.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta = read_detector_info(path)
    info = meta["model"]
    if list(model.input_shape) != list(
        info.get("input_shape", [])
    ) or model.num_classes != info.get("num_classes"):
        raise CheckpointError(
            f"{path}: the detector was fitted on a model with input shape "
            f"{info.get('input_shape')} and {info.get('num_classes')} classes, not "
            f"{list(model.input_shape)} and {model.num_classes}"
        )
    if info.get("sha256") != model_fingerprint(model):
        msg = (
            f"{path}: the model's weights differ from those the detector was fitted on; "
            "refit it (`advx detect train`)"
        )
        if strict:
            raise CheckpointError(msg + " or load with strict=False")
        log.warning(msg)
    try:
        det = create_detector(str(meta["kind"]), model, **meta["settings"])
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    try:
        tensors = load_file(str(Path(path) / "detector.safetensors"))
    except (FileNotFoundError, SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: cannot read detector.safetensors ({e})") from None
    try:
        det.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: detector weights do not match its settings ({e})") from None
    det.threshold = float(meta["threshold"])
    det.score_scale = float(meta["score_scale"])
    det.calibration = dict(meta.get("calibration") or {})
    return det


def adversarial_examples(
    model: Classifier,
    x: Tensor,
    y: Tensor,
    *,
    attack: str = "pgd",
    eps: float = 0.1,
    seed: int = 0,
    batch_size: int = 500,
    **settings: Any,
) -> Tensor:
    """Adversarial versions of ``x`` from a registered attack (``advx.attacks.create``)
    on the bare ``model``; examples the model already gets wrong come back unchanged."""
    from advx.attacks import AttackResult, attack_dataset, create
    from advx.targets import WhiteBox

    atk = create(attack, eps=eps, seed=seed, **settings)
    if isinstance(atk.eps, tuple):
        raise InputError("adversarial_examples takes a single eps")
    r = attack_dataset(atk, WhiteBox(model), (x, y), batch_size=batch_size, progress=False)
    return cast(AttackResult, r).x_adv


def train_detector(
    model: Classifier,
    x: Tensor,
    y: Tensor,
    *,
    kind: str,
    attack: str = "pgd",
    eps: float = 0.1,
    fpr: float = 0.05,
    calib_share: float = 0.25,
    seed: int = 0,
    attack_settings: dict[str, Any] | None = None,
    progress: Progress | None = None,
    **settings: Any,
) -> Detector:
    """Fit and calibrate a detector of ``kind`` for ``model`` on clean data ``(x, y)``.

    A share ``calib_share`` of the data (random, seeded) is held out to calibrate the
    threshold at ``fpr``; the rest fits the detector. Detectors that learn from attacks
    (``binary``) get adversarial examples of ``attack`` at ``eps`` crafted on the bare
    model (extra attack settings in ``attack_settings``).

    Args:
        model: the classifier to guard.
        x, y: clean training inputs (N, *input_shape) and labels (N,).
        kind: ``"squeeze"``, ``"binary"`` or ``"mahalanobis"``.
        attack, eps: the attack the detector learns from (binary only).
        fpr: false-positive rate on clean inputs at which the threshold is set.
        calib_share: share of ``x`` held out for calibration.
        seed: seed of the split, the attack and the detector's own randomness.
        settings: detector settings (see each kind's class).

    Returns:
        The fitted, calibrated detector (``.calibration`` says what it measured).
    """
    if not 0.0 < calib_share < 1.0:
        raise InputError(f"calib_share must be in (0, 1), got {calib_share}")
    det = create_detector(kind, model, **settings)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(x.shape[0], generator=g)
    n_cal = int(round(calib_share * x.shape[0]))
    cal, fit_idx = perm[:n_cal], perm[n_cal:]
    x_adv = None
    if det.needs_adversarial:
        if progress:
            progress(f"crafting {attack} examples (eps={eps:g})", 0.0)
        x_adv = adversarial_examples(
            model, x[fit_idx], y[fit_idx], attack=attack, eps=eps, seed=seed,
            **(attack_settings or {}),
        )  # fmt: skip
    det.fit(x[fit_idx], y[fit_idx], x_adv, progress=progress)
    det.calibrate(x[cal], fpr=fpr)
    det.calibration.update({"attack": attack, "eps": eps} if det.needs_adversarial else {})
    return det
