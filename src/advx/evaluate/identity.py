"""What a run was computed from: the model's weights, the data, the code.

A run directory records its identity in ``run.json`` (``"identity"``) and ``advx attack``
records it in ``summary.json``; ``--resume`` compares the stored identity with the current
one and refuses any difference, naming it. Without this a resumed run could silently mix
two models (or two data sets, or two versions of advx) into one number.

* **model** — ``name``, ``kind`` (the target's class) and ``sha256``: a hash of every
  tensor of the torch module (name, dtype, shape, bytes) or of the scikit-learn
  estimator's fitted state (arrays and numbers); None for a remote model (an HTTP
  endpoint, identified by ``url`` and ``model_name`` instead).
* **data** — ``name``, ``split``, ``indices`` (which examples, e.g. ``"0:1000"``), ``n``
  and ``sha256`` of the examples' contents (inputs as float32, labels as int64).
* **code** — the advx version and ``source_sha256``, a hash of advx's own Python source,
  so an edited checkout counts as another version.

Example:
    >>> ident = run_identity(WhiteBox(model), (x, y), n=100, data_name="digits")  # doctest: +SKIP
    >>> identity_differences(ident, ident)  # doctest: +SKIP
    []
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from advx.targets import Target

_CHUNK = 1024  # examples hashed per read


def _tensor_bytes(t: Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    return t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def module_sha256(module: nn.Module) -> str:
    """sha256 over every tensor of ``module.state_dict()`` (name, dtype, shape, bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def _state_hash(h: Any, obj: Any, depth: int = 0) -> None:
    """Feed the fitted state of a scikit-learn estimator (recursively) into ``h``."""
    if depth > 20:
        return
    if isinstance(obj, np.ndarray):
        h.update(f"nd|{obj.dtype}|{obj.shape}|".encode())
        h.update(obj.tobytes() if obj.dtype != object else repr(obj.tolist()).encode())
    elif isinstance(obj, Tensor):
        h.update(_tensor_bytes(obj))
    elif obj is None or isinstance(obj, (bool, int, float, str, bytes, np.generic)):
        h.update(f"{type(obj).__name__}|{obj!r}|".encode())
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            h.update(f"k|{k}|".encode())
            _state_hash(h, obj[k], depth + 1)
    elif isinstance(obj, (list, tuple)):
        h.update(f"seq|{len(obj)}|".encode())
        for v in obj:
            _state_hash(h, v, depth + 1)
    else:  # an estimator, a tree...: its state, never its repr (that holds addresses)
        h.update(f"obj|{type(obj).__qualname__}|".encode())
        state = obj.__getstate__() if hasattr(obj, "__getstate__") else None
        if isinstance(state, (dict, tuple, list)):
            _state_hash(h, state, depth + 1)


def _find(obj: Any, seen: set[int], depth: int = 0) -> list[Any]:
    """The models inside a target: torch modules and scikit-learn estimators."""
    if id(obj) in seen or depth > 4:
        return []
    seen.add(id(obj))
    if isinstance(obj, nn.Module) or hasattr(obj, "get_params"):
        return [obj]
    if not isinstance(obj, Target) and not hasattr(obj, "__dict__"):
        return []
    found: list[Any] = []
    for value in vars(obj).values():
        if isinstance(value, (nn.Module, Target)) or hasattr(value, "get_params"):
            found += _find(value, seen, depth + 1)
    return found


def model_identity(target: Target) -> dict[str, Any]:
    """``name``, ``kind`` and ``sha256`` of the model behind ``target`` (see the module
    docstring); remote targets give ``url`` and ``model_name`` and no hash."""
    out: dict[str, Any] = {"name": target.name, "kind": type(target).__name__, "sha256": None}
    url = getattr(target, "url", None)
    if isinstance(url, str):
        out.update(url=url, model_name=getattr(target, "model_name", None))
        return out
    models = _find(target, set())
    if models:
        h = hashlib.sha256()
        for m in models:
            if isinstance(m, nn.Module):
                h.update(module_sha256(m).encode())
            else:
                _state_hash(h, m)
        out["sha256"] = h.hexdigest()
    return out


def data_sha256(batch: Callable[[int, int], tuple[Any, Any]], n: int) -> str:
    """sha256 of examples ``0:n`` read through ``batch(start, stop)`` (inputs as float32,
    labels as int64), a chunk at a time."""
    h = hashlib.sha256()
    for start in range(0, n, _CHUNK):
        x, y = batch(start, min(n, start + _CHUNK))
        x = torch.as_tensor(x).to(torch.float32)
        y = torch.as_tensor(y).to(torch.int64)
        h.update(f"{tuple(x.shape)}|".encode())
        h.update(_tensor_bytes(x))
        h.update(_tensor_bytes(y))
    return h.hexdigest()


@functools.cache
def source_sha256() -> str:
    """sha256 of advx's own Python source files (path and content, sorted)."""
    import advx

    root = Path(advx.__file__).parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def code_identity() -> dict[str, str]:
    """The advx version and the hash of its source."""
    import advx

    return {"advx": advx.__version__, "source_sha256": source_sha256()}


def run_identity(
    target: Target,
    batch: Callable[[int, int], tuple[Any, Any]],
    *,
    n: int,
    data_name: str | None = None,
    split: str | None = None,
    indices: str | None = None,
) -> dict[str, Any]:
    """The identity of a run of ``target`` on examples ``0:n`` of ``batch``."""
    return {
        "model": model_identity(target),
        "data": {
            "name": data_name,
            "split": split,
            "indices": indices or f"0:{n}",
            "n": int(n),
            "sha256": data_sha256(batch, n),
        },
        "code": code_identity(),
    }


_WHAT = {
    ("model", "sha256"): "the model's weights",
    ("model", "name"): "the model's name",
    ("model", "kind"): "the kind of model",
    ("model", "url"): "the model server's URL",
    ("model", "model_name"): "the model's name on the server",
    ("data", "name"): "the data set",
    ("data", "split"): "the data split",
    ("data", "indices"): "the examples (indices)",
    ("data", "n"): "the number of examples",
    ("data", "sha256"): "the data's contents",
    ("code", "advx"): "the advx version",
    ("code", "source_sha256"): "advx's source code",
}


def _short(v: Any) -> str:
    return f"{v[:12]}…" if isinstance(v, str) and len(v) == 64 else repr(v)


def identity_differences(stored: Any, current: dict[str, Any]) -> list[str]:
    """Human descriptions of what differs between a stored identity and the current one
    (empty when they match). A run stored without an identity differs in everything."""
    if not isinstance(stored, dict):
        return ["the stored run records no identity (it was made by an older advx)"]
    out = []
    for (part, key), what in _WHAT.items():
        a = (stored.get(part) or {}).get(key) if isinstance(stored.get(part), dict) else None
        b = current.get(part, {}).get(key)
        if a != b and not (a is None and b is None):
            out.append(f"{what} ({_short(a)} stored, {_short(b)} now)")
    return out
