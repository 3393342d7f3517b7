"""Adversarial training: the ordinary training loop (:func:`advx.training.fit`) with an
adversary plugged into its loss hook.

Recipes (``create_adversary(name, eps=..., ...)``; ``advx train --adv NAME``):

=============  ==============================================================================
``fgsm``       Goodfellow, Shlens & Szegedy (ICLR 2015): ``alpha*CE(x) + (1-alpha)*CE(x_fgsm)``,
               alpha = 0.5.
``fgsm-rs``    Wong, Rice & Kolter (ICLR 2020, "Fast is better than free"): FGSM from a uniform
               random start, step 1.25*eps; train on the adversarial batch only.
``pgd``        Madry, Makelov, Schmidt, Tsipras & Vladu (ICLR 2018): PGD with random start,
               ``steps`` iterations of ``step_size``; train on the adversarial batch only.
``trades``     Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan (ICML 2019): ``CE(f(x), y) + beta *
               KL(f(x) || f(x'))`` with ``x'`` maximising the KL term by PGD.
=============  ==============================================================================

The inner maximisations are the library's attack functions (:func:`advx.attacks.fgsm.fgsm`,
:func:`advx.attacks.pgd.pgd`), run on the model in eval mode with frozen parameters. Each
recipe is a :class:`~advx.training.LossHook`; :func:`register_adversary` adds more (the text
package registers ``deepwordbug`` augmentation under the same ``--adv`` option).
:class:`OverfitGuard` watches PGD accuracy on a held-out batch and stops (or warns) when it
collapses: the catastrophic overfitting of single-step training (Wong et al. 2020, §4).
:func:`adversarial_train` ties it together and records the recipe in ``model.json``.

Example:
    >>> adv = create_adversary("pgd", eps=0.1, steps=10)
    >>> res = adversarial_train("cnn", "digits", adversary=adv)   # doctest: +SKIP
    >>> res.info["adversarial"]["adv"]                            # doctest: +SKIP
    'pgd'
"""

from __future__ import annotations

import copy
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from advx.attacks.fgsm import fgsm
from advx.attacks.pgd import pgd
from advx.errors import ConfigError, InputError
from advx.models.adapter import Classifier

if TYPE_CHECKING:
    from advx.training import StepInfo, TrainBatch, TrainConfig, TrainResult, World

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class AdversaryEntry:
    """A registered adversary: ``name``, one-line ``summary``, ``factory(**settings)``
    returning a :class:`~advx.training.LossHook` (or an ``(model, x, y, generator) ->
    x_adv`` callable), the ``settings`` it accepts, its ``modality`` (``"image"`` or
    ``"text"``) and the ``runner`` that trains with it (None: :func:`adversarial_train`;
    a runner has that function's signature)."""

    name: str
    summary: str
    factory: Callable[..., Any]
    settings: tuple[str, ...]
    modality: str = "image"
    runner: Callable[..., Any] | None = None


_ADVERSARIES: dict[str, AdversaryEntry] = {}
_PLUGINS_LOADED: set[str] = set()


def _load_plugins() -> None:
    """Register the adversaries other modalities provide (the text recipes: deepwordbug,
    pwws, ..., which train by augmentation under the same --adv option), once each, on
    first use; each modality's package registered how (:mod:`advx.modalities`)."""
    import advx.models  # noqa: F401  (the zoo: its packages register their modalities)
    from advx.modalities import modalities

    for name, plugin in modalities().items():
        if name in _PLUGINS_LOADED or plugin.load_adversaries is None:
            continue
        _PLUGINS_LOADED.add(name)
        plugin.load_adversaries()


def register_adversary(
    name: str,
    summary: str,
    factory: Callable[..., Any],
    *,
    settings: tuple[str, ...],
    modality: str = "image",
    runner: Callable[..., Any] | None = None,
) -> AdversaryEntry:
    """Add an adversary under ``name`` (what ``advx train --adv NAME`` selects).

    Args:
        name: registry name, e.g. ``"deepwordbug"``.
        summary: one line for ``--help`` and listings.
        factory: ``factory(**settings) -> adversary``.
        settings: the keyword settings it accepts, among ``eps``, ``steps``,
            ``step_size``, ``beta`` (the CLI options) or its own.
        modality: ``"image"`` or ``"text"``: which models it trains.
        runner: the training function, called as ``runner(arch, data, adversary=...,
            config=..., arch_kwargs=..., out=..., world=..., on_step=..., on_check=...)``
            and returning a :class:`~advx.training.TrainResult`; default
            :func:`adversarial_train` (image models).

    Raises:
        ConfigError: ``name`` is already taken by another factory.
    """
    if name in _ADVERSARIES and _ADVERSARIES[name].factory is not factory:
        raise ConfigError(f"adversary {name!r} registered twice")
    entry = AdversaryEntry(name, summary, factory, tuple(settings), modality, runner)
    _ADVERSARIES[name] = entry
    return entry


