"""The base of the adversarial-example detectors and the registry of their kinds.

:class:`Detector` is what every detector is (an ``nn.Module`` guarding one
:class:`~advx.models.adapter.Classifier`, returning ``(logits, score)``, calibrated at a
false-positive rate, saved as safetensors + JSON); :func:`register_detector` adds a kind.
The built-in kinds (:mod:`~advx.defenses.squeezing`, :mod:`~advx.defenses.binary`,
:mod:`~advx.defenses.mahalanobis`) import this module; :mod:`advx.defenses.detectors`
imports them and holds the entry points (``create_detector``, ``load_detector``,
``train_detector``), so no module imports one that imports it.
"""

from __future__ import annotations

import hashlib
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from advx.errors import ConfigError, InputError
from advx.io import atomic_path, atomic_write_text
from advx.jsonio import dumps
from advx.models.adapter import Classifier, frozen_eval

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


def registered_kinds() -> dict[str, type[Detector]]:
    """The detector classes registered so far, by kind (see
    :func:`advx.defenses.detectors.detector_kinds` for all the built-in ones)."""
    return dict(_KINDS)


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
