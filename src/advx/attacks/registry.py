"""Registry of attacks by slug (``fgsm``, ``pgd``, ``apgd-ce``, ``square``...).

Entries are callables returning a configured :class:`~advx.attacks.base.Attack`; a named
recipe is just a callable with some settings fixed. Never ``eval``.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from advx.errors import ConfigError

if TYPE_CHECKING:
    from advx.attacks.base import Attack

_AttackClass = TypeVar("_AttackClass", bound="type[Attack]")


@dataclass(frozen=True)
class Entry:
    """A registered attack: slug, one-line summary, factory and the attack class."""

    slug: str
    summary: str
    factory: Callable[..., Any]
    cls: type[Attack]
    defaults: dict[str, Any]


_REGISTRY: dict[str, Entry] = {}
_LOADED = False


def register(slug: str, summary: str, **defaults: Any) -> Callable[[_AttackClass], _AttackClass]:
    """Class decorator: register ``cls`` under ``slug`` with fixed ``defaults``.

    Can be stacked to register recipes of one class (``apgd-ce``, ``apgd-dlr``).
    """

    def deco(cls: _AttackClass) -> _AttackClass:
        if slug in _REGISTRY and _REGISTRY[slug].cls is not cls:
            raise ConfigError(f"attack slug {slug!r} registered twice")

        def factory(**kwargs: Any) -> Any:
            return cls(**{**defaults, **kwargs})

        _REGISTRY[slug] = Entry(slug, summary, factory, cls, dict(defaults))
        return cls

    return deco


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    # every public module next to this one defines attacks; found by file name, so the
    # registry never imports the package that imports it
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if not info.name.startswith("_") and not info.ispkg:
            importlib.import_module(f"advx.attacks.{info.name}")
    _LOADED = True


def names() -> list[str]:
    """All registered slugs, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def entries() -> list[Entry]:
    """All registry entries, sorted by slug."""
    _load_all()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get(slug: str) -> Entry:
    """The entry for ``slug``; :class:`ConfigError` listing the known slugs otherwise."""
    _load_all()
    try:
        return _REGISTRY[slug]
    except KeyError:
        raise ConfigError(
            f"unknown attack {slug!r}; known: {', '.join(sorted(_REGISTRY))}"
        ) from None


def create(slug: str, **kwargs: Any) -> Any:
    """Build the attack ``slug`` with settings ``kwargs``; unknown settings raise
    :class:`ConfigError` naming the valid ones.

    Example:
        >>> create("pgd", eps=0.1, steps=10).steps
        10
    """
    entry = get(slug)
    valid = (
        {f.name for f in dataclasses.fields(entry.cls)}
        if dataclasses.is_dataclass(entry.cls)
        else set()
    )
    unknown = set(kwargs) - valid if valid else set()
    if unknown:
        raise ConfigError(f"{slug}: unknown settings {sorted(unknown)}; valid: {sorted(valid)}")
    return entry.factory(**kwargs)
