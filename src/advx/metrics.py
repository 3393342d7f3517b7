"""Metrics: pure functions over attack results (no hidden counters).

Conventions: accuracies are over all examples; ``success_rate`` is over attacked examples
(those the model classified correctly); distances are over successful examples.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from advx.attacks.result import AttackResult, Status


def clean_accuracy(r: AttackResult) -> float:
    """Share of examples the model classifies correctly before the attack."""
    return float((r.pred_clean == r.y).float().mean())


def robust_accuracy(r: AttackResult) -> float:
    """Share of examples still classified correctly after the attack."""
    return float((r.pred_adv == r.y).float().mean())


def success_rate(r: AttackResult) -> float:
    """Share of attacked examples the attack fooled (NaN if none was attacked)."""
    attacked = r.attacked
    n = int(attacked.sum())
    return float(r.succeeded.sum()) / n if n else math.nan


def _succ_dist(r: AttackResult) -> torch.Tensor:
    return r.distance[r.status == Status.SUCCEEDED].float()


def median_distance(r: AttackResult) -> float:
    """Median perturbation norm over successful examples (NaN if none)."""
    d = _succ_dist(r)
    return float(d.median()) if d.numel() else math.nan


def max_distance(r: AttackResult) -> float:
    """Largest perturbation norm over successful examples (NaN if none)."""
    d = _succ_dist(r)
    return float(d.max()) if d.numel() else math.nan


def mean_queries(r: AttackResult) -> float:
    """Mean model evaluations per attacked example (NaN if none)."""
    q = r.queries[r.attacked].float()
    return float(q.mean()) if q.numel() else math.nan


def median_queries(r: AttackResult) -> float:
    """Median model evaluations per attacked example (NaN if none)."""
    q = r.queries[r.attacked].float()
    return float(q.median()) if q.numel() else math.nan


def summary(r: AttackResult) -> dict[str, Any]:
    """The standard summary, with the keys scripts rely on: clean_accuracy,
    robust_accuracy, success_rate, median_distance, max_distance, mean_queries,
    median_queries, seconds (plus n, attack, eps, norm). NaN becomes None (valid JSON)."""
    out: dict[str, Any] = {
        "attack": r.attack,
        "n": len(r),
        "eps": r.eps,
        "norm": r.threat.norm,
        "clean_accuracy": clean_accuracy(r),
        "robust_accuracy": robust_accuracy(r),
        "success_rate": success_rate(r),
        "median_distance": median_distance(r),
        "max_distance": max_distance(r),
        "mean_queries": mean_queries(r),
        "median_queries": median_queries(r),
        "seconds": r.seconds,
    }
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}
