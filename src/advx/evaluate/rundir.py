"""An evaluation's run directory: create it, check it on ``--resume``, read what it holds.

Layout::

    run_dir/
      run.json          what was asked (config, resolved steps, target) and the run's
                        identity (advx.evaluate.identity); written once, at the start
      results.jsonl     the records (advx.evaluate.records), appended as units finish;
                        results.rank<R>.jsonl per rank under torchrun, merged at the end
      summary.json      the headline numbers (advx.evaluate.summary), written at the end
      examples/         adversarial inputs per (batch, eps, step) when save_examples is on

Resuming is reading: :func:`prepare` refuses a run whose settings or identity differ,
and :func:`recorded` returns the finished units, which the runner then skips.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from advx.errors import CheckpointError, ConfigError
from advx.evaluate.identity import identity_differences
from advx.evaluate.records import read_run, record_key, write_json
from advx.evaluate.suites import ResolvedStep
from advx.io import atomic_path

log = logging.getLogger(__name__)

RUN_JSON = "run.json"
SUMMARY_JSON = "summary.json"

#: the record types that mark finished work (see :mod:`advx.evaluate.records`)
_UNITS = ("clean", "attack", "batch_done")


def load_run(run_dir: Path) -> dict[str, Any]:
    """Read ``run.json`` of an evaluation run; :class:`CheckpointError` if missing/bad."""
    path = Path(run_dir) / RUN_JSON
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"{run_dir} is not an evaluation run (no {RUN_JSON}); run `advx eval` first"
        ) from None
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from e
    if not isinstance(meta, dict) or meta.get("kind") != "eval":
        raise CheckpointError(f"{path} does not describe an evaluation run")
    return meta


def prepare(
    out: Path,
    run: dict[str, Any],
    steps: list[ResolvedStep],
    *,
    resume: bool,
    rank: int,
    world: int,
) -> tuple[dict[str, Any], list[ResolvedStep]]:
    """Create or check ``run.json``; on resume, reuse the stored step resolution.

    Returns the stored run description and the steps as resolved when the run began (a
    step that ran then must still be available now). Raises :class:`ConfigError` when
    ``out`` holds a run and ``resume`` is off, or when the stored settings or identity
    differ from ``run``'s, naming what differs. Under ``torchrun`` rank 0 writes and
    every rank checks.
    """
    path = out / RUN_JSON
    error = ""
    if rank == 0:
        if path.exists() and not resume:
            error = (
                f"{out} already holds a run; pass --resume to continue it, or choose another --out"
            )
        elif not path.exists():
            if resume:
                log.info("nothing to resume in %s; starting a new run", out)
            out.mkdir(parents=True, exist_ok=True)
            write_json(path, run)
    if world > 1:
        box = [error]
        torch.distributed.broadcast_object_list(box, src=0)
        error = str(box[0])
    if error:
        raise ConfigError(error)
    if not path.exists():
        raise ConfigError(f"{out} has no {RUN_JSON}; the run could not be created")
    stored = load_run(out)
    if stored["config"] != run["config"]:
        diff = sorted(k for k in run["config"] if stored["config"].get(k) != run["config"].get(k))
        raise ConfigError(
            f"cannot resume {out}: settings differ from the stored run ({', '.join(diff)}); "
            "resume with the same options, or choose another --out"
        )
    changed = identity_differences(stored.get("identity"), run["identity"])
    if changed:
        raise ConfigError(
            f"cannot resume {out}: it was computed from something else; differs: "
            f"{'; '.join(changed)}. Resume with the same model, data and advx, or choose "
            "another --out"
        )
    by_index = {s.index: s for s in steps}
    resolved: list[ResolvedStep] = []
    for d in stored["steps"]:
        now = by_index[int(d["index"])]
        if d["available"] and not now.available:
            raise ConfigError(
                f"cannot resume {out}: attack {d['slug']!r} ran before but is unavailable now "
                f"({now.reason})"
            )
        resolved.append(
            ResolvedStep(now.index, now.step, bool(d["available"]), d["reason"], d.get("access"))
        )
    return stored, resolved


def recorded(out: Path) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The finished units of work in ``out`` (clean passes, attack steps, finished
    batches), keyed by :func:`~advx.evaluate.records.record_key`."""
    return {record_key(rec): rec for rec in read_run(out) if rec["type"] in _UNITS}


def example_file(out: Path, batch: int, eps_index: int, step: int) -> Path:
    """Side file of one step's adversarial inputs on one batch."""
    return out / "examples" / f"b{batch:06d}-e{eps_index}-s{step}.safetensors"


def save_examples(
    out: Path,
    b: int,
    ei: int,
    si: int,
    idx: Tensor,
    x: Tensor,
    x_adv: Tensor,
    y: Tensor,
    pred_adv: Tensor,
) -> None:
    """Write step ``si``'s adversarial inputs on batch ``b`` at eps index ``ei`` to
    :func:`example_file` (safetensors: ``idx``, ``x``, ``x_adv``, ``y``, ``pred_adv``)."""
    from safetensors.torch import save_file

    path = example_file(out, b, ei, si)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, fsync=False) as tmp:
        save_file(
            {
                "idx": idx.contiguous(),
                "x": x.float().contiguous(),
                "x_adv": x_adv.float().contiguous(),
                "y": y.contiguous(),
                "pred_adv": pred_adv.long().contiguous(),
            },
            str(tmp),
        )
