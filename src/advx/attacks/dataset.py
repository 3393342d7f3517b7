"""Attack a whole data set, batch by batch, in bounded memory: :func:`attack_dataset`.

The one batching path of the library (``advx attack`` calls it too). It streams any
source of examples, moves each batch to the device the target computes on, finds a batch
size that fits (halving on out-of-memory, then keeping it), shows progress (per batch,
and per query for black-box attacks with a budget), keeps results on the CPU, and
concatenates them into one typed :class:`~advx.attacks.result.AttackResult`.

Each example's random choices derive from ``(seed, its index in the stream)`` (see
:mod:`advx.attacks.rng`), so the result is the same whatever the batch size, and a run
resumed from ``out`` gives what an uninterrupted one would have.

With ``out`` every finished batch is saved at once (``out/parts/`` as safetensors + JSON,
``out/batches.jsonl`` as the journal, written with :class:`advx.evaluate.records.RecordWriter`):
Ctrl-C or a crash loses only the batch in flight, and the same call again skips what is
done. ``keep="records"`` drops the adversarial inputs from memory (they stay in ``out``),
so memory stays flat however many examples are attacked.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from advx.attacks.base import Attack, TargetSpec
from advx.attacks.result import AttackResult, SweepResult
from advx.errors import InputError
from advx.targets import QUERY_HOOK, Access, Target

log = logging.getLogger(__name__)

JOURNAL = "batches.jsonl"
AUTO_START = 256  # first batch size tried by batch_size="auto"
Data = Any  # (x, y) tensors, an object with .x and .y, or an iterable of (x, y) batches


@dataclass(frozen=True)
class _Chunk:
    start: int  # global index of the first example
    x: Tensor
    y: Tensor
    targets: TargetSpec


def attack_dataset(
    attack: Attack,
    target: Target,
    data: Data,
    *,
    targets: TargetSpec | int = None,
    batch_size: int | Literal["auto"] = "auto",
    progress: bool = True,
    device: torch.device | str | None = None,
    out: str | Path | None = None,
    keep: Literal["all", "records"] = "all",
    on_batch: Callable[[AttackResult | SweepResult], None] | None = None,
) -> AttackResult | SweepResult:
    """Run ``attack`` on every example of ``data`` against ``target``, batch by batch.

    Args:
        attack: any image/tabular :class:`~advx.attacks.base.Attack`.
        target: the model (:class:`~advx.targets.WhiteBox`, ScoreBox, LabelBox...).
        data: ``(x, y)`` tensors, a data set with ``.x``/``.y`` (e.g.
            :class:`~advx.data.core.ImageDataset`), or any iterable of ``(x, y)`` batches
            (a ``torch.utils.data.DataLoader``, a generator...), read once, in order.
        targets: None (untargeted), ``"random"``/``"least-likely"``/``"next"``, one class
            index for every example, or class indices ``(N,)`` for the whole stream.
        batch_size: examples per attack call, or ``"auto"``: start at 256 (or the
            loader's batch) and halve on out-of-memory until a batch fits, then keep it.
            Batches from an iterable larger than this are split.
        progress: show a progress bar on stderr (examples; and queries for black-box
            attacks with ``max_queries``).
        device: where to run the batches (default: the target's device, else the
            data's). Results always come back on the CPU.
        out: a run directory: each finished batch is saved there and a later call with
            the same ``out`` (same attack settings) resumes after the last saved batch.
        keep: ``"all"`` keeps the adversarial inputs in the returned result;
            ``"records"`` keeps only the per-example records (``x_adv`` is empty), so
            memory does not grow with the number of examples.
        on_batch: called with each batch's result (on the CPU) as it finishes.

    Returns:
        One :class:`AttackResult` over all examples (a :class:`SweepResult` for an eps
        sweep), in stream order; ``seconds`` is the attack time summed over batches.

    Example:
        >>> from advx.attacks import attack_dataset, create            # doctest: +SKIP
        >>> r = attack_dataset(create("pgd", eps=8/255), WhiteBox(model), loader,
        ...                    batch_size="auto", out="runs/pgd")      # doctest: +SKIP
    """
    if not isinstance(attack, Attack):
        raise InputError(
            f"attack must be an advx Attack (advx.attacks.create(...)), got {type(attack).__name__}"
        )
    if keep not in ("all", "records"):
        raise InputError(f"keep must be 'all' or 'records', got {keep!r}")
    size = _check_batch_size(batch_size)
    run_device = torch.device(device) if device is not None else target.device
    journal = _Journal(Path(out), attack, target, targets) if out is not None else None
    total = _length(data)
    parts: list[list[AttackResult]] = []  # per eps, per batch
    bar = _Bar(progress, f"{attack.name} on {target.name}", total, attack, target)
    with bar, journal or nullcontext():
        for chunk in _chunks(data, targets):
            done = journal.saved(chunk.start, len(chunk.y)) if journal else []
            covered = sum(_n(r) for r in done)
            for r in done:
                _collect(parts, r, keep)
                bar.advance(_n(r))
            if covered >= len(chunk.y):
                continue
            rest = _Chunk(
                chunk.start + covered,
                chunk.x[covered:],
                chunk.y[covered:],
                _slice_targets(chunk.targets, covered, None),
            )
            size = _run_chunk(
                attack, target, rest, size, run_device, journal, parts, keep, bar, on_batch
            )
    if not parts:
        raise InputError("data holds no examples")
    merged = [AttackResult.concat(p) for p in parts]
    if isinstance(attack.eps, tuple):
        return SweepResult(tuple(merged))
    return merged[0]


# ----------------------------------------------------------------------------- batches
def _check_batch_size(batch_size: int | str) -> int | None:
    if batch_size == "auto":
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be an int >= 1 or 'auto', got {batch_size!r}")
    return batch_size


def _length(data: Data) -> int | None:
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Tensor):
        return int(data[0].shape[0])
    if hasattr(data, "x") and hasattr(data, "y"):
        return len(data.y)
    ds = getattr(data, "dataset", None)  # a DataLoader over a sized data set
    try:
        return len(ds) if ds is not None else None
    except TypeError:
        return None


def _batches(data: Data) -> Iterator[tuple[Tensor, Tensor]]:
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Tensor):
        yield data[0], torch.as_tensor(data[1])
        return
    if hasattr(data, "x") and hasattr(data, "y"):
        yield data.x, torch.as_tensor(data.y)
        return
    if not isinstance(data, Iterable):
        raise InputError(
            f"data must be (x, y) tensors, a data set with .x/.y, or an iterable of (x, y) "
            f"batches; got {type(data).__name__}"
        )
    for b in data:
        if isinstance(b, (tuple, list)) and len(b) >= 2:
            yield b[0], torch.as_tensor(b[1])
        elif hasattr(b, "x") and hasattr(b, "y"):
            yield b.x, torch.as_tensor(b.y)
        else:
            raise InputError(f"each batch must be (x, y); got {type(b).__name__}")


def _chunks(data: Data, targets: TargetSpec | int) -> Iterator[_Chunk]:
    start = 0
    for x, y in _batches(data):
        if not isinstance(x, Tensor):
            raise InputError(f"x must be a torch.Tensor, got {type(x).__name__}")
        n = int(y.shape[0]) if y.dim() else 0
        if n == 0:
            continue
        yield _Chunk(start, x, y, _slice_targets(targets, start, start + n, y))
        start += n


def _slice_targets(
    spec: TargetSpec | int, lo: int, hi: int | None, y: Tensor | None = None
) -> TargetSpec:
    """The part of a ``targets=`` argument for examples ``[lo, hi)`` of the stream."""
    if spec is None or isinstance(spec, str):
        return spec
    if isinstance(spec, int) and not isinstance(spec, bool):
        if y is None:
            raise InputError("internal: a fixed target class needs the batch labels")
        return torch.full_like(y, spec)
    t = torch.as_tensor(spec)
    return t[lo:hi]


def _run_chunk(
    attack: Attack,
    target: Target,
    chunk: _Chunk,
    size: int | None,
    device: torch.device | None,
    journal: _Journal | None,
    parts: list[list[AttackResult]],
    keep: str,
    bar: _Bar,
    on_batch: Callable[[AttackResult | SweepResult], None] | None,
) -> int | None:
    """Attack one chunk of the stream in batches of ``size`` (halved on OOM). Returns the
    batch size to keep using."""
    n, i = len(chunk.y), 0
    while i < n:
        bs = min(size or min(AUTO_START, n), n - i)
        xb, yb = chunk.x[i : i + bs], chunk.y[i : i + bs]
        tb = _slice_targets(chunk.targets, i, i + bs)
        if device is not None:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device)
            tb = tb.to(device) if isinstance(tb, Tensor) else tb
        try:
            bar.start_batch(bs)
            r = attack(target, xb, yb, targets=tb, index=chunk.start + i)
        except (torch.cuda.OutOfMemoryError, MemoryError) as e:
            if bs == 1:
                raise InputError(
                    "out of memory with a batch of one example; use a smaller model, "
                    "float16 (amp=True) or another device"
                ) from e
            del e
            _free()
            size = bs // 2
            log.info("out of memory at batch size %d; trying %d", bs, size)
            continue
        if size is None:  # "auto": the first size that fits is kept
            size = bs
        r = _to_cpu(r)
        if journal is not None:
            journal.save(chunk.start + i, r)
        if on_batch is not None:
            on_batch(r)
        _collect(parts, r, keep)
        del r
        _trim_heap()
        bar.advance(bs)
        i += bs
    return size


def _n(r: AttackResult | SweepResult) -> int:
    return len(r.results[0]) if isinstance(r, SweepResult) else len(r)


def _to_cpu(r: AttackResult | SweepResult) -> AttackResult | SweepResult:
    if isinstance(r, SweepResult):
        return SweepResult(tuple(x.to("cpu") for x in r.results))
    return r.to("cpu")


def _collect(parts: list[list[AttackResult]], r: AttackResult | SweepResult, keep: str) -> None:
    rs = list(r.results) if isinstance(r, SweepResult) else [r]
    if not parts:
        parts.extend([] for _ in rs)
    for p, x in zip(parts, rs, strict=True):
        p.append(x.without_inputs() if keep == "records" else x)


_LIBC: Any = None


def _trim_heap() -> None:
    """Give freed batch memory back to the OS (glibc's adaptive mmap threshold otherwise
    lets each freed batch fragment the heap: measured, peak RSS over 1024 streamed images
    grew 323 -> 508 MiB with nothing kept alive). A no-op off glibc."""
    global _LIBC
    if _LIBC is None:
        import ctypes
        import ctypes.util

        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC = lib if hasattr(lib, "malloc_trim") else False
        except OSError:
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


def _free() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- resume
def clear_parts(out: str | Path) -> None:
    """Remove the per-batch files of a finished run in ``out`` (after its merged result
    was saved elsewhere); the next call with that ``out`` starts afresh."""
    out = Path(out)
    shutil.rmtree(out / "parts", ignore_errors=True)
    (out / JOURNAL).unlink(missing_ok=True)


class _Journal:
    """Saved batches of one run directory: ``parts/<start>/`` (one AttackResult per eps)
    and ``batches.jsonl`` (a record per finished batch)."""

    def __init__(self, out: Path, attack: Attack, target: Target, targets: Any) -> None:
        from advx.evaluate.records import read_records, repair

        self.out = out
        self.parts = out / "parts"
        self.parts.mkdir(parents=True, exist_ok=True)
        self.header = {
            "type": "run",
            "attack": attack.name,
            "config": _jsonable(attack.config),
            "target": target.name,
            "targets": targets if targets is None or isinstance(targets, (str, int)) else "tensor",
        }
        path = out / JOURNAL
        self.done: dict[int, dict[str, Any]] = {}
        if path.exists():
            repair(path)  # drop a line cut by a crash
            for rec in read_records(path):
                if rec.get("type") == "run" and rec != self.header:
                    raise InputError(
                        f"{out} holds a run with other settings ({rec.get('attack')}, "
                        f"{rec.get('config')}); use another out directory or delete it"
                    )
                if rec.get("type") == "batch":
                    self.done[int(rec["start"])] = rec
        self.path = path
        self.fresh = not path.exists()

    def __enter__(self) -> _Journal:
        from advx.evaluate.records import RecordWriter

        self.writer = RecordWriter(self.path)
        if self.fresh:
            self.writer.write(self.header)
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.close()

    def saved(self, start: int, n: int) -> list[AttackResult | SweepResult]:
        """Saved results covering ``[start, start + k)`` contiguously, ``k <= n``."""
        got: list[AttackResult | SweepResult] = []
        pos = start
        while pos < start + n and pos in self.done:
            rec = self.done[pos]
            if pos + int(rec["n"]) > start + n:
                break  # a saved batch that straddles this chunk: attack it again
            rs = [
                AttackResult.load(self.parts / f"{pos:010d}" / f"eps{e}") for e in range(rec["eps"])
            ]
            got.append(SweepResult(tuple(rs)) if rec.get("sweep") else rs[0])
            pos += int(rec["n"])
        return got

    def save(self, start: int, r: AttackResult | SweepResult) -> None:
        rs = list(r.results) if isinstance(r, SweepResult) else [r]
        d = self.parts / f"{start:010d}"
        if d.exists():
            shutil.rmtree(d)
        for e, x in enumerate(rs):
            x.save(d / f"eps{e}")
        rec = {
            "type": "batch",
            "start": start,
            "n": len(rs[0]),
            "eps": len(rs),
            "sweep": isinstance(r, SweepResult),
            "time": time.time(),
        }
        self.writer.write(rec)
        self.done[start] = rec


def _jsonable(v: Any) -> Any:
    import json

    return json.loads(json.dumps(v, default=str))


# ----------------------------------------------------------------------------- progress
class _Bar:
    """A rich progress bar over examples, plus one over queries for budgeted black-box
    attacks (fed by the query hook the targets call); silent when disabled."""

    def __init__(
        self, enabled: bool, label: str, total: int | None, attack: Attack, target: Target
    ) -> None:
        self.enabled = enabled
        self.label, self.total = label, total
        self.per_example = attack.max_queries if attack.access < Access.GRADIENTS else None
        self.progress: Any = None
        self.token: Any = None

    def __enter__(self) -> _Bar:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            *Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
            transient=True,
        )  # fmt: skip
        self.progress.__enter__()
        self.examples = self.progress.add_task(self.label, total=self.total)
        if self.per_example is not None:
            self.queries = self.progress.add_task("queries (batch)", total=None)
            self.token = QUERY_HOOK.set(self._on_queries)
        return self

    def _on_queries(self, k: int) -> None:
        self.progress.advance(self.queries, k)

    def start_batch(self, n: int) -> None:
        if self.progress is not None and self.per_example is not None:
            self.progress.reset(self.queries, total=n * self.per_example)

    def advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.examples, n)

    def __exit__(self, *exc: object) -> None:
        if self.token is not None:
            QUERY_HOOK.reset(self.token)
        if self.progress is not None:
            self.progress.__exit__(*exc)
