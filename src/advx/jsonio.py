"""Strict JSON: what advx writes is valid JSON (RFC 8259), never ``NaN`` or ``Infinity``.

Python's ``json`` writes ``NaN``, ``Infinity`` and ``-Infinity`` tokens by default; most
other readers (JavaScript's ``JSON.parse``, ``jq``, Go, Rust's serde) refuse them. The
convention everywhere in advx: **a non-finite float is written as ``null``** (an
undefined metric, such as the median distance when nothing was attacked, or an unbounded
eps of a minimal attack). Readers treat ``null`` as "undefined".

:func:`finite` applies the convention to a value (recursively, through dicts, lists and
tuples; numpy and torch scalars become Python numbers); :func:`dumps` is ``json.dumps``
with it and ``allow_nan=False``, so a non-finite value that slipped through raises rather
than writing invalid JSON.

Example:
    >>> dumps({"eps": float("inf"), "acc": 0.5, "xs": (1, float("nan"))})
    '{"eps": null, "acc": 0.5, "xs": [1, null]}'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (tuples become lists, numpy
    and torch scalars and 0-d arrays become Python numbers)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if isinstance(obj, Mapping):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    item = getattr(obj, "item", None)  # numpy / torch scalars
    if callable(item) and getattr(obj, "ndim", 0) == 0:
        try:
            return finite(item())
        except (TypeError, ValueError):
            pass
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps(finite(obj), allow_nan=False, **kwargs)``: valid JSON, no NaN/Infinity.

    ``kwargs`` are those of :func:`json.dumps` (``indent``, ``default``...)."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)


def dump(obj: Any, fp: Any, **kwargs: Any) -> None:
    """Write ``dumps(obj, **kwargs)`` to the text file ``fp``."""
    fp.write(dumps(obj, **kwargs))


__all__ = ["dump", "dumps", "finite"]
