"""Training: one loop for every torch model, with a hook for an adversary, and the same
entry point for the scikit-learn models.

* :func:`train` — build an architecture, fit it on a dataset, evaluate on the test split,
  and (optionally) save the checkpoint: what ``advx train`` runs.
* :func:`fit` — the torch training loop. Its ``adversary`` argument is where adversarial
  training plugs in (DESIGN.md: "adversarial training is the ordinary training loop with
  an adversary plugged in"), and its ``world`` argument is where multi-process training
  (``torchrun``) plugs in. Neither is used by plain training.
* :func:`fit_sklearn` — the scikit-learn counterpart (on a seeded subsample).
* :func:`evaluate` — accuracy of any model of the zoo on a dataset.

Adversary hook. ``adversary`` is either

1. a callable ``adversary(model, x, y, generator) -> x_adv``: the batch is replaced by
   ``x_adv`` (FGSM / PGD adversarial training, Madry et al. 2018, "Towards deep learning
   models resistant to adversarial attacks", ICLR). ``model`` is the unwrapped
   :class:`~advx.models.adapter.Classifier` in training mode; an adversary that wants
   eval-mode batch norm while crafting uses ``model.frozen_eval()``; or
2. an object with a method ``loss(batch: TrainBatch) -> (loss, logits)`` that computes the
   whole training loss, e.g. the mixed clean/adversarial loss of Goodfellow et al. (2015),
   "Explaining and harnessing adversarial examples" (ICLR), or TRADES (Zhang et al. 2019,
   "Theoretically principled trade-off between robustness and accuracy", ICML), whose
   loss is ``CE(f(x), y) + beta * KL(f(x) || f(x_adv))``. The returned logits are only used
   for the accuracy shown in the progress bar.

The adversary draws its randomness from ``generator`` (a ``torch.Generator`` seeded from
the training seed, separate from the data order), so adversarial training is reproducible.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol, Union, runtime_checkable

import torch
from torch import Tensor, nn

from advx.errors import ConfigError, InputError
from advx.models.adapter import Classifier
from advx.training_types import (
    OPTIMIZERS,
    SCHEDULES,
    History,
    StepInfo,
    TrainConfig,
    TrainResult,
)

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ config
def default_config(arch: str, dataset: str | None = None, **overrides: Any) -> TrainConfig:
    """The registry's training defaults for ``arch`` on ``dataset``, with ``overrides``
    applied (None values are ignored, so CLI options can be passed through as they are).

    Raises:
        ConfigError: unknown architecture or an override that is not a
            :class:`TrainConfig` field.

    Example:
        >>> default_config("cnn", "fashion-mnist").epochs
        3
        >>> default_config("cnn", "digits", epochs=5).epochs
        5
    """
    from advx.models import get_arch

    known = {f.name for f in fields(TrainConfig)}
    values = get_arch(arch).defaults_for(dataset)
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return TrainConfig(**values)


# ------------------------------------------------------------------------------- world
@dataclass(frozen=True)
class World:
    """The set of processes training together; the default is a single process.

    :func:`fit` asks the world to shard the data order, wrap the model for gradient
    synchronisation, reduce metrics, and tells only the main process to write files. A
    ``torch.distributed`` implementation (``torchrun``, DDP) overrides :meth:`wrap`,
    :meth:`all_reduce` and :meth:`barrier`; the loop does not change.

    Attributes:
        rank: this process's index in ``[0, world_size)``.
        world_size: number of processes.
    """

    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ConfigError(f"need 0 <= rank < world_size, got {self.rank}, {self.world_size}")

    @property
    def is_main(self) -> bool:
        """True on the process that writes checkpoints and prints (rank 0)."""
        return self.rank == 0

    def shard(self, order: Tensor) -> Tensor:
        """This process's share of an epoch's permutation ``order (N,)``: every
        ``world_size``-th index from ``rank``, after padding ``order`` with its own first
        entries to a multiple of ``world_size`` so all processes take the same number of
        steps (as ``torch.utils.data.DistributedSampler`` does)."""
        if self.world_size == 1:
            return order
        pad = (-order.numel()) % self.world_size
        if pad:
            order = torch.cat([order, order[:pad]])
        return order[self.rank :: self.world_size]

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to run the training forward through (DDP wraps it; single: as is)."""
        return model

    def all_reduce(self, t: Tensor) -> Tensor:
        """Sum of ``t`` over processes (metrics); single process: ``t`` itself."""
        return t

    def barrier(self) -> None:
        """Wait for every process (single process: returns at once)."""


