"""The records of training: its settings (:class:`TrainConfig`), per-step progress
(:class:`StepInfo`), per-epoch history (:class:`History`) and result (:class:`TrainResult`).

They live below :mod:`advx.training` (which re-exports them) so that
:mod:`advx.modalities`, whose plugins train, can name them without importing the loop.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from advx.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("onecycle", "cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. Defaults per architecture come from the registry
    (:func:`default_config`); every field can be overridden.

    Attributes:
        epochs: passes over the training set (torch models).
        lr: peak learning rate.
        batch_size: examples per optimisation step.
        weight_decay: L2 penalty (decoupled for ``adamw``).
        optimizer: ``"adam"`` (default), ``"adamw"`` or ``"sgd"`` (momentum 0.9, Nesterov).
        schedule: ``"onecycle"`` (default: the learning rate rises to ``lr`` over the first
            quarter of the steps, then anneals towards zero; Smith & Topin 2019,
            "Super-convergence"; constant for runs under 8 steps), ``"cosine"`` (decay
            from ``lr``) or ``"constant"``.
        seed: seeds the weight initialisation, the data order, dropout and the adversary.
        limit: train on the first ``limit`` training examples only (None: all).
        max_train: train on a seeded random subsample of this size (applied after
            ``limit``); the scikit-learn models' defaults use it to bound fitting time.
        eval_batch_size: batch size for evaluation.
    """

    epochs: int = 5
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 0.0
    optimizer: str = "adam"
    schedule: str = "onecycle"
    seed: int = 0
    limit: int | None = None
    max_train: int | None = None
    eval_batch_size: int = 1000

    def __post_init__(self) -> None:
        def positive_int(name: str, v: Any, allow_none: bool = False) -> None:
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")

        positive_int("epochs", self.epochs)
        positive_int("batch_size", self.batch_size)
        positive_int("eval_batch_size", self.eval_batch_size)
        positive_int("limit", self.limit, allow_none=True)
        positive_int("max_train", self.max_train, allow_none=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        for name in ("lr", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"{name} must be a finite number, got {v!r}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-able dict (stored in ``model.json`` under ``training``)."""
        return asdict(self)


@dataclass(frozen=True)
class StepInfo:
    """Progress of :func:`fit`, reported after every optimisation step.

    Attributes:
        epoch: current epoch (0-based); ``epochs`` in total.
        step: steps done in this epoch; ``steps`` per epoch.
        loss: running mean training loss of this epoch.
        accuracy: running training accuracy of this epoch (on what the loss saw).
        images_per_s: throughput of this epoch so far.
    """

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    accuracy: float
    images_per_s: float


@dataclass
class History:
    """What :func:`fit` did: one dict per epoch (``loss``, ``accuracy``, ``seconds``,
    ``images``; a stopped epoch is included, partial), the total wall time in seconds,
    and why training stopped early (the :class:`StopTraining` message) or None."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str | None = None


@dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        model: the trained model (eval mode).
        test_accuracy: accuracy on the test split in ``[0, 1]``.
        info: the metadata stored (or that would be stored) in ``model.json``.
        history: per-epoch training history.
        path: the checkpoint directory, or None if nothing was saved.
    """

    model: Any
    test_accuracy: float
    info: dict[str, Any]
    history: History
    path: Path | None = None


__all__ = ["OPTIMIZERS", "SCHEDULES", "History", "StepInfo", "TrainConfig", "TrainResult"]
