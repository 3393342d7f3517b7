"""Adversarial-example detectors: the common base, a registry, calibration at a chosen
false-positive rate, save/load (safetensors + JSON, never pickle), and :func:`train_detector`.

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

import hashlib
import json
import logging
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from advx.errors import CheckpointError, ConfigError, InputError
from advx.io import atomic_path, atomic_write_text
from advx.jsonio import dumps
from advx.models.adapter import Classifier, frozen_eval

log = logging.getLogger(__name__)

FORMAT = "advx-detector"
VERSION = 1
Progress = Callable[[str, float], None]

_KINDS: dict[str, type[Detector]] = {}


def register_detector(kind: str) -> Callable[[type[Detector]], type[Detector]]:
    """Class decorator adding a :class:`Detector` subclass under ``kind``."""

    def deco(cls: type[Detector]) -> type[Detector]:
        if kind in _KINDS and _KINDS[kind] is not cls:
            raise ConfigError(f"detector kind {kind!r} registered twice")
        cls.kind = kind
        _KINDS[kind] = cls
        return cls

    return deco


def detector_kinds() -> dict[str, type[Detector]]:
    """The registered detector classes by kind (loads the built-in ones)."""
    import advx.defenses.binary  # noqa: F401
    import advx.defenses.mahalanobis  # noqa: F401
    import advx.defenses.squeezing  # noqa: F401

    return dict(_KINDS)


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


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 over the model's state dict (names, shapes, values): ties a detector to
    the exact weights it was fitted and calibrated on."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class Detector(nn.Module, ABC):
    """Base of the detectors. Subclasses implement :meth:`forward` and, if they learn
    anything, :meth:`fit`; their constructor settings are keyword-only and JSON-friendly
    (listed by :meth:`settings`), their learned tensors are buffers/parameters.

    The guarded classifier is *not* a submodule: ``state_dict()`` holds the detector's
    own tensors only, and the classifier is given again at :func:`load_detector`.

    Attributes:
        threshold: flag when ``score > threshold`` (``inf`` until calibrated).
        score_scale: spread (std) of clean scores at calibration; used to express the
            score in comparable units (e.g. by :class:`~advx.defenses.rejecting.RejectingClassifier`).
        calibration: what calibration measured (fpr asked, n, threshold).
    """

    kind: ClassVar[str] = ""

    def __init__(self, model: Classifier) -> None:
        super().__init__()
        if not isinstance(model, Classifier):
            raise InputError(
                f"a detector guards an advx Classifier, got {type(model).__name__}; wrap the "
                "network in advx.models.adapter.Classifier"
            )
        self._guarded = (model,)  # a tuple, so nn.Module does not register it
        self.threshold = math.inf
        self.score_scale = 1.0
        self.calibration: dict[str, Any] = {}

    @property
    def model(self) -> Classifier:
        """The classifier this detector guards."""
        return self._guarded[0]

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """Names of the keyword-only constructor settings."""
        import inspect

        params = inspect.signature(cls.__init__).parameters.values()
        return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)

    def settings(self) -> dict[str, Any]:
        """The constructor settings (JSON-friendly); ``create_detector(kind, model,
        **settings)`` rebuilds an equal, unfitted detector."""
        return {k: getattr(self, k) for k in self.setting_names()}

    @abstractmethod
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` (N, *input_shape) -> (classifier logits (N, C), anomaly score (N,))."""

    def fit(
        self,
        x: Tensor,
        y: Tensor,
        x_adv: Tensor | None = None,
        *,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Learn from clean ``x`` (N, ...) with labels ``y`` (N,) and, for detectors
        trained on attacks, adversarial ``x_adv`` (M, ...). Returns what was measured.
        The default learns nothing (e.g. feature squeezing only needs calibrating)."""
        return {}

    @property
    def needs_adversarial(self) -> bool:
        """True when :meth:`fit` needs adversarial examples."""
        return False

    def bpda(self) -> Detector:
        """The detector an adaptive attacker differentiates: same forward values, with
        non-differentiable steps replaced by the identity on the backward pass (BPDA,
        Athalye et al. 2018). Detectors that are differentiable return ``self``."""
        return self

    @contextmanager
    def frozen(self) -> Iterator[Detector]:
        """Eval mode and frozen parameters for detector and classifier; restored after."""
        with frozen_eval(self), self.model.frozen_eval():
            yield self

    def score(self, x: Tensor, *, batch_size: int = 500) -> Tensor:
        """Anomaly scores ``(N,)`` without gradient, in batches, in eval mode."""
        out = []
        with self.frozen(), torch.no_grad():
            for i in range(0, x.shape[0], batch_size):
                out.append(self(x[i : i + batch_size])[1])
        return torch.cat(out) if out else torch.zeros(0)

    def flag(self, x: Tensor, *, batch_size: int = 500) -> Tensor:
        """Bool ``(N,)``: inputs the detector rejects (``score > threshold``)."""
        if math.isinf(self.threshold):
            raise InputError("the detector is not calibrated; call calibrate(x_clean, fpr=...)")
        return self.score(x, batch_size=batch_size) > self.threshold

    def calibrate(self, x_clean: Tensor, *, fpr: float = 0.05) -> float:
        """Set the threshold so that at most ``fpr`` of ``x_clean`` is flagged.

        Uses held-out clean inputs (not the ones :meth:`fit` saw). The threshold is the
        ``ceil((1 - fpr) * n)``-th smallest clean score, so exactly ``floor(fpr * n)`` or
        fewer clean inputs score above it. Returns the threshold.
        """
        if not 0.0 < fpr < 1.0:
            raise InputError(f"fpr must be in (0, 1), got {fpr}")
        n = x_clean.shape[0]
        if n < math.ceil(1.0 / fpr):
            raise InputError(
                f"calibrating at fpr={fpr} needs at least {math.ceil(1 / fpr)} clean inputs, "
                f"got {n}"
            )
        s = self.score(x_clean)
        if not bool(torch.isfinite(s).all()):
            raise InputError("the detector gave non-finite scores on clean inputs")
        ordered = s.sort().values
        k = max(1, math.ceil((1.0 - fpr) * n))
        self.threshold = float(ordered[k - 1])
        self.score_scale = max(float(s.std()), 1e-6)
        self.calibration = {
            "fpr": fpr,
            "n": n,
            "measured_fpr": float((s > self.threshold).float().mean()),
            "clean_median_score": float(s.median()),
        }
        return self.threshold

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``detector.json`` + ``detector.safetensors`` into directory ``path``."""
        from safetensors.torch import save_file

        if math.isinf(self.threshold):
            raise InputError("calibrate the detector before saving it")
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(out / "detector.safetensors") as tmp:  # umask mode, atomic
            save_file(tensors, str(tmp))
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "settings": self.settings(),
            "threshold": self.threshold,
            "score_scale": self.score_scale,
            "calibration": self.calibration,
            "model": {
                "input_shape": list(self.model.input_shape),
                "num_classes": self.model.num_classes,
                "sha256": model_fingerprint(self.model),
            },
        }
        atomic_write_text(out / "detector.json", dumps(meta, indent=2) + "\n")
        return out


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
