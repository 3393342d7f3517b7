"""The opt-in query cache: :class:`CachedTarget` answers identical repeated rows from a
cache instead of re-evaluating the model."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from advx.errors import InputError
from advx.targets import (
    Target,
    target_meta,
)


class CachedTarget(Target):
    """A target that answers identical repeated rows from a cache (opt-in).

    Each row of a ``scores``/``labels`` query is keyed by a hash (BLAKE2b, 128 bits) of
    its bytes, dtype and shape; rows already seen (also repeats inside one batch) are not
    sent to the model. Least recently used entries are dropped beyond ``max_entries``.
    ``logits`` (white-box, differentiable) pass through uncached.

    Accounting: ``cached.queries`` counts every row asked of it (like any target), the
    wrapped ``cached.inner.queries`` counts rows the model really evaluated, and
    ``hits``/``misses`` split the difference. An :class:`~advx.targets.Oracle` still
    charges each example for every query its attack makes, cached or not: budgets follow
    the attack's semantics (a paper's "queries"), the cache only saves model evaluations.

    Args:
        target: the target to wrap; the wrapper has its access level and metadata.
        max_entries: most rows kept (default 100 000), per output kind.

    Example:
        >>> box = CachedTarget(ScoreBox(lambda x: x.softmax(1), input_shape=(3,), num_classes=3))
        >>> _ = box.scores(torch.zeros(2, 3)); box.inner.queries, box.hits
        (1, 1)
    """

    def __init__(self, target: Target, max_entries: int = 100_000) -> None:
        if not isinstance(target, Target):
            raise InputError(f"CachedTarget wraps an advx Target, got {type(target).__name__}")
        if max_entries < 1:
            raise InputError(f"max_entries must be >= 1, got {max_entries}")
        super().__init__(**target_meta(target))
        self.inner = target
        self.access = target.access
        self.max_entries = int(max_entries)
        self.hits = 0
        self.misses = 0
        self._cache: dict[str, OrderedDict[bytes, Tensor]] = {
            "scores": OrderedDict(),
            "labels": OrderedDict(),
        }

    def _logits(self, x: Tensor) -> Tensor:
        return self.inner.logits(x)

    def _scores(self, x: Tensor) -> Tensor:
        return self._lookup("scores", x, self.inner.scores)

    def _labels(self, x: Tensor) -> Tensor:
        return self._lookup("labels", x, self.inner.labels)

    def attacking(self) -> Any:
        return self.inner.attacking()

    def clear(self) -> None:
        """Forget every cached row."""
        for c in self._cache.values():
            c.clear()

    @staticmethod
    def _keys(x: Tensor) -> list[bytes]:
        rows = x.detach().cpu().contiguous()
        prefix = f"{rows.dtype}{tuple(rows.shape[1:])}".encode()
        flat = rows.reshape(rows.shape[0], -1).numpy() if rows.numel() else None
        return [
            hashlib.blake2b(
                prefix + (flat[i].tobytes() if flat is not None else b""), digest_size=16
            ).digest()
            for i in range(rows.shape[0])
        ]

    def _lookup(self, kind: str, x: Tensor, evaluate: Callable[[Tensor], Tensor]) -> Tensor:
        cache = self._cache[kind]
        keys = self._keys(x)
        found: dict[bytes, Tensor] = {}
        todo: dict[bytes, int] = {}  # key -> first row needing evaluation
        for i, k in enumerate(keys):
            if k in found or k in todo:
                continue
            if k in cache:
                cache.move_to_end(k)
                found[k] = cache[k]
            else:
                todo[k] = i
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        if todo:
            rows = torch.tensor(list(todo.values()), dtype=torch.long, device=x.device)
            fresh = evaluate(x[rows])
            for j, k in enumerate(todo):
                found[k] = fresh[j].detach().clone()
                cache[k] = found[k]
            while len(cache) > self.max_entries:
                cache.popitem(last=False)
        return torch.stack([found[k] for k in keys])
