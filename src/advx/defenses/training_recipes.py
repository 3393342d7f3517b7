"""The image recipes of adversarial training, each a :class:`~advx.training.LossHook` with
validated, keyword-only settings: :class:`FGSMTraining` (Goodfellow et al. 2015),
:class:`FGSMRSTraining` (Wong, Rice & Kolter 2020), :class:`PGDTraining` (Madry et al.
2018), :class:`TRADESTraining` (Zhang et al. 2019). Their inner maximisations are the
library's attack functions. Registered by name in :mod:`advx.defenses.adversaries`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from advx.attacks._steps import step_size_for
from advx.attacks.fgsm import fgsm
from advx.attacks.pgd import pgd
from advx.errors import ConfigError, InputError
from advx.models.adapter import Classifier

if TYPE_CHECKING:
    from advx.training import TrainBatch


@dataclass(frozen=True, kw_only=True)
class AdversarialLoss(ABC):
    """Base of the image recipes: a :class:`~advx.training.LossHook` with validated,
    keyword-only settings. ``eps`` is the linf budget in input units (e.g. 0.1 of [0, 1]
    pixels); subclasses add theirs. :meth:`recipe` is what ``model.json`` records."""

    name: ClassVar[str] = ""
    eps: float

    def __post_init__(self) -> None:
        if not isinstance(self.eps, (int, float)) or not 0 < self.eps < math.inf:
            raise ConfigError(f"{self.name}: eps must be a number > 0, got {self.eps!r}")
        self.validate()

    def validate(self) -> None:  # noqa: B027 - optional hook
        """Check recipe-specific settings; raise :class:`ConfigError`."""

    @abstractmethod
    def craft(self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        """Adversarial inputs for the batch ``x`` (B, ...) on ``model`` (eval mode)."""

    @abstractmethod
    def loss(self, batch: TrainBatch) -> tuple[Tensor, Tensor]:
        """``(scalar training loss, logits (B, C))``; the logits (of the adversarial
        batch) feed the accuracy the progress bar shows."""

    def recipe(self) -> dict[str, Any]:
        """The settings as stored in ``model.json`` under ``adversarial``: ``adv``,
        ``eps``, ``steps``, ``step_size``, ``beta`` (None where not applicable), ``norm``."""
        return {
            "adv": self.name,
            "eps": float(self.eps),
            "steps": getattr(self, "steps", 1),
            "step_size": float(getattr(self, "effective_step_size", self.eps)),
            "beta": getattr(self, "beta", None),
            "norm": "linf",
        }

    def _crafted(self, batch: TrainBatch) -> Tensor:
        m = batch.model
        with m.frozen_eval():
            x_adv = self.craft(m, batch.x, batch.y, batch.generator)
        return x_adv.detach()


def positive_int(name: str, what: str, v: Any) -> None:
    """Raise :class:`~advx.errors.ConfigError` unless setting ``what`` of ``name`` is an
    integer >= 1 (bools refused)."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"{name}: {what} must be a positive integer, got {v!r}")


