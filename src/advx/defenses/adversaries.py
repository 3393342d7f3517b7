"""The registry of adversaries for adversarial training (``advx train --adv NAME``).

:func:`register_adversary` adds one, :func:`adversaries` lists them, :func:`create_adversary`
configures one. The image recipes of :mod:`advx.defenses.training_recipes` are registered
here; other modalities register theirs through their plugin (:mod:`advx.modalities`; the
text package adds ``deepwordbug`` augmentation and the other text recipes), loaded on
first use. Recipes and plugins import this module; it imports no plugin by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from advx.defenses.training_recipes import (
    FGSMRSTraining,
    FGSMTraining,
    PGDTraining,
    TRADESTraining,
)
from advx.errors import ConfigError


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
