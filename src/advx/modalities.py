"""What a modality (images, texts) brings to the generic layers, registered by its package.

Generic code looks a modality up here by the ``modality`` of an architecture
(:attr:`advx.models.registry.ArchSpec.modality`) and never imports a modality's package
by name: :func:`advx.training.train` hands a text architecture to the text trainer, and
:func:`advx.defenses.adversarial_training.adversaries` lists the text recipes, because
:mod:`advx.text` registered a :class:`ModalityPlugin` when it was imported. Every
architecture of a modality is registered by that modality's package, so the plugin is
there whenever such an architecture is. Images are the built-in modality: the generic
trainer and adversaries are theirs, and they need no plugin.

Example:
    >>> import advx.models  # the zoo: registers the text package's plugin too
    >>> get_modality("text").name
    'text'
    >>> get_modality("image") is None
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from advx.errors import ConfigError

if TYPE_CHECKING:
    from advx.training_types import StepInfo, TrainConfig, TrainResult


class Trainer(Protocol):
    """The signature of :func:`advx.training.train`, which a modality's trainer takes over
    for its architectures (``adversary`` is whatever that modality's adversaries are)."""

    def __call__(
        self,
        arch: str,
        data: str | Any,
        *,
        test: Any | None = ...,
        config: TrainConfig | None = ...,
        arch_kwargs: Mapping[str, Any] | None = ...,
        out: str | Path | None = ...,
        adversary: Any | None = ...,
        on_step: Callable[[StepInfo], None] | None = ...,
        meta: Mapping[str, Any] | None = ...,
    ) -> TrainResult: ...


@dataclass(frozen=True)
class ModalityPlugin:
    """A modality's entry points for the generic layers.

    Attributes:
        name: the modality, as in :attr:`advx.models.registry.ArchSpec.modality`.
        train: trains its architectures in place of the generic image trainer (None: the
            generic one).
        load_adversaries: registers its adversaries with
            :func:`advx.defenses.adversarial_training.register_adversary`; called once, the
            first time the adversaries are listed (so importing the modality stays cheap).
    """

    name: str
    train: Trainer | None = None
    load_adversaries: Callable[[], None] | None = None


_MODALITIES: dict[str, ModalityPlugin] = {}


def register_modality(plugin: ModalityPlugin) -> ModalityPlugin:
    """Add a modality's plugin; returns it.

    Raises:
        ConfigError: another plugin already has that name.
    """
    old = _MODALITIES.get(plugin.name)
    if old is not None and old != plugin:
        raise ConfigError(f"modality {plugin.name!r} is already registered")
    _MODALITIES[plugin.name] = plugin
    return plugin


def get_modality(name: str) -> ModalityPlugin | None:
    """The plugin of modality ``name``, or None (images, or nothing registered)."""
    return _MODALITIES.get(name)


def modalities() -> dict[str, ModalityPlugin]:
    """Every registered plugin by name."""
    return dict(_MODALITIES)
