"""Aggregate an evaluation's saved records into its headline numbers (pure, streaming).

Nothing here touches a model: the numbers come from ``run.json`` and the results file(s)
only, so a report made a week later shows exactly what the run measured.

Definitions (AutoAttack's discipline):

* clean accuracy: share of the ``n`` examples the model classifies correctly;
* per-step robust accuracy (``per_attack``): share still classified correctly after the
  suite's steps *up to and including* that one; each step only attacks what the earlier
  ones left robust, so this is cumulative and non-increasing along the suite;
* robust accuracy (per eps): after the whole suite, i.e. the per-example worst case.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advx.evaluate.flags import decide
from advx.evaluate.records import read_run
from advx.evaluate.rundir import RUN_JSON, SUMMARY_JSON, load_run
from advx.evaluate.suites import eps_key

# run.json's name and reader live in advx.evaluate.rundir; kept importable from here
__all__ = [
    "RUN_JSON",
    "SUMMARY_JSON",
    "EvalReport",
    "load_run",
    "step_label",
    "summarize",
    "summarize_dir",
    "summarize_records",
]


@dataclass
class _StepTally:
    attacked: int = 0
    robust: int = 0
    seconds: float = 0.0
    queries: int = 0
    errors: list[str] = field(default_factory=list)
    distances: list[float] = field(default_factory=list)
    candidates: int | None = None  # adaptive steps: survivors considered for escalation
    reasons: dict[str, int] = field(default_factory=dict)  # escalation sign -> examples


@dataclass(frozen=True)
class EvalReport:
    """The numbers of an evaluation run.

    Attributes:
        n: examples evaluated (complete batches only when the run is unfinished).
        clean_accuracy: share classified correctly.
        robust_accuracy: eps -> share robust after the whole suite.
        per_attack: step label -> eps -> cumulative robust accuracy after that step.
        flags: red-flag records (see :mod:`advx.evaluate.flags`).
        seconds: compute time summed over the records (all sessions of a resumed run).
        complete: every batch of the run is recorded.
        steps: the resolved suite steps (with availability and reasons).
        details: per step and eps: attacked, broken, median distance of successes, mean
            queries, seconds, errors.
        run_dir: where the run lives (None for in-memory runs).
    """

    n: int
    clean_accuracy: float
    robust_accuracy: dict[float, float]
    per_attack: dict[str, dict[float, float]]
    flags: list[dict[str, Any]]
    seconds: float
    complete: bool
    steps: list[dict[str, Any]]
    details: dict[str, dict[float, dict[str, Any]]]
    eps: tuple[float, ...]
    run_dir: Path | None = None
    batches_done: int = 0
    batches_total: int = 0

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` contract: clean_accuracy, robust_accuracy (eps -> value),
        per_attack (step -> eps -> value), flags, seconds, plus context."""
        return {
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": {eps_key(e): v for e, v in self.robust_accuracy.items()},
            "per_attack": {
                k: {eps_key(e): v for e, v in d.items()} for k, d in self.per_attack.items()
            },
            "flags": self.flags,
            "seconds": self.seconds,
            "n": self.n,
            "complete": self.complete,
            "batches": {"done": self.batches_done, "total": self.batches_total},
            "skipped_attacks": [
                {"attack": s["label"], "reason": s["reason"]}
                for s in self.steps
                if not s["available"]
            ],
            "details": {k: {eps_key(e): v for e, v in d.items()} for k, d in self.details.items()},
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
        }


def step_label(step: dict[str, Any], steps: list[dict[str, Any]]) -> str:
    """Display name of a step: its slug, or its label when a slug occurs twice."""
    same = [s for s in steps if s["slug"] == step["slug"]]
    return step["slug"] if len(same) == 1 else f"{step['label']}#{step['index']}"


def summarize(records: Any, run: dict[str, Any], *, run_dir: Path | None = None) -> EvalReport:
    """Aggregate ``records`` (an iterable of record dicts, consumed twice if it is a
    list; pass a run directory via :func:`summarize_dir` to stream from disk) under the
    run description ``run`` (the content of ``run.json``)."""
    recs = records if isinstance(records, list) else list(records)
    return summarize_records(lambda: iter(recs), run, run_dir=run_dir)


