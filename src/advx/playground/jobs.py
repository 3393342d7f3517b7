"""Long runs of the playground: one worker, progress, cancellation, time bounds.

Every request that does real work (an attack, a sweep) becomes a :class:`Job` that a
single worker thread runs in submission order: the machine's cores go to one attack at a
time, and each client may have one job queued or running (a second one is refused with a
message, never silently queued). A job sees a :class:`Monitor`: the task reports progress
on it, and while the job runs the monitor is attached to the models it uses as a forward
pre-hook, so every model evaluation checks the cancel flag and the deadline. That is how
a PGD or a Square attack deep inside the library stops within one model call of the user
pressing *Cancel*, without the attacks knowing about the page.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from advx.errors import AdvxError

log = logging.getLogger(__name__)

DEFAULT_TIME_LIMIT_S = 120.0
KEEP_FINISHED = 64  # finished jobs kept for their results (downloads); oldest dropped


class Cancelled(AdvxError):  # noqa: N818  (a signal, as advx.training.StopTraining)
    """Raised inside a job's model calls once it is cancelled or over its time limit."""


class Busy(AdvxError):  # noqa: N818
    """The client already has a job queued or running."""


@dataclass
class Monitor:
    """What a running task sees: progress reporting and the stop check.

    Attributes:
        deadline: ``time.monotonic()`` after which the job stops (time bound).
        calls: forward calls made through hooked models so far.
    """

    deadline: float
    cancel_event: threading.Event = field(default_factory=threading.Event)
    progress: float = 0.0
    message: str = "queued"
    calls: int = 0
    expected: int = 0  # model calls the task expects to make (0: unknown)

    limit_s: float = float("inf")  # the job's time bound, counted from restart_clock()

    def restart_clock(self) -> None:
        """Start the time bound now: loading or training a model on first use does not
        count against the attack's time."""
        self.deadline = time.monotonic() + self.limit_s

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job was cancelled or ran out of time."""
        if self.cancel_event.is_set():
            raise Cancelled("cancelled")
        if time.monotonic() > self.deadline:
            raise Cancelled("stopped at the time limit; try fewer steps or queries")

    def loading(self, message: str) -> None:
        """Say what is being loaded or trained on first use; that time does not count
        against the time bound (the clock restarts), but cancelling still works."""
        self.message = message
        if self.cancel_event.is_set():
            raise Cancelled("cancelled")
        self.restart_clock()

    def report(self, fraction: float, message: str | None = None) -> None:
        """Set progress (0..1) and the line shown under the progress bar."""
        self.progress = min(max(float(fraction), 0.0), 1.0)
        if message is not None:
            self.message = message
        self.check()

    @contextmanager
    def watching(self, modules: Sequence[nn.Module]) -> Iterator[Monitor]:
        """Check the stop flag (and count rows) on every forward call of ``modules``."""

        def hook(_m: nn.Module, inputs: tuple[Any, ...]) -> None:
            self.calls += 1
            if self.expected:
                self.progress = max(self.progress, min(0.99, self.calls / self.expected))
            self.check()

        handles = [m.register_forward_pre_hook(hook) for m in _unique(modules)]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()


def _unique(modules: Sequence[nn.Module]) -> list[nn.Module]:
    seen: dict[int, nn.Module] = {}
    for m in modules:
        seen.setdefault(id(m), m)
    return list(seen.values())


@dataclass
class Job:
    """One unit of work and what became of it (``state``: queued, running, done,
    error, cancelled)."""

    id: str
    client: str
    kind: str
    fn: Callable[[Monitor], dict[str, Any]]
    monitor: Monitor
    state: str = "queued"
    result: dict[str, Any] | None = None
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    blobs: dict[str, bytes] = field(default_factory=dict)  # downloads (PNG)
    figure: dict[str, Any] | None = None  # what the report's figure of the result needs

    def view(self) -> dict[str, Any]:
        """The JSON the page polls."""
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "progress": self.monitor.progress,
            "message": self.monitor.message,
        }
        if self.started is not None:
            end = self.finished if self.finished is not None else time.monotonic()
            out["seconds"] = end - self.started
        if self.result is not None:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        return out


def _spent(_monitor: Monitor) -> dict[str, Any]:
    raise RuntimeError("this job has already run")


class JobRunner:
    """Runs jobs one at a time on a worker thread; one pending job per client.

    Args:
        time_limit_s: wall-clock bound of each job (it stops with a message after it).
    """

    def __init__(self, *, time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> None:
        self.time_limit_s = time_limit_s
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="advx-playground", daemon=True)
        self._worker.start()

    def submit(self, client: str, kind: str, fn: Callable[[Monitor], dict[str, Any]]) -> Job:
        """Queue ``fn(monitor) -> result`` for ``client``; :class:`Busy` if it has one."""
        with self._lock:
            for j in self._jobs.values():
                if j.client == client and j.state in ("queued", "running"):
                    raise Busy(
                        f"a {j.kind} run is still going; wait for it or cancel it first "
                        "(one run at a time per page)"
                    )
            job = Job(
                id=secrets.token_hex(8),
                client=client,
                kind=kind,
                fn=fn,
                monitor=Monitor(deadline=float("inf")),
            )
            self._jobs[job.id] = job
            self._prune()
        self._queue.put(job)
        return job

    def get(self, job_id: str, client: str) -> Job | None:
        """The job ``job_id`` if it belongs to ``client``."""
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.client == client else None

    def cancel(self, job_id: str, client: str) -> Job | None:
        """Ask the job to stop (it stops at its next model call)."""
        job = self.get(job_id, client)
        if job is not None:
            job.monitor.cancel_event.set()
        return job

    def close(self) -> None:
        """Cancel everything and stop the worker."""
        with self._lock:
            for j in self._jobs.values():
                j.monitor.cancel_event.set()
        self._queue.put(None)

    def _prune(self) -> None:
        done = [k for k, j in self._jobs.items() if j.state not in ("queued", "running")]
        for k in done[: max(0, len(done) - KEEP_FINISHED)]:
            del self._jobs[k]

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.monitor.cancel_event.is_set():
                job.state, job.error = "cancelled", "cancelled"
                continue
            job.state, job.started = "running", time.monotonic()
            job.monitor.limit_s = self.time_limit_s
            job.monitor.restart_clock()
            job.monitor.message = "starting"
            try:
                job.result = job.fn(job.monitor)
                job.blobs = job.result.pop("_blobs", {}) if job.result else {}
                job.figure = job.result.pop("_figure", None) if job.result else None
                job.state = "done"
                job.monitor.progress = 1.0
                job.monitor.message = "done"
            except Cancelled as e:
                job.state, job.error = "cancelled", str(e)
            except AdvxError as e:
                job.state, job.error = "error", str(e)
            except Exception as e:  # a bug, not bad input: log it, keep serving
                log.exception("playground job %s failed", job.kind)
                job.state, job.error = "error", f"internal error: {type(e).__name__}: {e}"
            finally:
                job.finished = time.monotonic()
                job.fn = _spent  # drop the closure (and the tensors it holds)