def adversaries() -> dict[str, AdversaryEntry]:
    """The registered adversaries by name (image recipes here, text recipes from
    :mod:`advx.text.training`)."""
    _load_plugins()
    return dict(_ADVERSARIES)


def create_adversary(name: str, **settings: Any) -> Any:
    """A configured adversary from the registry; ``None`` settings are ignored (so CLI
    options can be passed through as they are).

    Raises:
        ConfigError: unknown name, or a setting this adversary does not take.
    """
    _load_plugins()
    if name not in _ADVERSARIES:
        raise ConfigError(f"unknown adversary {name!r}; choose one of {sorted(_ADVERSARIES)}")
    entry = _ADVERSARIES[name]
    given = {k: v for k, v in settings.items() if v is not None}
    unknown = sorted(set(given) - set(entry.settings))
    if unknown:
        raise ConfigError(
            f"adversary {name!r} takes {', '.join(entry.settings) or 'no settings'}, "
            f"not {', '.join(unknown)}"
        )
    try:
        return entry.factory(**given)
    except TypeError as e:  # a required setting (eps) is missing
        raise ConfigError(f"adversary {name!r}: {e}; e.g. give --eps") from None


# --------------------------------------------------------------------------- recipes
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


def _positive_int(name: str, what: str, v: Any) -> None:
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
        _positive_int(self.name, "steps", self.steps)
        if self.step_size is not None and not self.step_size > 0:
            raise ConfigError(f"{self.name}: step_size must be > 0, got {self.step_size}")

    @property
    def effective_step_size(self) -> float:
        """The absolute step used."""
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps

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


register_adversary(
    "fgsm", "FGSM, mixed clean/adversarial loss alpha=0.5 (Goodfellow et al. 2015)",
    FGSMTraining, settings=("eps", "alpha"),
)  # fmt: skip
register_adversary(
    "fgsm-rs", "FGSM from a random start, step 1.25*eps (Wong, Rice & Kolter 2020)",
    FGSMRSTraining, settings=("eps", "step_size"),
)  # fmt: skip
register_adversary(
    "pgd", "PGD adversarial training (Madry et al. 2018)",
    PGDTraining, settings=("eps", "steps", "step_size"),
)  # fmt: skip
register_adversary(
    "trades", "TRADES: CE + beta * KL(clean || adversarial) (Zhang et al. 2019)",
    TRADESTraining, settings=("eps", "steps", "step_size", "beta"),
)  # fmt: skip


# ------------------------------------------------------------- catastrophic overfitting
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
    _model: Classifier | None = field(default=None, init=False, repr=False)
    _best: tuple[float, dict[str, Tensor]] | None = field(default=None, init=False, repr=False)
    _steps_done: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.action not in ("stop", "warn"):
            raise ConfigError(f"action must be 'stop' or 'warn', got {self.action!r}")
        if not 0 < self.max_drop < 1:
            raise ConfigError(f"max_drop must be in (0, 1), got {self.max_drop}")
        if self.every is not None:
            _positive_int("overfit guard", "every", self.every)
        if self.x.shape[0] != self.y.shape[0] or self.x.shape[0] == 0:
            raise InputError("the guard needs a non-empty held-out batch (x, y) of equal length")

    def wrap(self, adversary: Any) -> Any:
        """The adversary, seen through a hook that lets the guard find the model."""
        from advx.training import LossHook

        guard = self

        class _Guarded:
            def loss(self, batch: TrainBatch) -> tuple[Tensor, Tensor]:
                guard._model = batch.model
                if isinstance(adversary, LossHook):
                    return adversary.loss(batch)
                m = batch.model
                with m.frozen_eval():
                    x_adv = adversary(m, batch.x, batch.y, batch.generator).detach()
                logits = batch.forward(x_adv)
                return F.cross_entropy(logits, batch.y), logits

        return _Guarded()

    def measure(self, model: Classifier) -> tuple[float, float]:
        """Clean and PGD accuracy of ``model`` on the held-out batch."""
        g = torch.Generator().manual_seed(self.seed)
        with model.frozen_eval():
            with torch.no_grad():
                clean = float((model(self.x).argmax(1) == self.y).float().mean())
            x_adv = pgd(
                model, self.x, self.y, eps=self.eps, step_size=2.5 * self.eps / self.steps,
                steps=self.steps, bounds=model.bounds, generator=g,
            )  # fmt: skip
            with torch.no_grad():
                robust = float((model(x_adv).argmax(1) == self.y).float().mean())
        return clean, robust

    def on_step(self, info: StepInfo) -> None:
        """The :func:`~advx.training.fit` callback: check when due."""
        self._steps_done += 1
        due = info.step == info.steps if self.every is None else self._steps_done % self.every == 0
        if due and self._model is not None:
            self.check(self._model, epoch=info.epoch, step=info.step)

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


