"""Robust-accuracy evaluation: clean accuracy first, then a suite of attacks, each only on
the examples still robust; results streamed to JSON Lines; resumable; shardable.

The discipline is AutoAttack's (Croce & Hein, ICML 2020): robust accuracy at an eps is
the share of examples that *every* step of the suite failed to break (the per-example
worst case), and every step runs only on what the earlier steps left.

Determinism: the seed of a step on a batch is derived from ``(seed, batch, eps index,
step index)``, and a step sees exactly the examples the recorded earlier steps left, so a
resumed run, a run sharded over processes and an uninterrupted run give the same numbers.

Memory stays flat in ``n``: data are read one batch at a time and adversarial inputs are
dropped after each step unless ``save_examples`` asks for them (side files per batch).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import advx.evaluate.escalation as escalation
import advx.evaluate.rundir as rundir
from advx.errors import AdvxError, InputError
from advx.evaluate.data import EvalData, TensorData, as_data
from advx.evaluate.identity import run_identity
from advx.evaluate.probe import measure
from advx.evaluate.progress import Counter, Progress
from advx.evaluate.provenance import command_line, versions
from advx.evaluate.records import (
    RESULTS,
    RecordWriter,
    derive_seed,
    floats,
    merge,
    read_run,
    write_json,
)
from advx.evaluate.rundir import example_file
from advx.evaluate.suites import ResolvedStep, Suite, load_suite, resolve
from advx.evaluate.summary import EvalReport, summarize_records
from advx.targets import Access, Target

# public names: evaluate and dist_info live here; the others moved to the modules named
# for them (data, progress, provenance, rundir) and stay importable from here
__all__ = [
    "EvalData",
    "Progress",
    "TensorData",
    "as_data",
    "command_line",
    "dist_info",
    "evaluate",
    "example_file",
    "versions",
]

log = logging.getLogger(__name__)


def dist_info() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised torch.distributed group, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def _access_name(target: Target) -> str:
    return {Access.GRADIENTS: "gradients", Access.SCORES: "scores", Access.LABELS: "labels"}[
        Access(int(target.access))
    ]


def _predict(target: Target, x: Tensor) -> Tensor:
    with target.attacking(), torch.no_grad():
        return target.labels(x).long()


def evaluate(
    target: Target,
    data: Any,
    *,
    eps: float | Sequence[float],
    suite: str | Suite = "standard",
    norm: str = "linf",
    n: int | None = None,
    batch_size: int = 250,
    seed: int = 0,
    run_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    save_examples: bool = False,
    probe: int = 100,
    progress: Progress | None = None,
    stop_after_batches: int | None = None,
    meta: dict[str, Any] | None = None,
) -> EvalReport:
    """Evaluate ``target`` on the first ``n`` examples of ``data`` against a suite.

    Args:
        target: the model (a :class:`~advx.targets.Target`; steps needing more access
            than it grants are reported as skipped).
        data: ``(x, y)`` tensors, or an object with ``__len__`` and ``batch(start, stop)``.
        eps: one budget or several (input units, e.g. 0.1 on [0, 1] pixels); each eps is
            evaluated independently.
        suite: ``"quick"``, ``"standard"``, ``"thorough"``, a JSON file, or a
            :class:`~advx.evaluate.suites.Suite`.
        norm: ``"linf"`` (default) or ``"l2"``/``"l1"`` for attacks that support it.
        n: number of examples (default all of ``data``).
        batch_size: examples per batch (the unit of streaming, seeding and resuming).
        seed: the one seed every random choice derives from.
        run_dir: directory for ``run.json``, ``results.jsonl``, ``summary.json`` and
            saved examples; None keeps the records in memory.
        resume: continue the run in ``run_dir`` where it stopped; the settings and the
            run's identity (model weights, data, advx code; see
            :mod:`advx.evaluate.identity`) must match what is stored, else ConfigError
            naming what differs.
        save_examples: also save adversarial inputs (``run_dir/examples/``) for galleries.
        probe: size of the probe batch for the red-flag checks (0 disables them).
        progress: optional callback ``(done, total, description)``.
        stop_after_batches: stop (as if killed) after this many batches complete in this
            call; for testing resumption.
        meta: extra context stored in ``run.json`` (command, model path, data set);
            ``data`` and ``split`` there also name the data in the run's identity.

    Returns:
        An :class:`~advx.evaluate.summary.EvalReport`; ``complete`` is False when the run
        stopped early. Under ``torchrun`` every rank returns the merged report.

    Example:
        >>> report = evaluate(WhiteBox(model), (x, y), eps=[0.05, 0.1], suite="quick")  # doctest: +SKIP
        >>> report.robust_accuracy  # doctest: +SKIP
        {0.05: 0.41, 0.1: 0.07}
    """
    t_start = time.perf_counter()
    if not isinstance(target, Target):
        raise InputError(
            f"target must be an advx Target, got {type(target).__name__}; wrap a torch model "
            "with advx.targets.WhiteBox(model)"
        )
    ds = as_data(data)
    eps_list = tuple(float(e) for e in (eps if isinstance(eps, Sequence) else (eps,)))
    if not eps_list:
        raise InputError("give at least one eps")
    for e in eps_list:
        if not e >= 0 or math.isinf(e):
            raise InputError(f"eps must be a finite number >= 0, got {e}")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if probe < 0:
        raise InputError(f"probe must be >= 0, got {probe}")
    total = len(ds)
    n = total if n is None else int(n)
    if not 1 <= n <= total:
        raise InputError(f"n must be in [1, {total}] (the data has {total} examples), got {n}")
    the_suite = load_suite(suite)
    rank, world = dist_info()

    config = {
        "suite": the_suite.to_dict(),
        "eps": list(eps_list),
        "norm": norm,
        "n": n,
        "batch_size": int(batch_size),
        "seed": int(seed),
        "save_examples": bool(save_examples),
        "probe": int(probe),
    }
    # as it will read back from run.json (tuples become lists), so resume compares equal
    config = json.loads(json.dumps(config))
    steps = resolve(the_suite, norm=norm, access=_access_name(target))
    identity = None  # what the numbers come from; only a run directory can be resumed
    if run_dir is not None:
        m = meta or {}
        identity = run_identity(
            target, ds.batch, n=n, data_name=m.get("data"), split=m.get("split")
        )
    run = {
        "kind": "eval",
        "format": 1,
        "config": config,
        "identity": identity,
        "steps": [s.to_dict() for s in steps],
        "target": {
            "name": target.name,
            "access": _access_name(target),
            "input_shape": list(target.input_shape),
            "num_classes": target.num_classes,
            "bounds": list(target.bounds),
            "class_names": list(target.class_names),
        },
        "meta": {"command": command_line(), **(meta or {})},
        "versions": versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "world_size": world,
    }

    out: Path | None = Path(run_dir) if run_dir is not None else None
    if out is None and world > 1:
        raise InputError("a distributed evaluation needs run_dir (ranks merge files there)")
    memory: list[dict[str, Any]] = []
    if out is not None:
        run, steps = rundir.prepare(out, run, steps, resume=resume, rank=rank, world=world)
    elif resume:
        raise InputError("resume needs a run_dir")

    existing = rundir.recorded(out) if out is not None and resume else {}

    writer: RecordWriter | None = None
    if out is not None:
        name = RESULTS if world == 1 else f"results.rank{rank}.jsonl"
        writer = RecordWriter(out / name)

    def emit(rec: dict[str, Any]) -> None:
        if writer is not None:
            writer.write(rec)
        else:
            memory.append(rec)

    n_batches = math.ceil(n / batch_size)
    mine = [b for b in range(n_batches) if b % world == rank]
    live = [s for s in steps if s.available]
    per_batch = 1 + len(eps_list) * len(live)
    count = Counter(progress, len(mine) * per_batch)
    finished_here = 0
    stopped = False
    try:
        for b in mine:
            if ("batch_done", b) in existing:
                count.add(per_batch, f"batch {b + 1}/{n_batches} (already done)")
                continue
            _run_batch(
                target, ds, b, n=n, batch_size=batch_size, eps_list=eps_list, norm=norm,
                seed=seed, steps=live, existing=existing, emit=emit, out=out,
                save_examples=save_examples, count=count,
            )  # fmt: skip
            finished_here += 1
            if stop_after_batches is not None and finished_here >= stop_after_batches:
                stopped = True
                break
    finally:
        if writer is not None:
            writer.close()

    def records() -> Iterator[dict[str, Any]]:
        # streamed from disk (memory stays flat in n), or the in-memory list
        return read_run(out) if out is not None else iter(memory)

    if stopped:
        log.info("stopped after %d batches as asked", finished_here)
        return summarize_records(records, run, run_dir=out)

    _barrier(world)
    if rank == 0:
        if out is not None and (world > 1 or any(out.glob("results.rank*.jsonl"))):
            merge(out)
        if probe and not any(r["type"] == "probe" for r in records()):
            t0 = time.perf_counter()
            measurements = measure(
                target, ds, records, n=n, eps_list=eps_list, norm=norm, seed=seed,
                steps=steps, size=probe,
            )  # fmt: skip
            rec = {
                "type": "probe",
                "measurements": measurements,
                "seconds": round(time.perf_counter() - t0, 3),
            }
            if out is not None:
                with RecordWriter(out / RESULTS) as w:
                    w.write(rec)
            else:
                memory.append(rec)
        report = summarize_records(records, run, run_dir=out)
        if out is not None:
            body = report.to_json()
            body["wall_seconds"] = round(time.perf_counter() - t_start, 3)
            write_json(out / rundir.SUMMARY_JSON, body)
    _barrier(world)
    if rank != 0:
        report = summarize_records(records, run, run_dir=out)
    return report


def _run_batch(
    target: Target,
    ds: EvalData,
    b: int,
    *,
    n: int,
    batch_size: int,
    eps_list: tuple[float, ...],
    norm: str,
    seed: int,
    steps: list[ResolvedStep],
    existing: dict[tuple[Any, ...], dict[str, Any]],
    emit: Callable[[dict[str, Any]], None],
    out: Path | None,
    save_examples: bool,
    count: Counter,
) -> None:
    """Clean predictions, then every (eps, step) of one batch; records as they finish."""
    start, stop = b * batch_size, min(n, (b + 1) * batch_size)
    x, y = ds.batch(start, stop)
    # the batch's bookkeeping lives on the CPU; each attack moves its examples to the
    # model's device and hands its results back on the CPU (advx.attacks.base)
    x, y = torch.as_tensor(x).cpu(), torch.as_tensor(y).long().cpu()
    idx = torch.arange(start, stop)

    rec = existing.get(("clean", b))
    if rec is not None:
        pred = torch.tensor(rec["pred"], dtype=torch.int64)
    else:
        t0 = time.perf_counter()
        pred = _predict(target, x)
        emit(
            {
                "type": "clean",
                "batch": b,
                "idx": idx.tolist(),
                "y": y.tolist(),
                "pred": pred.tolist(),
                "seconds": round(time.perf_counter() - t0, 4),
            }
        )
    count.add(1, f"batch {b}: clean accuracy")

    # escalation signs need gradients; without them an adaptive step runs on every survivor
    tracking = any(s.step.escalate for s in steps) and target.access >= Access.GRADIENTS
    for ei, eps in enumerate(eps_list):
        robust = pred == y
        # adaptive suites: the gradient steps' best points decide who escalates; a run
        # resumed inside this (batch, eps) replays the recorded steps to rebuild them
        tracker = escalation.Tracker(target, x, y) if tracking else None
        replay = tracking and any(
            s.step.escalate and ("attack", b, ei, s.index) not in existing for s in steps
        )
        signs: dict[str, Tensor] | None = None
        for s in steps:
            key = ("attack", b, ei, s.index)
            rec = existing.get(key)
            if rec is not None:
                local = torch.tensor(rec["idx"], dtype=torch.int64) - start
                if tracker is not None and replay and not s.step.escalate and local.numel():
                    with contextlib.suppress(AdvxError):
                        res = _attack(target, s, x[local], y[local], eps, norm, seed, b, ei)
                        tracker.update(local, res.x_adv)
                robust[local] = torch.tensor(rec["robust"], dtype=torch.bool)
                count.add(1, f"batch {b}: {s.step.slug} at eps={eps:g} (recorded)")
                continue
            sel = robust.nonzero().flatten()
            t0 = time.perf_counter()
            escalated: dict[str, Any] | None = None
            if s.step.escalate and tracker is not None:
                if signs is None and sel.numel():
                    found = escalation.signs(
                        target, x[sel], y[sel], tracker.best[sel], eps=eps, norm=norm,
                        generator=torch.Generator().manual_seed(derive_seed(seed, b, ei, "esc")),
                    )  # fmt: skip
                    signs = {}
                    for k, v in found.items():
                        signs[k] = torch.zeros_like(robust)
                        signs[k][sel] = v
                choose = torch.zeros(sel.numel(), dtype=torch.bool)
                reasons: dict[str, list[int]] = {}
                for k in s.step.escalate:
                    hit = signs[k][sel] if signs is not None else choose
                    reasons[k] = idx[sel][hit].tolist()
                    choose |= hit
                escalated = {"candidates": int(sel.numel()), "reasons": reasons}
                sel = sel[choose]
            desc = f"batch {b}: {s.step.slug} at eps={eps:g} on {sel.numel()} examples"
            record: dict[str, Any] = {
                "type": "attack",
                "batch": b,
                "eps": eps,
                "eps_index": ei,
                "step": s.index,
                "attack": s.step.slug,
            }
            if escalated is not None:
                record["escalation"] = escalated
            if sel.numel() == 0:
                record.update(
                    idx=[], robust=[], pred=[], distance=[], queries=[],
                    seconds=round(time.perf_counter() - t0, 4),
                )  # fmt: skip
                emit(record)
                count.add(1, desc)
                continue
            try:
                res = _attack(target, s, x[sel], y[sel], eps, norm, seed, b, ei)
            except AdvxError as e:
                # a step that cannot run on this model (e.g. DLR with 2 classes) is
                # reported in the results, not allowed to kill the evaluation
                log.warning("%s failed on batch %d: %s", s.step.slug, b, e)
                record.update(
                    idx=idx[sel].tolist(),
                    robust=[1] * int(sel.numel()),
                    pred=[None] * int(sel.numel()),
                    distance=[None] * int(sel.numel()),
                    queries=[0] * int(sel.numel()),
                    seconds=round(time.perf_counter() - t0, 4),
                    error=f"{type(e).__name__}: {e}",
                )
                emit(record)
                count.add(1, desc)
                continue
            if tracker is not None and not s.step.escalate:
                tracker.update(sel, res.x_adv)
            still = res.pred_adv == y[sel]
            if out is not None and save_examples:
                rundir.save_examples(
                    out, b, ei, s.index, idx[sel], x[sel], res.x_adv, y[sel], res.pred_adv
                )
            record.update(
                idx=idx[sel].tolist(),
                robust=still.int().tolist(),
                pred=res.pred_adv.tolist(),
                distance=floats(res.distance.tolist()),
                queries=res.queries.tolist(),
                seconds=round(time.perf_counter() - t0, 4),
            )
            emit(record)
            count.add(1, desc)
            robust[sel] = still
    emit({"type": "batch_done", "batch": b})


def _attack(
    target: Target, s: ResolvedStep, x: Tensor, y: Tensor, eps: float, norm: str,
    seed: int, b: int, ei: int,
) -> Any:  # fmt: skip
    """Step ``s`` on ``(x, y)`` with its derived seed (the same on a resume or a replay)."""
    from advx.attacks import create

    attack = create(
        s.step.slug, eps=eps, norm=norm, seed=derive_seed(seed, b, ei, s.index), **s.step.settings
    )
    return attack(target, x, y, targets=s.step.targets)
