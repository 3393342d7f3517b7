"""Catastrophic overfitting of single-step adversarial training (Wong, Rice & Kolter 2020,
§4): :class:`OverfitGuard` watches PGD accuracy on a held-out batch and stops (or warns)
when it collapses."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from advx.attacks._steps import step_size_for
from advx.attacks.pgd import pgd
from advx.defenses.training_recipes import positive_int
from advx.errors import ConfigError, InputError
from advx.models.adapter import Classifier

if TYPE_CHECKING:
    from advx.training import StepInfo, TrainBatch, World


log = logging.getLogger(__name__)


@dataclass
class OverfitGuard:
    """Watch for catastrophic overfitting (Wong, Rice & Kolter 2020, §4): single-step
    adversarial training can suddenly lose all robustness to multi-step attacks while
    accuracy against its own training attack keeps rising.

    Every ``every`` optimisation steps (default: at each epoch's end) the guard measures
    clean and PGD accuracy on a fixed held-out batch ``(x, y)``. If the PGD accuracy falls
    more than ``max_drop`` below the best seen, it has collapsed: with ``action="stop"``
    the weights of the best check are restored and training ends
    (:class:`~advx.training.StopTraining`); with ``"warn"`` it logs a warning and goes on.

    Use: pass :meth:`wrap` (adversary) and :meth:`on_step` to :func:`advx.training.fit`,
    as :func:`adversarial_train` does. ``checks`` holds every measurement, ``collapsed``
    the first collapse (or None).

    Args:
        x, y: held-out batch, e.g. 512 training examples not otherwise used.
        eps: linf budget of the PGD check; ``steps`` (default 10) iterations of
            ``2.5 * eps / steps``.
        max_drop: collapse threshold on PGD accuracy, absolute (default 0.2 = 20 points).
        action: ``"stop"`` or ``"warn"``.
        every: check every this many optimisation steps instead of at epoch ends.
        seed: seed of the PGD check's random start (the same at every check).
        on_check: called with each measurement (a dict: epoch, step, clean_accuracy,
            pgd_accuracy, best_pgd_accuracy, collapsed), e.g. for a progress display.
        world: the training processes; they agree on the (mean) measurement, so all
            stop at the same step.

    Example:
        >>> guard = OverfitGuard(x_held, y_held, eps=0.1)                     # doctest: +SKIP
        >>> fit(model, data, config=cfg, adversary=guard.wrap(adv), on_step=guard.on_step)  # doctest: +SKIP
    """

    x: Tensor
    y: Tensor
    eps: float
    steps: int = 10
    max_drop: float = 0.2
    action: str = "stop"
    every: int | None = None
    seed: int = 0
    on_check: Callable[[dict[str, Any]], None] | None = None
    world: World | None = None
    checks: list[dict[str, Any]] = field(default_factory=list, init=False)
    collapsed: dict[str, Any] | None = field(default=None, init=False)
    model: Classifier | None = field(default=None, init=False, repr=False)
    _best: tuple[float, dict[str, Tensor]] | None = field(default=None, init=False, repr=False)
    _steps_done: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.action not in ("stop", "warn"):
            raise ConfigError(f"action must be 'stop' or 'warn', got {self.action!r}")
        if not 0 < self.max_drop < 1:
            raise ConfigError(f"max_drop must be in (0, 1), got {self.max_drop}")
        if self.every is not None:
            positive_int("overfit guard", "every", self.every)
        if self.x.shape[0] != self.y.shape[0] or self.x.shape[0] == 0:
            raise InputError("the guard needs a non-empty held-out batch (x, y) of equal length")

    def watch(self, model: Classifier) -> None:
        """Check ``model`` from now on (:meth:`wrap` calls it with the model in training)."""
        self.model = model

    def wrap(self, adversary: Any) -> GuardedAdversary:
        """The adversary, seen through a hook that shows the guard the model it trains."""
        return GuardedAdversary(adversary, self)

    def measure(self, model: Classifier) -> tuple[float, float]:
        """Clean and PGD accuracy of ``model`` on the held-out batch."""
        g = torch.Generator().manual_seed(self.seed)
        x, y = self.x.to(model.device), self.y.to(model.device)  # where the model trains
        with model.frozen_eval():
            with torch.no_grad():
                clean = float((model(x).argmax(1) == y).float().mean())
            x_adv = pgd(
                model, x, y, eps=self.eps, step_size=step_size_for(self.eps, self.steps),
                steps=self.steps, bounds=model.bounds, generator=g,
            )  # fmt: skip
            with torch.no_grad():
                robust = float((model(x_adv).argmax(1) == y).float().mean())
        return clean, robust

    def on_step(self, info: StepInfo) -> None:
        """The :func:`~advx.training.fit` callback: check when due."""
        self._steps_done += 1
        due = info.step == info.steps if self.every is None else self._steps_done % self.every == 0
        if due and self.model is not None:
            self.check(self.model, epoch=info.epoch, step=info.step)

    def check(self, model: Classifier, *, epoch: int = 0, step: int = 0) -> dict[str, Any]:
        """Measure now; keep the best weights; act on a collapse. Returns the record."""
        from advx.training import StopTraining

        clean, robust = self.measure(model)
        if self.world is not None and self.world.world_size > 1:
            # batch-norm buffers differ slightly across processes: agree on the mean
            both = self.world.all_reduce(torch.tensor([clean, robust], dtype=torch.float64))
            clean, robust = (float(v) / self.world.world_size for v in both)
        best = self._best[0] if self._best is not None else -1.0
        drop = best - robust
        collapsed = best >= 0 and drop > self.max_drop
        record = {
            "epoch": epoch + 1, "step": step, "clean_accuracy": clean, "pgd_accuracy": robust,
            "best_pgd_accuracy": max(best, robust), "collapsed": collapsed,
        }  # fmt: skip
        self.checks.append(record)
        if self.on_check is not None:
            self.on_check(record)
        if robust > best:
            self._best = (robust, copy.deepcopy(model.state_dict()))
        if collapsed and self.collapsed is None:
            self.collapsed = record
            msg = (
                f"catastrophic overfitting at epoch {epoch + 1}, step {step}: PGD accuracy on "
                f"the held-out batch fell from {best:.1%} to {robust:.1%}"
            )
            if self.action == "stop":
                if self._best is not None:  # always: a collapse is a fall from a best
                    model.load_state_dict(self._best[1])
                raise StopTraining(msg + "; restored the weights of the best check")
            log.warning("%s; consider fgsm-rs with a smaller step or pgd", msg)
        return record


class GuardedAdversary:
    """A loss hook running ``adversary`` (a :class:`~advx.training.LossHook` or a crafting
    callable ``(model, x, y, generator) -> x_adv``, trained on the adversarial batch) that
    first shows ``guard`` the model being trained. Made by :meth:`OverfitGuard.wrap`."""

    def __init__(self, adversary: Any, guard: OverfitGuard) -> None:
        self.adversary = adversary
        self.guard = guard

    def loss(self, batch: TrainBatch) -> tuple[Tensor, Tensor]:
        """The adversary's loss on ``batch`` (and the logits it was computed from)."""
        from advx.training import LossHook

        self.guard.watch(batch.model)
        if isinstance(self.adversary, LossHook):
            return self.adversary.loss(batch)
        m = batch.model
        with m.frozen_eval():
            x_adv = self.adversary(m, batch.x, batch.y, batch.generator).detach()
        logits = batch.forward(x_adv)
        return F.cross_entropy(logits, batch.y), logits