# ------------------------------------------------------------------------------ entry
def adversarial_train(
    arch: str,
    data: str | Any,
    *,
    adversary: Any,
    test: Any | None = None,
    config: TrainConfig | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    out: Any | None = None,
    world: World | None = None,
    guard: bool = True,
    guard_size: int = 512,
    guard_action: str = "stop",
    on_step: Callable[[StepInfo], None] | None = None,
    on_check: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``arch`` on ``data`` with ``adversary`` and record the recipe.

    :func:`advx.training.train` with the adversary in the loss hook; when ``guard`` is on
    (default), an :class:`OverfitGuard` checks clean and PGD accuracy on ``guard_size``
    held-out training examples at each epoch's end (they are removed from the training
    set) and ``on_check`` receives each measurement. ``model.json`` gets
    ``adversarial`` (the recipe: adv, eps, steps, step_size, beta) and, with the guard,
    ``overfit_checks`` and ``stopped``.

    Args:
        arch, data, test, config, arch_kwargs, world, on_step: as :func:`advx.training.train`.
        adversary: from :func:`create_adversary` (or any loss hook / crafting callable).
        out: checkpoint directory (written by the main process only), or None.

    Returns:
        The :class:`~advx.training.TrainResult` (``info`` as saved).
    """
    from advx.data import ImageDataset, load
    from advx.models import save
    from advx.training import World, default_config, train

    if isinstance(data, str):
        test = load(data, "test") if test is None else test
        name, data = data, load(data, "train")
    else:
        name = getattr(data, "name", "custom")
    if not isinstance(data, ImageDataset):
        raise ConfigError(
            f"adversarial_train trains image models; {name!r} is not an image dataset "
            "(text adversaries register their own runner)"
        )
    config = config or default_config(arch, name)
    world = world or World()
    watcher = None
    if guard:
        if not hasattr(adversary, "recipe"):
            raise ConfigError(
                "the overfit guard needs an image adversary with an eps; pass guard=False"
            )
        g = torch.Generator().manual_seed(config.seed + 17)
        perm = torch.randperm(len(data), generator=g)
        guard_size = max(1, min(guard_size, len(data) // 10))
        held, keep = perm[:guard_size], perm[guard_size:].sort().values
        watcher = OverfitGuard(
            data.x[held], data.y[held], eps=float(adversary.eps), action=guard_action,
            on_check=on_check, world=world, seed=config.seed,
        )  # fmt: skip
        data = data.subset(keep)

    def step(info: StepInfo) -> None:
        if on_step is not None:
            on_step(info)
        if watcher is not None:
            watcher.on_step(info)

    recipe = (
        adversary.recipe() if hasattr(adversary, "recipe") else {"adv": type(adversary).__name__}
    )
    result = train(
        arch, data, test=test, config=config, arch_kwargs=arch_kwargs, out=None,
        adversary=watcher.wrap(adversary) if watcher else adversary, world=world,
        on_step=step, meta={"adversarial": recipe},
    )  # fmt: skip
    result.info["dataset"] = name
    result.info["training"]["processes"] = world.world_size  # batch_size is per process
    if watcher is not None:
        result.info["overfit_checks"] = watcher.checks
        result.info["stopped"] = result.history.stopped
    if out is not None and world.is_main:
        result.path = save(result.model, out, meta=result.info)
    return result


def run_adversarial_training(
    name: str, arch: str, data: str | Any, *, settings: dict[str, Any], **train_kwargs: Any
) -> TrainResult:
    """Train ``arch`` on ``data`` with the registered adversary ``name`` configured by
    ``settings`` (None values ignored), through the adversary's runner (default
    :func:`adversarial_train`, which receives ``train_kwargs``). What ``advx train --adv``
    calls.

    Raises:
        ConfigError: unknown adversary or setting, or an adversary for another modality
            than the architecture's.
    """
    from advx.models import get_arch

    _load_plugins()
    if name not in _ADVERSARIES:
        raise ConfigError(f"unknown adversary {name!r}; choose one of {sorted(_ADVERSARIES)}")
    entry = _ADVERSARIES[name]
    modality = get_arch(arch).modality
    if entry.modality != modality:
        raise ConfigError(
            f"adversary {name!r} trains {entry.modality} models; {arch!r} is a {modality} model"
        )
    adversary = create_adversary(name, **settings)
    runner = entry.runner or adversarial_train
    result: TrainResult = runner(arch, data, adversary=adversary, **train_kwargs)
    return result
