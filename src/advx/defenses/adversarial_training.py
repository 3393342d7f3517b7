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

This module holds the entry points; the registry is :mod:`advx.defenses.adversaries`, the
recipes :mod:`advx.defenses.training_recipes`, the guard :mod:`advx.defenses.overfit`
(all re-exported here).
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

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from advx.defenses.adversaries import (
    AdversaryEntry,
    adversaries,
    create_adversary,
    register_adversary,
)
from advx.defenses.overfit import OverfitGuard
from advx.defenses.training_recipes import (
    AdversarialLoss,
    FGSMRSTraining,
    FGSMTraining,
    PGDTraining,
    TRADESTraining,
)
from advx.errors import ConfigError

if TYPE_CHECKING:
    from advx.training import StepInfo, TrainConfig, TrainResult, World


__all__ = [
    "AdversarialLoss",
    "AdversaryEntry",
    "FGSMRSTraining",
    "FGSMTraining",
    "OverfitGuard",
    "PGDTraining",
    "TRADESTraining",
    "adversarial_train",
    "adversaries",
    "create_adversary",
    "register_adversary",
    "run_adversarial_training",
]


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
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train ``arch`` on ``data`` with ``adversary`` and record the recipe.

    :func:`advx.training.train` with the adversary in the loss hook; when ``guard`` is on
    (default), an :class:`OverfitGuard` checks clean and PGD accuracy on ``guard_size``
    held-out training examples at each epoch's end (they are removed from the training
    set) and ``on_check`` receives each measurement. ``model.json`` gets
    ``adversarial`` (the recipe: adv, eps, steps, step_size, beta) and, with the guard,
    ``overfit_checks`` and ``stopped``.

    Args:
        arch, data, test, config, arch_kwargs, world, on_step, device: as
            :func:`advx.training.train`.
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
        on_step=step, meta={"adversarial": recipe}, device=device,
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

    known = adversaries()
    if name not in known:
        raise ConfigError(f"unknown adversary {name!r}; choose one of {sorted(known)}")
    entry = known[name]
    modality = get_arch(arch).modality
    if entry.modality != modality:
        raise ConfigError(
            f"adversary {name!r} trains {entry.modality} models; {arch!r} is a {modality} model"
        )
    adversary = create_adversary(name, **settings)
    runner = entry.runner or adversarial_train
    result: TrainResult = runner(arch, data, adversary=adversary, **train_kwargs)
    return result