def summarize_dir(run_dir: Path) -> EvalReport:
    """The :class:`EvalReport` of a run directory, streaming its results file(s)."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    return summarize_records(lambda: read_run(run_dir), run, run_dir=run_dir)


def summarize_records(
    source: Callable[[], Iterable[dict[str, Any]]],
    run: dict[str, Any],
    *,
    run_dir: Path | None = None,
) -> EvalReport:
    """Aggregate the records yielded by ``source()`` (called twice: two streaming passes,
    so a results file of any size is read in constant memory) under ``run``."""
    cfg = run["config"]
    eps = tuple(float(e) for e in cfg["eps"])
    steps: list[dict[str, Any]] = run["steps"]
    n_planned = int(cfg["n"])
    bs = int(cfg["batch_size"])
    total_batches = math.ceil(n_planned / bs) if n_planned else 0

    done: set[int] = set()
    probe: dict[str, Any] | None = None
    for rec in source():
        if rec["type"] == "batch_done":
            done.add(int(rec["batch"]))
        elif rec["type"] == "probe":
            probe = rec.get("measurements")

    n = n_correct = 0
    seconds = 0.0
    tallies: dict[tuple[int, int], _StepTally] = {}
    for rec in source():
        t = rec["type"]
        if t == "probe":
            seconds += float(rec.get("seconds", 0.0))
            continue
        if "batch" not in rec or int(rec["batch"]) not in done:
            continue
        if t == "clean":
            n += len(rec["y"])
            n_correct += sum(int(p == y) for p, y in zip(rec["pred"], rec["y"], strict=True))
            seconds += float(rec.get("seconds", 0.0))
        elif t == "attack":
            tal = tallies.setdefault((int(rec["eps_index"]), int(rec["step"])), _StepTally())
            tal.attacked += len(rec["idx"])
            tal.robust += sum(rec["robust"])
            tal.seconds += float(rec.get("seconds", 0.0))
            tal.queries += sum(int(q) for q in rec.get("queries", []))
            seconds += float(rec.get("seconds", 0.0))
            if rec.get("error"):
                tal.errors.append(str(rec["error"]))
            if rec.get("escalation"):
                esc = rec["escalation"]
                tal.candidates = (tal.candidates or 0) + int(esc["candidates"])
                for k, v in esc["reasons"].items():
                    tal.reasons[k] = tal.reasons.get(k, 0) + len(v)
            for r, d in zip(rec["robust"], rec.get("distance", []), strict=False):
                if not r and d is not None:
                    tal.distances.append(float(d))

    clean = n_correct / n if n else math.nan
    robust: dict[float, float] = {}
    per_attack: dict[str, dict[float, float]] = {}
    details: dict[str, dict[float, dict[str, Any]]] = {}
    gain: dict[float, tuple[int, int]] = {}
    for ei, e in enumerate(eps):
        alive = n_correct
        white_seen = False
        bb_base: int | None = None
        bb_broken = 0
        for s in steps:
            label = step_label(s, steps)
            if not s["available"]:
                continue
            tal = tallies.get((ei, int(s["index"])), _StepTally())
            broken = tal.attacked - tal.robust
            if s.get("access") == "gradients":
                white_seen = True
            elif white_seen:
                if bb_base is None:
                    bb_base = alive
                bb_broken += broken
            alive -= broken
            per_attack.setdefault(label, {})[e] = alive / n if n else math.nan
            details.setdefault(label, {})[e] = {
                "attacked": tal.attacked,
                "broken": broken,
                "median_distance": statistics.median(tal.distances) if tal.distances else None,
                "mean_queries": tal.queries / tal.attacked if tal.attacked else None,
                "seconds": round(tal.seconds, 3),
                "errors": sorted(set(tal.errors)),
            }
            if tal.candidates is not None:  # adaptive step: who escalated, and why
                details[label][e]["escalation"] = {
                    "candidates": tal.candidates,
                    "escalated": tal.attacked,
                    "reasons": dict(sorted(tal.reasons.items())),
                }
        robust[e] = alive / n if n else math.nan
        if bb_base is not None:
            gain[e] = (bb_broken, bb_base)

    flags = decide(
        probe,
        eps=eps,
        robust_accuracy=robust,
        n_correct=n_correct,
        blackbox_gain=gain or None,
        white_box_ran=any(s["available"] and s.get("access") == "gradients" for s in steps),
    )
    return EvalReport(
        n=n,
        clean_accuracy=clean,
        robust_accuracy=robust,
        per_attack=per_attack,
        flags=flags,
        seconds=round(seconds, 3),
        complete=len(done) == total_batches,
        steps=steps,
        details=details,
        eps=eps,
        run_dir=run_dir,
        batches_done=len(done),
        batches_total=total_batches,
    )
