"""The probe of an evaluation: which examples the model-querying red-flag checks run on.

After the suite, :func:`measure` runs :func:`advx.evaluate.flags.probe` on the first
``size`` examples at the largest eps. When the suite has no black-box step, the random
search probe runs on the examples that survived every white-box step (read back from the
records, :func:`survivors`), since black-box success there is the masking sign.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from advx.evaluate.data import EvalData, gather
from advx.evaluate.flags import probe
from advx.evaluate.records import derive_seed
from advx.evaluate.suites import ResolvedStep
from advx.targets import Target


def measure(
    target: Target,
    ds: EvalData,
    records: Callable[[], Iterator[dict[str, Any]]],
    *,
    n: int,
    eps_list: tuple[float, ...],
    norm: str,
    seed: int,
    steps: list[ResolvedStep],
    size: int,
) -> dict[str, Any]:
    """Run the model-querying red-flag checks on the first ``size`` examples.

    Returns the raw measurements (stored as the ``probe`` record; flags are decided from
    them by :func:`advx.evaluate.flags.decide`).
    """
    p = min(size, n)
    x, y = ds.batch(0, p)
    x, y = torch.as_tensor(x), torch.as_tensor(y).long()
    ei = max(range(len(eps_list)), key=lambda i: eps_list[i])
    eps = eps_list[ei]
    has_blackbox = any(s.available and s.access != "gradients" for s in steps)
    survivors_xy = None
    if not has_blackbox:
        white = {s.index for s in steps if s.available and s.access == "gradients"}
        alive = survivors(records(), ei, white, limit=size)
        survivors_xy = gather(ds, alive) if alive else (x[:0], y[:0])
    return probe(
        target, x, y, eps=eps, norm=norm, seed=derive_seed(seed, "probe"), survivors=survivors_xy
    )


def survivors(
    records: Iterable[dict[str, Any]], ei: int, white: set[int], *, limit: int
) -> list[int]:
    """Indices robust after every white-box step at eps index ``ei`` (first ``limit``)."""
    clean: dict[int, list[int]] = {}
    broken: set[int] = set()
    for r in records:
        if r["type"] == "clean":
            clean[int(r["batch"])] = [
                i for i, p, t in zip(r["idx"], r["pred"], r["y"], strict=True) if p == t
            ]
        elif r["type"] == "attack" and int(r["eps_index"]) == ei and int(r["step"]) in white:
            broken.update(i for i, rb in zip(r["idx"], r["robust"], strict=True) if not rb)
    out: list[int] = []
    for b in sorted(clean):
        out.extend(i for i in clean[b] if i not in broken)
        if len(out) >= limit:
            break
    return out[:limit]