# --------------------------------------------------------------------------- adversary
@dataclass
class TrainBatch:
    """What a loss hook sees for one optimisation step.

    Attributes:
        x: clean inputs ``(B, *input_shape)`` in the model's bounds.
        y: labels ``(B,)``.
        model: the unwrapped :class:`Classifier` (use it to craft; ``frozen_eval()``).
        forward: the training forward; compute the loss through it (under DDP it is the
            wrapped module, which synchronises gradients).
        generator: the adversary's random source.
        epoch: current epoch (0-based).
        step: optimisation step within the epoch (0-based).
        progress: fraction of training done in ``[0, 1)`` (for eps warm-up schedules).
    """

    x: Tensor
    y: Tensor
    model: Classifier
    forward: Callable[[Tensor], Tensor]
    generator: torch.Generator
    epoch: int
    step: int
    progress: float


@runtime_checkable
class LossHook(Protocol):
    """An adversary that defines the whole training loss (mixed clean/adv, TRADES...)."""

    def loss(self, batch: TrainBatch) -> tuple[Tensor, Tensor]:
        """Return ``(scalar loss, logits (B, C))`` for the batch."""
        ...


Adversary = Union[Callable[[Classifier, Tensor, Tensor, torch.Generator], Tensor], LossHook]
"""Either ``adversary(model, x, y, generator) -> x_adv`` or an object with a
:meth:`LossHook.loss` method; see the module docstring."""


def clean_loss(batch: TrainBatch) -> tuple[Tensor, Tensor]:
    """Cross-entropy on the clean batch (the objective when no adversary is given)."""
    logits = batch.forward(batch.x)
    return nn.functional.cross_entropy(logits, batch.y), logits


def _objective(adversary: Adversary | None) -> Callable[[TrainBatch], tuple[Tensor, Tensor]]:
    if adversary is None:
        return clean_loss
    if isinstance(adversary, LossHook):
        return adversary.loss
    if not callable(adversary):
        raise InputError(
            f"adversary must be a callable (model, x, y, generator) -> x_adv or have a "
            f"loss(batch) method, got {type(adversary).__name__}"
        )
    craft = adversary

    def replace_batch(batch: TrainBatch) -> tuple[Tensor, Tensor]:
        x_adv = craft(batch.model, batch.x, batch.y, batch.generator)
        if not isinstance(x_adv, Tensor) or x_adv.shape != batch.x.shape:
            raise InputError(
                f"the adversary returned {getattr(x_adv, 'shape', type(x_adv))}; it must return "
                f"a tensor shaped like its input {tuple(batch.x.shape)}"
            )
        logits = batch.forward(x_adv.detach())
        return nn.functional.cross_entropy(logits, batch.y), logits

    return replace_batch


# ------------------------------------------------------------------------------ fitting
class StopTraining(Exception):  # noqa: N818  (a signal, not an error)
    """Raise from an ``on_step`` callback (after the current step) or a loss hook (before
    the step's update) to end :func:`fit` early and cleanly, e.g. early stopping when
    adversarial training overfits catastrophically. :func:`fit` then returns normally,
    with the model as the raiser left it and the reason (the exception's message) in
    :attr:`History.stopped`; the interrupted epoch is recorded, partial. Under
    ``torchrun`` every process must raise at the same step."""


def _as_tensors(data: Any) -> tuple[Tensor, Tensor]:
    from advx.data import ImageDataset

    if isinstance(data, ImageDataset):
        return data.x, data.y
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        if isinstance(x, Tensor) and isinstance(y, Tensor) and x.shape[0] == y.shape[0]:
            return x, y
    raise InputError("training data must be an ImageDataset or a pair of tensors (x, y)")


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(
    opt: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    if config.schedule == "onecycle":
        if total_steps < 8:  # too short for a warm-up phase: constant learning rate
            return None
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=config.lr, total_steps=total_steps, pct_start=0.25
        )
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1))
    return None


def _train_step(
    objective: Callable[[TrainBatch], tuple[Tensor, Tensor]],
    batch: TrainBatch,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler | None,
    sums: Tensor,
) -> None:
    """One optimisation step; adds ``[loss * B, correct, B]`` to ``sums`` in place."""
    loss, logits = objective(batch)
    if loss.dim() != 0 or not bool(torch.isfinite(loss)):
        raise InputError(
            f"training loss is {loss.detach().flatten()[:3].tolist()} at epoch "
            f"{batch.epoch + 1}, step {batch.step + 1}; lower the learning rate (--lr)"
        )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if sched is not None:
        sched.step()
    b = int(batch.y.numel())
    correct = float((logits.detach().argmax(1) == batch.y).sum())
    sums += torch.tensor([float(loss.detach()) * b, correct, b], dtype=torch.float64)