@dataclass(frozen=True, kw_only=True)
class FGSMTraining(AdversarialLoss):
    """FGSM adversarial training (Goodfellow et al. 2015, §6): the objective
    ``alpha * CE(f(x), y) + (1 - alpha) * CE(f(x + eps * sign(grad_x CE)), y)``.

    Args:
        eps: linf budget.
        alpha: weight of the clean term (paper: 0.5).

    Prone to catastrophic overfitting at large eps (Wong et al. 2020): pair it with
    :class:`OverfitGuard`.
    """

    name = "fgsm"
    alpha: float = 0.5

    def validate(self) -> None:
        if not 0.0 <= self.alpha < 1.0:
            raise ConfigError(f"fgsm: alpha must be in [0, 1), got {self.alpha}")

    def craft(self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        return fgsm(model, x, y, eps=self.eps, bounds=model.bounds)

    def loss(self, batch: TrainBatch) -> tuple[Tensor, Tensor]:
        x_adv = self._crafted(batch)
        logits_adv = batch.forward(x_adv)
        loss = (1 - self.alpha) * F.cross_entropy(logits_adv, batch.y)
        if self.alpha > 0:
            loss = loss + self.alpha * F.cross_entropy(batch.forward(batch.x), batch.y)
        return loss, logits_adv

    def recipe(self) -> dict[str, Any]:
        return super().recipe() | {"alpha": self.alpha}


@dataclass(frozen=True, kw_only=True)
class PGDTraining(AdversarialLoss):
    """PGD adversarial training (Madry et al. 2018): minimise ``CE(f(x'), y)`` where
    ``x'`` is PGD from a uniform random start in the eps-ball.

    Args:
        eps: linf budget.
        steps: PGD iterations (default 10).
        step_size: absolute step; default ``2.5 * eps / steps`` (Madry et al.'s MNIST
            setting, 40 steps of 0.01 at eps 0.3, is 1.33 * eps / steps).
    """

    name = "pgd"
    steps: int = 10
    step_size: float | None = None

    def validate(self) -> None:
        positive_int(self.name, "steps", self.steps)
        if self.step_size is not None and not self.step_size > 0:
            raise ConfigError(f"{self.name}: step_size must be > 0, got {self.step_size}")

    @property
    def effective_step_size(self) -> float:
        """The absolute step used."""
        return step_size_for(self.eps, self.steps, step_size=self.step_size)

    def craft(self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        return pgd(
            model, x, y, eps=self.eps, step_size=self.effective_step_size, steps=self.steps,
            bounds=model.bounds, random_init=True, generator=generator,
        )  # fmt: skip

    def loss(self, batch: TrainBatch) -> tuple[Tensor, Tensor]:
        logits_adv = batch.forward(self._crafted(batch))
        return F.cross_entropy(logits_adv, batch.y), logits_adv


@dataclass(frozen=True, kw_only=True)
class FGSMRSTraining(PGDTraining):
    """ "Fast" adversarial training (Wong, Rice & Kolter, ICLR 2020): one FGSM step of
    ``step_size`` (default ``1.25 * eps``) from a uniform random start in the eps-ball,
    projected back; train on the result. It is PGD with one step, and runs as such.

    Args:
        eps: linf budget.
        step_size: default 1.25 * eps (the paper's alpha); 2 * eps and above overfits
            catastrophically in the paper's experiments.
    """

    name = "fgsm-rs"
    steps: int = 1

    def validate(self) -> None:
        super().validate()
        if self.steps != 1:
            raise ConfigError("fgsm-rs takes one step; use --adv pgd for more")

    @property
    def effective_step_size(self) -> float:
        return self.step_size if self.step_size is not None else 1.25 * self.eps


@dataclass(frozen=True, kw_only=True)
class TRADESTraining(PGDTraining):
    """TRADES (Zhang et al. 2019): ``CE(f(x), y) + beta * KL(f(x) || f(x'))`` where ``x'``
    maximises the KL term inside the eps-ball (PGD on the KL, clean prediction fixed).

    Args:
        eps: linf budget.
        beta: robustness/accuracy trade-off (default 6.0, the paper's CIFAR-10 setting).
        steps, step_size: of the inner PGD (defaults 10 and ``2.5 * eps / steps``).

    Deviation: the paper starts the inner maximisation at ``x + 0.001 * N(0, I)``; this
    uses PGD's uniform start in the eps-ball (the KL gradient is zero at ``x' = x``, so
    some random start is needed; the uniform one explores the ball more).
    """

    name = "trades"
    beta: float = 6.0

    def validate(self) -> None:
        super().validate()
        if not self.beta > 0:
            raise ConfigError(f"trades: beta must be > 0, got {self.beta}")

    def craft(self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        with torch.no_grad():
            p_clean = model(x).softmax(dim=1)  # (B, C), fixed during the inner max

        def kl(logits: Tensor, _y: Tensor, _t: Tensor | None = None) -> Tensor:
            # pgd without early stop or restarts evaluates every row in order
            if logits.shape != p_clean.shape:
                raise InputError("TRADES inner loss got a subset of the batch")
            return F.kl_div(logits.log_softmax(dim=1), p_clean, reduction="none").sum(dim=1)

        return pgd(
            model, x, y, eps=self.eps, step_size=self.effective_step_size, steps=self.steps,
            bounds=model.bounds, loss=kl, random_init=True, early_stop=False, restarts=1,
            generator=generator,
        )  # fmt: skip

    def loss(self, batch: TrainBatch) -> tuple[Tensor, Tensor]:
        x_adv = self._crafted(batch)
        logits = batch.forward(batch.x)
        logits_adv = batch.forward(x_adv)
        robust = F.kl_div(
            logits_adv.log_softmax(dim=1), logits.softmax(dim=1), reduction="batchmean"
        )
        return F.cross_entropy(logits, batch.y) + self.beta * robust, logits_adv
