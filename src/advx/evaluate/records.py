"""The results file of an evaluation run: JSON Lines, one record per finished unit of work.

Each line is one JSON object with a ``type``:

* ``clean`` — a batch's clean predictions: ``batch``, ``idx`` (dataset indices), ``y``,
  ``pred``.
* ``attack`` — one suite step on one batch at one eps: ``batch``, ``eps``, ``eps_index``,
  ``step`` (suite index), ``attack`` (slug), ``idx`` (the examples it attacked: those still
  robust), ``robust`` (0/1 after the step), ``pred``, ``distance``, ``queries``,
  ``seconds``.
* ``batch_done`` — every step of ``batch`` is recorded.
* ``probe`` — the red-flag checks that query the model (see :mod:`advx.evaluate.flags`).

Lines are appended and flushed to disk as units finish, so a killed process loses at most
the unit it was working on; a truncated last line (killed mid-write) is ignored and cut
off before appending resumes. Records are keyed (:func:`record_key`): reading several
files (one per distributed rank) and keeping the first record per key gives the merged
run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from advx.io import atomic_write_text
from advx.jsonio import dumps

RESULTS = "results.jsonl"


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 63-bit seed derived from ``seed`` and ``keys`` (e.g. batch, eps and step index).

    Stable across processes and Python versions (SHA-256, not ``hash()``), so a batch gets
    the same seed whether it runs first, after a resume, or on another rank.

    Example:
        >>> derive_seed(0, 3, 1) == derive_seed(0, 3, 1) != derive_seed(0, 1, 3)
        True
    """
    text = ":".join([str(int(seed)), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def record_key(rec: dict[str, Any]) -> tuple[Any, ...]:
    """Identity of a record: two records with the same key describe the same work."""
    t = rec.get("type")
    if t == "attack":
        return (t, rec["batch"], rec["eps_index"], rec["step"])
    if t in ("clean", "batch_done"):
        return (t, rec["batch"])
    return (t,)


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the complete records of a JSON Lines file (streaming; constant memory).

    A last line without its newline, or any line that is not valid JSON, is skipped: it is
    the trace of a process killed mid-write.
    """
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "type" in rec:
                yield rec


def repair(path: Path) -> None:
    """Cut a truncated last line off ``path`` so appending continues on a clean line."""
    if not path.exists():
        return
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return
        # find the last newline (read backwards in chunks)
        pos = size
        chunk = 1 << 16
        keep = 0
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            data = f.read(pos - start)
            nl = data.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        f.truncate(keep)


class RecordWriter:
    """Append records to a JSON Lines file, one line per record, flushed and fsynced.

    Args:
        path: the file (created if missing; a truncated last line is cut off first).
        fsync: also force the data to disk after each record (default True), so a crash
            of the machine, not only of the process, loses nothing that was reported done.
    """

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair(self.path)
        self._f: TextIO = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._fsync = fsync

    def write(self, rec: dict[str, Any]) -> None:
        """Append one record (a JSON object with a ``type``)."""
        self._f.write(dumps(rec, separators=(",", ":")) + "\n")
        self._f.flush()
        if self._fsync:
            os.fsync(self._f.fileno())

    def close(self) -> None:
        """Close the file."""
        self._f.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def result_files(run_dir: Path) -> list[Path]:
    """The merged results file and any per-rank files of a run, merged file first."""
    run_dir = Path(run_dir)
    files = [run_dir / RESULTS] if (run_dir / RESULTS).exists() else []
    files += sorted(run_dir.glob("results.rank*.jsonl"))
    return files


def read_run(run_dir: Path) -> Iterator[dict[str, Any]]:
    """All distinct complete records of a run (merged file and rank files), first wins."""
    seen: set[tuple[Any, ...]] = set()
    for path in result_files(run_dir):
        for rec in read_records(path):
            k = record_key(rec)
            if k in seen:
                continue
            seen.add(k)
            yield rec


def merge(run_dir: Path, *, remove_parts: bool = True) -> Path:
    """Merge per-rank files into ``results.jsonl``, ordered by batch, deduplicated.

    Only records of finished batches (with a ``batch_done``) and run-level records are
    kept, so the merged file is what an uninterrupted single process would have written
    (up to line order within a batch). Written atomically; rank files are then removed.
    """
    run_dir = Path(run_dir)
    done = {r["batch"] for r in read_run(run_dir) if r["type"] == "batch_done"}
    recs = [r for r in read_run(run_dir) if "batch" not in r or r["batch"] in done]
    order = {"clean": 0, "attack": 1, "batch_done": 2}
    recs.sort(
        key=lambda r: (
            0 if "batch" in r else 1,
            r.get("batch", 0),
            order.get(r["type"], 3),
            r.get("eps_index", 0),
            r.get("step", 0),
        )
    )
    atomic_write_text(
        run_dir / RESULTS,
        "".join(dumps(r, separators=(",", ":")) + "\n" for r in recs),
    )
    if remove_parts:
        for p in run_dir.glob("results.rank*.jsonl"):
            p.unlink()
    return run_dir / RESULTS


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (temp file + rename)."""
    atomic_write_text(path, dumps(obj, indent=2, default=str) + "\n")


def floats(values: Iterable[float], digits: int = 6) -> list[float | None]:
    """Round for compact JSON; NaN/inf become None (JSON has neither)."""
    out: list[float | None] = []
    for v in values:
        v = float(v)
        out.append(None if v != v or v in (float("inf"), float("-inf")) else round(v, digits))
    return out