def fit(
    model: Classifier,
    data: Any,
    *,
    config: TrainConfig,
    adversary: Adversary | None = None,
    world: World | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
) -> History:
    """Train ``model`` in place on ``data`` for ``config.epochs`` epochs.

    Args:
        model: a :class:`~advx.models.adapter.Classifier` (e.g. from
            :func:`advx.models.build`); left in eval mode afterwards.
        data: an :class:`~advx.data.ImageDataset` or a pair ``(x (N, ...), y (N,))``.
            ``config.limit``/``max_train`` are *not* applied here (see :func:`train`).
        config: optimiser, schedule, batch size, epochs and seed.
        adversary: None for standard training, or an adversary (module docstring).
        world: the processes training together; default a single process.
        on_step: called after every step with a :class:`StepInfo` (progress bars).

    Returns:
        The :class:`History` of per-epoch loss, accuracy and time.

    Same model initialisation, data, config and thread count give bitwise-identical
    weights: the data order comes from a generator seeded with ``config.seed``, dropout
    from torch's global generator re-seeded for the duration (and restored afterwards),
    the adversary from its own generator. A ``KeyboardInterrupt`` propagates unchanged:
    the model is then partly trained and nothing has been written.

    Example:
        >>> from advx.data import load
        >>> from advx.models import build
        >>> ds = load("digits", "train")
        >>> clf = build("linear", input_shape=ds.input_shape, num_classes=10)
        >>> hist = fit(clf, ds, config=TrainConfig(epochs=2, lr=1e-2))
        >>> len(hist.epochs)
        2
    """
    if not isinstance(model, Classifier):
        raise InputError(
            f"fit trains an advx Classifier, got {type(model).__name__}; for scikit-learn "
            "models use fit_sklearn"
        )
    x_all, y_all = _as_tensors(data)
    if tuple(x_all.shape[1:]) != model.input_shape:
        raise InputError(
            f"data has examples of shape {tuple(x_all.shape[1:])} but the model expects "
            f"{model.input_shape}"
        )
    n = int(y_all.shape[0])
    if n == 0:
        raise InputError("no training data")
    world = world or World()
    device = model.device  # batches follow the model (data stays where it is)
    objective = _objective(adversary)
    order_gen = torch.Generator().manual_seed(config.seed)
    adv_gen = torch.Generator().manual_seed(config.seed + 1_000_003)
    steps = math.ceil(world.shard(torch.arange(n)).numel() / config.batch_size)
    total = steps * config.epochs
    train_forward = world.wrap(model)
    opt = _optimizer(model, config)
    sched = _scheduler(opt, config, total)
    history = History()
    t_start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + 2_000_003)  # dropout masks
        for epoch in range(config.epochs):
            model.train()
            order = world.shard(torch.randperm(n, generator=order_gen))
            t0 = time.perf_counter()
            sums = torch.zeros(3, dtype=torch.float64)  # loss * count, correct, count
            for step in range(steps):
                idx = order[step * config.batch_size : (step + 1) * config.batch_size]
                batch = TrainBatch(
                    x=x_all[idx].to(device),
                    y=y_all[idx].to(device),
                    model=model,
                    forward=train_forward,
                    generator=adv_gen,
                    epoch=epoch,
                    step=step,
                    progress=(epoch * steps + step) / total,
                )
                try:
                    _train_step(objective, batch, opt, sched, sums)
                    if on_step is not None:
                        elapsed = max(time.perf_counter() - t0, 1e-9)
                        on_step(
                            StepInfo(
                                epoch=epoch,
                                epochs=config.epochs,
                                step=step + 1,
                                steps=steps,
                                loss=float(sums[0] / sums[2]),
                                accuracy=float(sums[1] / sums[2]),
                                images_per_s=float(sums[2]) * world.world_size / elapsed,
                            )
                        )
                except StopTraining as stop:
                    history.stopped = str(stop) or f"epoch {epoch + 1}, step {step + 1}"
                    break
            total_sums = world.all_reduce(sums)
            seen = max(float(total_sums[2]), 1.0)
            history.epochs.append(
                {
                    "loss": float(total_sums[0]) / seen,
                    "accuracy": float(total_sums[1]) / seen,
                    "seconds": time.perf_counter() - t0,
                    "images": float(total_sums[2]),
                }
            )
            log.info("epoch %d/%d: %s", epoch + 1, config.epochs, history.epochs[-1])
            if history.stopped is not None:
                log.warning("training stopped early: %s", history.stopped)
                break
    model.eval()
    history.seconds = time.perf_counter() - t_start
    return history


