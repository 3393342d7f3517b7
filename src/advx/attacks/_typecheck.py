"""Type-check an attack's settings against its dataclass annotations, at construction.

A frozen dataclass does not check types, so ``create("pgd", eps=0.1, steps=2.5)`` would
build and crash later inside the loop, and ``max_queries=True`` would pass as 1. Every
attack's ``__post_init__`` (in :class:`~advx.attacks.base.Attack`) calls
:func:`check_settings`, driven by the field annotations, so one rule covers every attack:

* ``int`` takes integers (not bools, not floats such as 2.5 or 2.0);
* ``float`` takes integers or floats (not bools, not strings such as ``"0.1"``);
* ``bool`` takes only True/False; ``str`` only strings; ``Literal[...]`` one of its values;
* ``X | None`` also takes None; ``Sequence[X]``/``tuple[X, ...]`` take lists or tuples
  (not strings) of X;
* other annotations (callables, tensors, protocols) are left to the attack's own
  :meth:`~advx.attacks.base.Attack.validate`.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from typing import Any

from advx.errors import InputError

_UNCHECKED = object()


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of ``cls``'s init fields (cached per class)."""
    if cls not in _HINTS:
        try:
            hints = typing.get_type_hints(cls)
        except (NameError, TypeError):  # an annotation names a type-checking-only import
            hints = {}
        _HINTS[cls] = {
            f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init and f.name in hints
        }
    return _HINTS[cls]


def _describe(tp: Any) -> str | object:
    """Words for the values ``tp`` accepts, or ``_UNCHECKED`` when we do not check it."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is bool:
        return "a bool (True or False)"
    if tp is str:
        return "a string"
    if tp is type(None):
        return "None"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in args]
        if any(p is _UNCHECKED for p in parts):
            return _UNCHECKED
        return ", ".join(str(p) for p in parts[:-1]) + " or " + str(parts[-1])
    if origin in (tuple, list, collections.abc.Sequence):
        items = [a for a in args if a is not Ellipsis] or [Any]
        inner = _describe(items[0]) if len(set(items)) == 1 else _UNCHECKED
        if inner is _UNCHECKED:
            return _UNCHECKED
        return f"a list of {str(inner).removeprefix('a ').removeprefix('an ')}s"
    return _UNCHECKED


def _fits(value: Any, tp: Any) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is bool:
        return isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if tp is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin in (tuple, list, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        items = [a for a in args if a is not Ellipsis] or [Any]
        if origin is tuple and Ellipsis not in args and len(args) != len(value):
            return False
        if len(set(items)) == 1:
            return all(_fits(v, items[0]) for v in value)
        return all(_fits(v, t) for v, t in zip(value, items, strict=False))
    return True  # not ours to check


def check_settings(obj: Any) -> None:
    """Raise :class:`~advx.errors.InputError` naming the first setting of the dataclass
    ``obj`` whose value does not fit its annotation, and what it expects."""
    label = getattr(obj, "name", "") or type(obj).__name__
    for name, tp in _hints(type(obj)).items():
        want = _describe(tp)
        if want is _UNCHECKED:
            continue
        value = getattr(obj, name)
        if not _fits(value, tp):
            raise InputError(f"{label}: {name} must be {want}, got {value!r}")
