"""Cross-model generalisation of text adversarial examples.

Texts crafted against a source model are fed, unchanged, to a target model (Papernot et
al. 2016, "Transferability in machine learning"; for text, Jin et al. 2020, §5 and
Ren et al. 2019, §4.4). The transfer rate counts only texts that both fooled the source
and that the target classified correctly before the change: otherwise a "transfer" would
just be the target's own mistake.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from advx.errors import InputError
from advx.text.adapters import as_text_target
from advx.text.result import TextAttackResults
from advx.text.target import TextTarget


def _pred(target: TextTarget, texts: Sequence[str], batch_size: int = 256) -> Tensor:
    out = [
        target.labels(list(texts[i : i + batch_size])).cpu()
        for i in range(0, len(texts), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def transfer(results: TextAttackResults, target: Any) -> dict[str, Any]:
    """Evaluate the adversarial texts of ``results`` (crafted on a source) on ``target``
    (any text model or :class:`~advx.text.target.TextTarget`; labels are enough, so a
    labels-only HTTP endpoint can be a target).

    Returns:
        ``n``; ``source_success_rate``; ``target_clean_accuracy`` (on the originals);
        ``target_robust_accuracy`` (on the source's adversarial texts where the source
        was fooled, originals elsewhere); ``pairs`` (texts the source attack fooled and
        the target got right before); ``transfer_rate`` (share of those pairs the
        target now gets wrong; None if there are none).
    """
    target = as_text_target(target)
    if len(results) == 0:
        raise InputError("no attack results to transfer")
    rs = list(results)
    y = torch.tensor([r.y for r in rs])
    clean = _pred(target, [r.original for r in rs])
    used = [r.adversarial if r.succeeded else r.original for r in rs]
    adv = _pred(target, used)
    fooled_src = torch.tensor([r.succeeded for r in rs])
    pairs = fooled_src & (clean == y)
    n_pairs = int(pairs.sum())
    attacked = [r for r in rs if not r.skipped]
    return {
        "n": len(rs),
        "source_success_rate": (sum(r.succeeded for r in attacked) / len(attacked))
        if attacked
        else None,
        "target_clean_accuracy": float((clean == y).float().mean()),
        "target_robust_accuracy": float((adv == y).float().mean()),
        "pairs": n_pairs,
        "transfer_rate": float((adv[pairs] != y[pairs]).float().mean()) if n_pairs else None,
    }


@dataclass(frozen=True)
class TextTransferResult:
    """A transfer matrix for text.

    Attributes:
        sources, targets: model names (rows, columns).
        matrix: ``matrix[i][j]`` is the transfer rate from source ``i`` to target ``j``
            (None when no pair qualifies).
        cells: the full :func:`transfer` dict of every cell, by ``(source, target)``.
        source_success: success rate of the attack on each source.
        config: recipe, n, seed, max_queries.
    """

    sources: tuple[str, ...]
    targets: tuple[str, ...]
    matrix: tuple[tuple[float | None, ...], ...]
    cells: dict[tuple[str, str], dict[str, Any]]
    source_success: tuple[float | None, ...]
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form."""

        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and math.isnan(v) else v

        return {
            "sources": list(self.sources),
            "targets": list(self.targets),
            "matrix": [[clean(v) for v in row] for row in self.matrix],
            "source_success": [clean(v) for v in self.source_success],
            "cells": [{"source": s, "target": t, **c} for (s, t), c in self.cells.items()],
            "config": self.config,
        }


def transfer_matrix(
    sources: Mapping[str, Any],
    targets: Mapping[str, Any],
    texts: Sequence[str],
    labels: Sequence[int] | Tensor,
    *,
    recipe: str = "textfooler",
    max_queries: int | None = None,
    seed: int = 0,
    progress: Any = None,
) -> TextTransferResult:
    """Attack each source with ``recipe`` on ``texts`` and evaluate every target on the
    adversarial texts (a source may also be a target: the diagonal is its own success
    on the texts it got right).

    Args:
        sources, targets: name -> text model (``predict_proba``).
        texts, labels: the evaluation texts and their true labels.
        recipe: text recipe slug.
        max_queries: per-example budget on each source.
        seed: attack seed.
        progress: passed to each attack call (``progress(i, result)``).
    """
    from advx.text.recipes import create

    if not sources or not targets:
        raise InputError("give at least one source and one target")
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    rows = []
    succ = []
    for s_name, s_model in sources.items():
        attack = create(recipe, model=s_model, max_queries=max_queries, seed=seed)
        res = attack(s_model, list(texts), labels, progress=progress)
        succ.append(res.summary()["success_rate"])
        row = []
        for t_name, t_model in targets.items():
            cell = transfer(res, t_model)
            cells[(s_name, t_name)] = cell
            row.append(cell["transfer_rate"])
        rows.append(tuple(row))
    return TextTransferResult(
        sources=tuple(sources),
        targets=tuple(targets),
        matrix=tuple(rows),
        cells=cells,
        source_success=tuple(succ),
        config={"recipe": recipe, "n": len(texts), "seed": seed, "max_queries": max_queries},
    )