def fit_sklearn(model: Any, data: Any) -> History:
    """Fit a :class:`~advx.models.classic.SklearnClassifier` on ``data`` (an
    :class:`~advx.data.ImageDataset` or ``(x, y)``); returns the wall time in a
    :class:`History` with one entry."""
    from advx.models import SklearnClassifier

    if not isinstance(model, SklearnClassifier):
        raise InputError(f"fit_sklearn needs a SklearnClassifier, got {type(model).__name__}")
    return _fit_once(lambda m, x, y: m.fit(x, y), model, data)


def _fit_once(fit_fn: Callable[[Any, Tensor, Tensor], Any], model: Any, data: Any) -> History:
    """Train a model that fits in one call (:attr:`advx.models.registry.Backend.fit`);
    its wall time as a :class:`History` with one entry."""
    x, y = _as_tensors(data)
    t0 = time.perf_counter()
    fit_fn(model, x, y)
    seconds = time.perf_counter() - t0
    return History(epochs=[{"seconds": seconds, "images": float(len(y))}], seconds=seconds)


# --------------------------------------------------------------------------- evaluation
def predict(model: Any, x: Tensor, *, batch_size: int = 1000) -> Tensor:
    """Predicted labels ``(N,)`` of any zoo model for inputs ``x (N, *input_shape)``,
    in batches, without gradients; a torch model is evaluated in eval mode and its
    previous mode restored."""
    from advx.models import SklearnClassifier

    if isinstance(model, SklearnClassifier):
        return torch.cat(
            [model.predict(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        )
    if not isinstance(model, Classifier):
        raise InputError(f"cannot evaluate a {type(model).__name__}")
    out = []
    with model.frozen_eval(), torch.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(model(x[i : i + batch_size].to(model.device)).argmax(dim=1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def evaluate(model: Any, data: Any, *, batch_size: int = 1000) -> float:
    """Accuracy in ``[0, 1]`` of ``model`` on ``data`` (dataset or ``(x, y)``).

    Example:
        >>> evaluate(clf, load("digits", "test"))  # doctest: +SKIP
        0.972...
    """
    x, y = _as_tensors(data)
    if len(y) == 0:
        raise InputError("no evaluation data")
    return float((predict(model, x, batch_size=batch_size) == y.cpu()).float().mean())


# ---------------------------------------------------------------------------- train()
def normalisation_of(x: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of images ``x (N, C, H, W)``."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).double()  # (C, N*H*W)
    mean = flat.mean(dim=1)
    std = flat.std(dim=1).clamp_min(1e-6)
    return [float(m) for m in mean], [float(s) for s in std]


def select_training(data: Any, config: TrainConfig) -> Any:
    """Apply ``config.limit`` (first examples) then ``config.max_train`` (seeded random
    subsample) to a dataset."""
    if config.limit is not None:
        data = data.head(config.limit)
    if config.max_train is not None and config.max_train < len(data):
        g = torch.Generator().manual_seed(config.seed)
        idx = torch.randperm(len(data), generator=g)[: config.max_train].sort().values
        data = data.subset(idx)
    return data


def train(
    arch: str,
    data: str | Any,
    *,
    test: Any | None = None,
    config: TrainConfig | None = None,
    arch_kwargs: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    adversary: Adversary | None = None,
    world: World | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    meta: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Build ``arch``, train it on ``data``, evaluate it on the test split, save it.

    Args:
        arch: an architecture in :data:`advx.models.ARCHS` (torch or scikit-learn).
        data: a dataset name for :func:`advx.data.load` (``"fashion-mnist"``,
            ``"digits"``) or an :class:`~advx.data.ImageDataset` (training split).
        test: the test split; default ``load(data, "test")`` when ``data`` is a name.
        config: training settings; default :func:`default_config` for ``arch`` and the
            dataset.
        arch_kwargs: the architecture's options (``ARCHS[arch].options()``).
        out: checkpoint directory to write (atomically, on the main process only);
            None writes nothing.
        adversary: plugged into :func:`fit` (torch only).
        world: the processes training together (torch only).
        on_step: progress callback of :func:`fit` (torch only).
        meta: extra JSON values for ``model.json``.
        device: where a gradient-trained image model trains (``"cpu"``, ``"cuda"``,
            ``"auto"``...; :func:`advx.devices.resolve_device`); default CPU. Batches
            follow the model; the checkpoint is written from CPU copies. Models trained
            by a modality plugin (text) or a non-gradient backend (scikit-learn) refuse
            anything but the CPU.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ConfigError: unknown architecture, option or setting; a text dataset for an image
            model.
        DataNotFoundError: the dataset is not installed.

    Example:
        >>> res = train("mlp", "digits")
        >>> res.test_accuracy > 0.95
        True
    """
    from advx.data import ImageDataset, load
    from advx.devices import resolve_device
    from advx.modalities import get_modality
    from advx.models import build, get_arch, save

    spec = get_arch(arch)
    where = torch.device("cpu") if device is None else resolve_device(device)
    plugin = get_modality(spec.modality)
    trainer = plugin.train if plugin is not None else None
    if where.type != "cpu" and (trainer is not None or spec.backend.fit is not None):
        raise ConfigError(
            f"{arch!r} trains on the CPU only in this version; pass device='cpu' (--device cpu)"
        )
    if trainer is not None:  # e.g. text: tokenised texts, augmentation instead of a loss hook
        return trainer(
            arch, data, test=test, config=config, arch_kwargs=arch_kwargs, out=out,
            adversary=adversary, on_step=on_step, meta=meta,
        )  # fmt: skip
    if isinstance(data, str):
        name = data
        train_ds = load(data, "train")
        test = load(data, "test") if test is None else test
    else:
        train_ds, name = data, getattr(data, "name", "custom")
    if not isinstance(train_ds, ImageDataset) or (
        test is not None and not isinstance(test, ImageDataset)
    ):
        raise ConfigError(
            f"{arch!r} is an image model; {name!r} is not an image dataset "
            "(text architectures train on text datasets)"
        )
    if spec.modality != "image":
        raise ConfigError(f"{arch!r} is a {spec.modality} model; it cannot train on images")
    config = config or default_config(arch, name)
    backend = spec.backend
    gradient_trained = backend.fit is None
    if adversary is not None and not gradient_trained:
        raise ConfigError("adversarial training needs a torch model (gradients)")
    subset = select_training(train_ds, config)
    mean, std = normalisation_of(subset.x)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # weight initialisation
        model = build(
            arch,
            input_shape=train_ds.input_shape,
            num_classes=train_ds.num_classes,
            class_names=train_ds.class_names,
            bounds=train_ds.bounds,
            mean=mean if gradient_trained else None,
            std=std if gradient_trained else None,
            seed=config.seed,
            **dict(arch_kwargs or {}),
        )
    if backend.fit is None:
        model = model.to(where)
        history = fit(
            model, subset, config=config, adversary=adversary, world=world, on_step=on_step
        )
    else:
        history = _fit_once(backend.fit, model, subset)
    acc = evaluate(model, test, batch_size=config.eval_batch_size) if test is not None else math.nan
    training = config.to_dict() | {"n_train": len(subset), "seconds": round(history.seconds, 3)}
    if history.stopped is not None:
        training["stopped"] = history.stopped
    if not gradient_trained:  # the gradient-descent settings did not apply
        for k in ("epochs", "lr", "batch_size", "weight_decay", "optimizer", "schedule"):
            training.pop(k)
    info: dict[str, Any] = {
        "dataset": name,
        "training": training,
        "seed": config.seed,
        "test_accuracy": None if math.isnan(acc) else round(acc, 6),
        **dict(meta or {}),
    }
    path = None
    if out is not None and (world or World()).is_main:
        path = save(model, out, meta=info)
    return TrainResult(model=model, test_accuracy=acc, info=info, history=history, path=path)


def describe(result: TrainResult) -> str:
    """One line summarising a :class:`TrainResult` (used by the CLI and the demo)."""
    t = result.info.get("training", {})
    return (
        f"{result.info.get('dataset')}: test accuracy {100 * result.test_accuracy:.2f}% "
        f"({t.get('n_train')} training images, {t.get('seconds', 0):.1f} s)"
    )


__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "Adversary",
    "History",
    "LossHook",
    "StepInfo",
    "StopTraining",
    "TrainBatch",
    "TrainConfig",
    "TrainResult",
    "World",
    "clean_loss",
    "default_config",
    "describe",
    "evaluate",
    "fit",
    "fit_sklearn",
    "normalisation_of",
    "predict",
    "select_training",
    "train",
]
