"""The HTTP model server behind ``advx serve``: the Open Inference Protocol (KServe V2 REST).

Endpoints (``{name}`` is the model's name):

=====================================  ==================================================
``GET  /v2``                           server metadata (name, version, extensions)
``GET  /v2/health/live``               200 while the process runs
``GET  /v2/health/ready``              200 once the model is loaded
``GET  /v2/models/{name}``             model metadata: inputs (name, datatype, shape),
                                       outputs, and ``parameters`` with ``num_classes``,
                                       ``class_names``, ``bounds``, ``input_shape``,
                                       ``labels_only``, ``max_queries``, ``binary_data``
``GET  /v2/models/{name}/ready``       200 when the model is ready
``POST /v2/models/{name}/infer``       inference (JSON or binary tensor extension)
``POST /v2/repository/index``          the one model, as the repository extension lists it
=====================================  ==================================================

Outputs are ``predict_proba`` (FP32 ``(N, C)`` probabilities) and ``predict`` (INT64
``(N,)`` labels), the names MLServer's scikit-learn runtime uses. With
``labels_only=True`` only ``predict`` exists (a decision-only API).

A text model (a :class:`~advx.text.target.TextTarget`, or a zoo classifier of a text
architecture) takes one ``BYTES`` input of shape ``[N]``: N texts, as JSON strings or
length-prefixed UTF-8 in the binary extension (:mod:`advx.serve.protocol`). One text is
one row for ``max_rows`` and the query budgets; ``predict`` is the argmax of the scores.

Guards, each answered with ``{"error": "..."}`` and never a crash:

* API keys: when ``api_key`` is set, every request must carry ``Authorization: Bearer
  <key>`` or ``x-api-key: <key>``, else **401**.
* Body size: bodies over ``max_body_bytes`` get **413** (checked on ``Content-Length``
  before reading, and while reading otherwise); so do requests of more than ``max_rows``
  rows (the limit is published in the metadata as ``parameters.max_rows``).
* Fairness: a batch is evaluated in chunks of ``chunk_rows`` rows under a first-come,
  first-served lock released between chunks, so a small request waits for at most one
  chunk of each large request ahead of it, never for the whole large request. A request
  that is alone and expected to take at most ``inline_seconds`` (0.1 s by default; from
  the model's measured time per row) is evaluated on the event loop rather than in a
  worker thread, which saves two thread switches per request (most of the protocol's
  cost on a busy machine); a request arriving meanwhile waits at most that long.
* Time: a request whose evaluation (waiting included) passes ``request_timeout`` seconds
  gets **503** and is not charged; a body that takes over ``body_timeout`` seconds to
  arrive gets **408**. :func:`serve` also closes connections that are idle for
  ``idle_timeout`` seconds or that have not sent a complete request head within
  ``header_timeout`` seconds (slow-loris clients).
* Concurrency: each key may have ``max_concurrent`` requests in flight; more get **429**.
* Bodies sent with ``Content-Encoding: gzip`` are decompressed (the decompressed size
  counts against ``max_body_bytes``); other encodings get **415**.
* Query budgets: with ``max_queries``, each key (or everyone together when there are no
  keys) may have that many rows evaluated; a request that would go over gets **429**
  and evaluates nothing.
* Validation: bad JSON, unknown inputs/outputs, wrong shape or datatype, NaN/inf,
  values outside the model's bounds, empty batches, JSON booleans for FP32 data get
  **400** saying what is wrong; asking for scores from a labels-only server gets **403**;
  unknown models or model versions **404**.
* Health: ``/v2/health/live`` and ``/v2/health/ready`` need the key like everything
  else unless ``public_health=True`` (``advx serve --public-health``), for probes that
  carry no key (Kubernetes).

Every answer to an inference request carries ``parameters.queries_used`` (the rows this
request was charged) and, with a budget, ``parameters.queries_remaining`` (what the key
had left right after this request was charged; exact under concurrency).

Use :func:`create_app` in-process (tests, notebooks) or ``advx serve MODEL_DIR``.
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations
# at runtime, and `Request` is imported inside create_app (FastAPI loads lazily).
import asyncio
import contextlib
import hmac
import json
import logging
import re
import threading
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

import advx
from advx.errors import InputError
from advx.serve import protocol
from advx.targets import Access, Target

if TYPE_CHECKING:
    from advx.text.target import TextTarget

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
#: Most rows one inference request may carry (413 above it).
DEFAULT_MAX_ROWS = 1024
#: Rows evaluated per turn of the evaluation lock (other requests may run in between).
DEFAULT_CHUNK_ROWS = 64
#: Seconds a request may take to be evaluated, waiting for its turn included (503 after).
DEFAULT_REQUEST_TIMEOUT = 60.0
#: Seconds a request body may take to arrive once its head is in (408 after).
DEFAULT_BODY_TIMEOUT = 30.0
#: Seconds a kept-alive connection may stay idle before it is closed.
DEFAULT_IDLE_TIMEOUT = 5.0
#: Seconds a client has to send a complete request head (request line and headers).
DEFAULT_HEADER_TIMEOUT = 10.0
#: Requests each key may have in flight at once (429 above it).
DEFAULT_MAX_CONCURRENT = 8
#: Seconds of model time up to which a lone request is evaluated on the event loop itself
#: rather than in a worker thread (two thread switches fewer; see ModelService).
DEFAULT_INLINE_SECONDS = 0.1
_FLOAT_TYPES = ("FP32", "FP64")
_HEALTH_PATHS = ("/v2/health/live", "/v2/health/ready")


class _Reject(Exception):
    """An error answer: HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class _FairLock:
    """A first-come, first-served lock: waiters get it in the order they asked.

    ``threading.Lock`` promises no order, so a thread that releases and asks again at
    once (a large request going on to its next chunk) may starve the others.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self._held = False

    def acquire(self, deadline: float | None = None) -> bool:
        """Wait for the lock until ``deadline`` (``time.monotonic()``); False on timeout."""
        me = object()
        with self._cond:
            self._queue.append(me)
            while self._held or self._queue[0] is not me:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    self._queue.remove(me)
                    self._cond.notify_all()  # the next in line may be free to go now
                    return False
                self._cond.wait(left)
            self._queue.popleft()
            self._held = True
            return True

    def try_acquire(self) -> bool:
        """Take the lock at once if it is free and nobody waits for it; never blocks."""
        with self._cond:
            if self._held or self._queue:
                return False
            self._held = True
            return True

    def release(self) -> None:
        """Hand the lock to the next in line."""
        with self._cond:
            self._held = False
            self._cond.notify_all()


#: A decoded batch: a float32 array ``(N, *input_shape)``, or N texts for a text model.
Batch = np.ndarray | list[str]


class ModelService:
    """What the server does, without HTTP: validation, budgets and evaluation.

    Args:
        target: the model as an advx target (scores needed unless ``labels_only``); a
            :class:`~advx.text.target.TextTarget` is served as a text model (``BYTES``
            input, one text per row).
        name: the model's name in URLs.
        max_queries: rows each key may have evaluated (None: unlimited).
        labels_only: serve labels only.
        version: model version string reported in metadata and answers.
        dataset: name of the model's dataset, published in the metadata so clients
            (``advx attack URL``) can load matching evaluation data.
        max_rows: most rows per request (413 above it).
        chunk_rows: rows evaluated per turn of the evaluation lock.
        request_timeout: seconds a request may take, waiting for its turn included.
        inline_seconds: a request that is alone (no other inference request in the server,
            the model idle) and whose evaluation is expected to take at most this long
            (from the model's measured time per row) is evaluated on the caller's thread
            (the server's event loop) instead of a worker thread: two thread switches
            fewer, which is most of the protocol's cost under CPU contention. A request
            arriving meanwhile waits at most this long, as it would for a chunk; 0 turns
            it off.

    The app holds the target in :meth:`~advx.targets.Target.attacking` mode (eval mode,
    frozen parameters) while it runs (:meth:`hold`); outside it, each chunk enters and
    leaves that mode.
    """

    def __init__(
        self,
        target: Target,
        *,
        name: str,
        max_queries: int | None = None,
        labels_only: bool = False,
        version: str = "1",
        dataset: str | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        inline_seconds: float = DEFAULT_INLINE_SECONDS,
    ) -> None:
        _check_int("max_queries", max_queries, allow_none=True)
        _check_int("max_rows", max_rows)
        _check_int("chunk_rows", chunk_rows)
        _check_seconds("request_timeout", request_timeout)
        _check_seconds("inline_seconds", inline_seconds, allow_zero=True)
        if not labels_only and target.access < Access.SCORES:
            log.info("%s gives labels only; serving labels only", target.name)
            labels_only = True
        self.target = target
        #: Whether the model takes texts (a TextTarget) rather than tensors.
        self.text = _is_text_target(target)
        self.name = name
        self.max_queries = max_queries
        self.labels_only = labels_only
        self.version = version
        self.dataset = dataset
        self.max_rows = int(max_rows)
        self.chunk_rows = int(chunk_rows)
        self.request_timeout = float(request_timeout)
        self.inline_seconds = float(inline_seconds)
        self.used: dict[str, int] = {}
        self._lock = _FairLock()  # targets count queries; evaluate one chunk at a time
        self._held = False  # the target is in attacking() mode for the app's lifetime
        self._seconds_per_row: float | None = None  # measured; None until a first chunk
        #: Inference requests being handled (the app counts them; inline needs 1).
        self.active = 0
        #: Requests evaluated inline and in worker threads (for benchmarks and tests).
        self.inline_count = 0
        self.thread_count = 0

    # -- metadata ---------------------------------------------------------------------
    @property
    def output_names(self) -> tuple[str, ...]:
        """Outputs this server gives."""
        if self.labels_only:
            return (protocol.LABELS_OUTPUT,)
        return (protocol.SCORES_OUTPUT, protocol.LABELS_OUTPUT)

    def metadata(self) -> dict[str, Any]:
        """The model metadata document (``GET /v2/models/{name}``)."""
        t = self.target
        outputs = [{"name": protocol.LABELS_OUTPUT, "datatype": "INT64", "shape": [-1]}]
        if not self.labels_only:
            outputs.insert(
                0,
                {"name": protocol.SCORES_OUTPUT, "datatype": "FP32", "shape": [-1, t.num_classes]},
            )
        if self.text:
            max_len = getattr(t, "max_len", None)
            return {
                "name": self.name,
                "versions": [self.version],
                "platform": f"advx-{type(t).__name__}",
                "inputs": [{"name": protocol.INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
                "outputs": outputs,
                "parameters": {
                    "num_classes": t.num_classes,
                    "class_names": list(t.class_names),
                    "labels_only": self.labels_only,
                    "max_queries": self.max_queries,
                    "max_rows": self.max_rows,
                    "binary_data": True,
                    **({"max_len": max_len} if isinstance(max_len, int) and max_len > 0 else {}),
                    **({"dataset": self.dataset} if self.dataset else {}),
                },
            }
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": f"advx-{type(t).__name__}",
            "inputs": [
                {"name": protocol.INPUT_NAME, "datatype": "FP32", "shape": [-1, *t.input_shape]}
            ],
            "outputs": outputs,
            "parameters": {
                "input_shape": list(t.input_shape),
                "num_classes": t.num_classes,
                "class_names": list(t.class_names),
                "bounds": list(t.bounds),
                "labels_only": self.labels_only,
                "max_queries": self.max_queries,
                "max_rows": self.max_rows,
                "binary_data": True,
                **({"dataset": self.dataset} if self.dataset else {}),
            },
        }

    # -- budgets ----------------------------------------------------------------------
    def remaining(self, key: str) -> int | None:
        """Rows ``key`` may still have evaluated (None: unlimited)."""
        if self.max_queries is None:
            return None
        return self.max_queries - self.used.get(key, 0)

    def reserve(self, key: str, rows: int) -> int | None:
        """Charge ``rows`` to ``key`` (429 if over budget); returns what is left after.

        Check and charge happen without an ``await`` in between, so concurrent requests
        cannot both spend the same rows."""
        self.check_budget(key, rows)
        self.used[key] = self.used.get(key, 0) + rows
        return self.remaining(key)

    def refund(self, key: str, rows: int) -> None:
        """Give back rows charged to a request that was not answered."""
        self.used[key] = self.used.get(key, 0) - rows

    def check_budget(self, key: str, rows: int = 1) -> None:
        """Raise 429 unless ``key`` may have ``rows`` more rows evaluated."""
        left = self.remaining(key)
        if left is not None and rows > left:
            spent = "is spent" if left <= 0 else f"has {left} rows left"
            raise _Reject(
                429,
                f"query budget of {self.max_queries} rows {spent}; this request has {rows} rows",
            )

    # -- model mode -------------------------------------------------------------------
    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the target in ``attacking()`` mode (eval mode, frozen parameters) for the
        duration, instead of entering it for every chunk; the app does this while it runs.
        """
        self._lock.acquire()
        try:
            ctx = self.target.attacking()
            ctx.__enter__()
            self._held = True
        finally:
            self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()
            try:
                self._held = False
                ctx.__exit__(None, None, None)
            finally:
                self._lock.release()

    # -- inference --------------------------------------------------------------------
    def parse(self, body: bytes, header_length: int | None) -> tuple[Batch, dict[str, bool]]:
        """Decode and validate a request: the batch ``(N, *input_shape)`` float32 (a text
        model: the list of N texts) and the outputs to send (name -> binary). Raises
        ``_Reject`` (400/403/413)."""
        try:
            req = protocol.decode_request(body, header_length)
        except protocol.ProtocolError as e:
            raise _Reject(400, str(e)) from None
        if len(req.inputs) != 1:
            raise _Reject(
                400, f"this model has one input {protocol.INPUT_NAME!r}; got {len(req.inputs)}"
            )
        t = req.inputs[0]
        if t.name != protocol.INPUT_NAME:
            raise _Reject(
                400, f"unknown input {t.name!r}; this model's input is {protocol.INPUT_NAME!r}"
            )
        outputs = req.outputs or {o: False for o in self.output_names}
        for o in outputs:
            if o == protocol.SCORES_OUTPUT and self.labels_only:
                raise _Reject(
                    403, f"this server gives labels only; ask for {protocol.LABELS_OUTPUT!r}"
                )
            if o not in self.output_names:
                raise _Reject(400, f"unknown output {o!r}; outputs: {', '.join(self.output_names)}")
        dt = protocol.datatype_of(t.array)
        if self.text:
            return self._texts(t.array, dt), outputs
        if dt not in _FLOAT_TYPES:
            raise _Reject(400, f"input datatype must be FP32 (or FP64), got {dt}")
        shape = tuple(self.target.input_shape)
        a = t.array
        if a.ndim != len(shape) + 1 or tuple(a.shape[1:]) != shape:
            raise _Reject(
                400,
                f"input shape must be [N, {', '.join(map(str, shape))}], got {list(a.shape)}",
            )
        if a.shape[0] == 0:
            raise _Reject(400, "empty batch: the input has 0 rows")
        if a.shape[0] > self.max_rows:
            raise _Reject(
                413,
                f"request has {a.shape[0]} rows, over the limit of {self.max_rows} rows per "
                "request; send smaller batches",
            )
        if not bool(np.isfinite(a).all()):
            raise _Reject(400, "input has NaN or inf values")
        lo, hi = self.target.bounds
        tol = 1e-6 * max(1.0, hi - lo)
        amin, amax = float(a.min()), float(a.max())
        if amin < lo - tol or amax > hi + tol:
            raise _Reject(
                400,
                f"input values in [{amin:.4g}, {amax:.4g}] are outside the bounds [{lo:g}, {hi:g}]",
            )
        return np.array(a, dtype=np.float32, order="C"), outputs  # a writable copy

    def _texts(self, a: np.ndarray, dt: str) -> list[str]:
        """The texts of a text model's input tensor (BYTES, shape ``[N]``)."""
        if dt != protocol.BYTES:
            raise _Reject(
                400,
                f"this is a text model: send the texts as a BYTES tensor of shape [N] "
                f"(JSON: a list of strings), got {dt}",
            )
        if a.ndim != 1:
            raise _Reject(400, f"input shape must be [N] (one text per row), got {list(a.shape)}")
        if a.shape[0] == 0:
            raise _Reject(400, "empty batch: the input has 0 texts")
        if a.shape[0] > self.max_rows:
            raise _Reject(
                413,
                f"request has {a.shape[0]} texts, over the limit of {self.max_rows} rows (texts) "
                "per request; send smaller batches",
            )
        return [str(v) for v in a.tolist()]

    def evaluate(
        self,
        x: Batch,
        outputs: Sequence[str],
        *,
        deadline: float | None = None,
        stop: threading.Event | None = None,
    ) -> list[protocol.WireTensor]:
        """Run the model on ``x`` for the requested outputs (thread-safe).

        The rows go through the model ``chunk_rows`` at a time, each chunk under the
        first-come, first-served lock, so concurrent requests take turns. Raises
        ``_Reject(503)`` once ``deadline`` (``time.monotonic()``; default
        ``request_timeout`` from now) passes; stops between chunks once ``stop`` is set
        (the client went away)."""
        if deadline is None:
            deadline = time.monotonic() + self.request_timeout
        self.thread_count += 1
        batch = _rows_of(x)
        parts: dict[str, list[np.ndarray]] = {o: [] for o in outputs}
        for start in range(0, len(batch), self.chunk_rows):
            if stop is not None and stop.is_set():
                raise _Reject(499, "the client closed the request")
            if not self._lock.acquire(deadline):
                raise _Reject(
                    503,
                    f"the request was not evaluated within {self.request_timeout:g} s (the "
                    "server is busy); nothing was charged, retry later or send fewer rows",
                )
            try:
                self._run_chunk(batch[start : start + self.chunk_rows], outputs, parts)
            finally:
                self._lock.release()
        return [protocol.WireTensor(o, np.concatenate(parts[o])) for o in outputs]

    def evaluate_inline(self, x: Batch, outputs: Sequence[str]) -> list[protocol.WireTensor] | None:
        """Evaluate ``x`` on the calling thread, at once and without waiting, if this
        request is alone and expected to take at most ``inline_seconds``; None
        otherwise (then use :meth:`evaluate` in a worker thread).

        "Alone": at most one inference request is being handled (:attr:`active`) and
        nobody holds or waits for the evaluation lock. The lock is held for all chunks:
        only a worker thread still finishing an abandoned request could want it."""
        if (
            self.inline_seconds <= 0
            or self.active > 1
            or self._seconds_per_row is None
            or len(x) * self._seconds_per_row > self.inline_seconds
            or not self._lock.try_acquire()
        ):
            return None
        try:
            self.inline_count += 1
            batch = _rows_of(x)
            parts: dict[str, list[np.ndarray]] = {o: [] for o in outputs}
            for start in range(0, len(batch), self.chunk_rows):
                self._run_chunk(batch[start : start + self.chunk_rows], outputs, parts)
        finally:
            self._lock.release()
        return [protocol.WireTensor(o, np.concatenate(parts[o])) for o in outputs]

    def _run_chunk(
        self,
        chunk: torch.Tensor | list[str],
        outputs: Sequence[str],
        parts: dict[str, list[np.ndarray]],
    ) -> None:
        """Evaluate one chunk (the caller holds the lock); append each output to ``parts``
        and update the measured time per row. Texts are scored once per chunk, and
        ``predict`` is the argmax of those scores (labels only without scores access)."""
        t0 = time.perf_counter()
        with contextlib.nullcontext() if self._held else self.target.attacking():
            if isinstance(chunk, list):
                self._run_texts(chunk, outputs, parts)
            else:
                for o in outputs:
                    if o == protocol.SCORES_OUTPUT:
                        y = self.target.scores(chunk).detach().cpu().to(torch.float32)
                    else:
                        y = self.target.labels(chunk).detach().cpu().to(torch.int64)
                    parts[o].append(y.numpy())
        per_row = (time.perf_counter() - t0) / len(chunk)
        last = self._seconds_per_row
        # a running mean that follows a slower model (or a busier machine) at once
        self._seconds_per_row = (
            per_row if last is None or per_row > last else 0.8 * last + 0.2 * per_row
        )

    def _run_texts(
        self, texts: list[str], outputs: Sequence[str], parts: dict[str, list[np.ndarray]]
    ) -> None:
        """:meth:`_run_chunk` for texts: one ``scores`` call per chunk gives both outputs
        (``predict`` is its argmax); a labels-only target is asked for labels."""
        target = cast("TextTarget", self.target)
        if target.access < Access.SCORES:
            labels = target.labels(texts).detach().cpu().to(torch.int64)
            parts[protocol.LABELS_OUTPUT].append(labels.numpy())
            return
        p = target.scores(texts).detach().cpu().to(torch.float32)
        for o in outputs:
            y = p if o == protocol.SCORES_OUTPUT else p.argmax(dim=1).to(torch.int64)
            parts[o].append(y.numpy())


def _rows_of(x: Batch) -> torch.Tensor | list[str]:
    """What :meth:`ModelService._run_chunk` slices into chunks: a tensor, or the texts."""
    return x if isinstance(x, list) else torch.from_numpy(x)


def _is_text_target(target: Target) -> bool:
    """Whether ``target`` takes texts (imports :mod:`advx.text` only when it is loaded)."""
    import sys

    mod = sys.modules.get("advx.text.target")
    return mod is not None and isinstance(target, mod.TextTarget)


def _as_target(model: Any, name: str) -> Target:
    """``model`` as a target: a text model (a TextTarget, or a zoo classifier of a text
    architecture, also inside a WhiteBox) as a :class:`~advx.text.target.TextTarget`; anything else through
    :func:`advx.adapters.as_target`."""
    from advx.adapters import as_target
    from advx.models.adapter import Classifier
    from advx.targets import WhiteBox

    if isinstance(model, WhiteBox) and isinstance(model.model, Classifier):
        from advx.text.classifier import is_text_classifier

        if is_text_classifier(model.model):  # a text classifier wrapped as a tensor model
            model = model.model
    if isinstance(model, Classifier) or _is_text_target(model):
        from advx.text.adapters import as_text_target
        from advx.text.classifier import is_text_classifier

        if _is_text_target(model) or is_text_classifier(model):
            return as_text_target(model)
    return as_target(model, name=name)


def _check_int(what: str, value: Any, *, allow_none: bool = False, low: int = 1) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise InputError(f"{what} must be an integer >= {low}, got {value!r}")


def _check_seconds(what: str, value: Any, *, allow_zero: bool = False) -> None:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not (0 <= float(value) if allow_zero else 0 < float(value))
        or not float(value) < float("inf")
    ):
        kind = "non-negative" if allow_zero else "positive"
        raise InputError(f"{what} must be a {kind} number of seconds, got {value!r}")


def _keys_of(api_key: str | Sequence[str] | None) -> tuple[str, ...]:
    if api_key is None:
        return ()
    keys = (api_key,) if isinstance(api_key, str) else tuple(api_key)
    if any(not k for k in keys):
        raise InputError("API keys must be non-empty strings")
    return keys


class _Guard:
    """ASGI middleware before any endpoint: API key (401), declared body size (413),
    requests in flight per key (429) and the time a body may take to arrive (408)."""

    def __init__(
        self,
        app: Any,
        keys: tuple[str, ...],
        max_body_bytes: int,
        *,
        public_health: bool = False,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
    ) -> None:
        self.app = app
        self.keys = keys
        self.max_body_bytes = max_body_bytes
        self.public_health = public_health
        self.max_concurrent = max_concurrent
        self.body_timeout = body_timeout
        self.in_flight: dict[str, int] = {}

    def _key(self, headers: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else headers.get("x-api-key")
        if given is None:
            return None
        for k in self.keys:
            if hmac.compare_digest(given.encode(), k.encode()):
                return k
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = ""
        open_path = self.public_health and scope.get("path") in _HEALTH_PATHS
        if self.keys and not open_path:
            found = self._key(headers)
            if found is None:
                await _send(
                    send,
                    401,
                    "missing or wrong API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
                    [(b"www-authenticate", b"Bearer")],
                )
                return
            key = found
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                await _send(send, 400, f"bad Content-Length {length!r}")
                return
            if int(length) > self.max_body_bytes:
                await _send(
                    send,
                    413,
                    f"body of {length} bytes is over the limit of {self.max_body_bytes}; "
                    "send smaller batches",
                )
                return
        if self.in_flight.get(key, 0) >= self.max_concurrent:
            await _send(
                send,
                429,
                f"{self.max_concurrent} requests with this key are in flight already; "
                "wait for their answers before sending more",
                [(b"retry-after", b"1")],
            )
            return
        scope.setdefault("state", {})["api_key"] = key
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        try:
            await self.app(scope, self._timed(receive), send)
        finally:
            self.in_flight[key] -= 1
            if not self.in_flight[key]:
                del self.in_flight[key]

    def _timed(self, receive: Any) -> Any:
        """``receive`` that gives the whole body ``body_timeout`` seconds to arrive."""
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        done = False

        async def timed_receive() -> Any:
            nonlocal done
            if done:
                return await receive()
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(left, 1e-3))
            except asyncio.TimeoutError:
                raise _Reject(
                    408,
                    f"the request body did not arrive within {self.body_timeout:g} s; "
                    "send it at once",
                ) from None
            if message.get("type") != "http.request" or not message.get("more_body", False):
                done = True
            return message

        return timed_receive


async def _send(
    send: Any, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = _error_body(message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(
    model: Any,
    *,
    name: str = "model",
    api_key: str | Sequence[str] | None = None,
    max_queries: int | None = None,
    labels_only: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    dataset: str | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_concurrent: int = DEFAULT_MAX_CONCURRENT,
    public_health: bool = False,
    inline_seconds: float = DEFAULT_INLINE_SECONDS,
) -> Any:
    """The FastAPI app serving ``model`` over the Open Inference Protocol.

    Args:
        model: an advx :class:`~advx.targets.Target`, a torch classifier, a scikit-learn
            model (the zoo's or a plain estimator) or an ONNX session; see
            :func:`advx.adapters.as_target`. A text model (a
            :class:`~advx.text.target.TextTarget`, or a zoo classifier of a text
            architecture) is served with a ``BYTES`` input of N texts.
        name: the model's name in URLs (``/v2/models/{name}/infer``).
        api_key: a key, or several, each with its own query budget; None: no
            authentication (keep the server on loopback then).
        max_queries: rows each key may have evaluated; None: unlimited.
        labels_only: answer labels only (``predict``), never probabilities.
        max_body_bytes: largest request body accepted, after gzip decoding (default
            32 MiB); larger gets 413.
        dataset: the model's dataset name, published in the metadata ``parameters``.
        max_rows: most rows per inference request (default 1024); more gets 413.
        chunk_rows: rows evaluated per turn of the evaluation lock (default 64): a
            small request never waits for a whole large one.
        request_timeout: seconds an inference may take, waiting for its turn included
            (default 60); then 503 and nothing is charged.
        body_timeout: seconds a request body may take to arrive (default 30); then 408.
        max_concurrent: requests each key may have in flight (default 8); more get 429.
        public_health: answer ``/v2/health/live`` and ``/v2/health/ready`` without an API
            key (for probes that carry none, e.g. Kubernetes); default False.
        inline_seconds: a lone request expected to take at most this long (default 0.1)
            is evaluated on the event loop instead of a worker thread (see
            :class:`ModelService`); 0: always in a worker thread.

    Returns:
        The FastAPI application (``app.state.service`` is its :class:`ModelService`,
        holding budgets used per key); run it with uvicorn or Starlette's TestClient.

    Example:
        >>> app = create_app(clf, name="digits", api_key="s3cret", max_queries=10_000)  # doctest: +SKIP
        >>> uvicorn.run(app, host="127.0.0.1", port=8080)  # doctest: +SKIP
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException

    if not name or "/" in name:
        raise InputError(f"model name must be non-empty without '/', got {name!r}")
    _check_int("max_body_bytes", max_body_bytes, low=1024)
    _check_int("max_concurrent", max_concurrent)
    _check_seconds("body_timeout", body_timeout)
    keys = _keys_of(api_key)
    target = _as_target(model, name)
    service = ModelService(
        target, name=name, max_queries=max_queries, labels_only=labels_only, dataset=dataset,
        max_rows=max_rows, chunk_rows=chunk_rows, request_timeout=request_timeout,
        inline_seconds=inline_seconds,
    )  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        with service.hold():  # eval mode and frozen parameters while serving
            yield

    app = FastAPI(
        title=f"advx serve: {name}",
        version=advx.__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.service = service

    def error(status: int, message: str) -> Response:
        return Response(_error_body(message), status_code=status, media_type="application/json")

    @app.exception_handler(_Reject)
    async def _on_reject(request: Request, exc: _Reject) -> Response:
        return error(exc.status, exc.message)

    @app.exception_handler(HTTPException)
    async def _on_http(request: Request, exc: HTTPException) -> Response:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _on_any(request: Request, exc: Exception) -> Response:
        log.exception("error answering %s", request.url.path)
        return error(500, f"internal error: {type(exc).__name__}: {exc}")

    def model_or_404(model_name: str, version: str | None = None) -> None:
        if model_name != service.name:
            raise _Reject(404, f"unknown model {model_name!r}; this server has {service.name!r}")
        if version is not None and version != service.version:
            raise _Reject(
                404,
                f"unknown version {version!r} of model {model_name!r}; this server has "
                f"version {service.version!r}",
            )

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {
            "name": "advx",
            "version": advx.__version__,
            "extensions": [protocol.BINARY_EXTENSION, "model_repository"],
        }

    @app.get("/v2/health/live")
    async def live() -> Response:
        return Response(status_code=200)

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        return Response(status_code=200)

    @app.get("/v2/models/{model_name}")
    @app.get("/v2/models/{model_name}/versions/{version}")
    async def model_metadata(model_name: str, version: str | None = None) -> JSONResponse:
        model_or_404(model_name, version)
        return JSONResponse(service.metadata())

    @app.get("/v2/models/{model_name}/ready")
    @app.get("/v2/models/{model_name}/versions/{version}/ready")
    async def model_ready(model_name: str, version: str | None = None) -> Response:
        model_or_404(model_name, version)
        return Response(status_code=200)

    @app.post("/v2/repository/index")
    async def repository_index() -> list[dict[str, str]]:
        return [{"name": service.name, "version": service.version, "state": "READY"}]

    app.add_middleware(_InferPath, service=service, max_body_bytes=max_body_bytes)
    app.add_middleware(
        _Guard,
        keys=keys,
        max_body_bytes=max_body_bytes,
        public_health=public_health,
        max_concurrent=max_concurrent,
        body_timeout=body_timeout,
    )
    return app


_INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")


class _InferPath:
    """ASGI middleware answering ``POST /v2/models/{name}[/versions/{v}]/infer`` itself.

    The inference endpoint is the hot path (an attack sends thousands of requests), so it
    reads the body and answers with raw ASGI messages rather than through FastAPI's
    routing, dependency solving and request/response objects; everything else goes on
    to the app. It runs inside :class:`_Guard` (API key, declared size, requests in
    flight, body time-out are checked before)."""

    def __init__(self, app: Any, service: ModelService, max_body_bytes: int) -> None:
        self.app = app
        self.service = service
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        match = _INFER_PATH.fullmatch(scope["path"]) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        try:
            if scope["method"] != "POST":
                raise _Reject(405, "Method Not Allowed")
            body, headers = await self._infer(scope, receive, match[1], match[2])
        except _Reject as e:
            extra = [(b"allow", b"POST")] if e.status == 405 else []
            await _answer(send, e.status, _error_body(e.message), _JSON_HEADERS + extra)
        except Exception as e:  # noqa: BLE001 - answer 500, never drop the connection
            log.exception("error answering %s", scope["path"])
            message = f"internal error: {type(e).__name__}: {e}"
            await _answer(send, 500, _error_body(message), _JSON_HEADERS)
        else:
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            await _answer(send, 200, body, raw)

    async def _infer(
        self, scope: Any, receive: Any, model_name: str, version: str | None
    ) -> tuple[bytes, dict[str, str]]:
        service = self.service
        if model_name != service.name:
            raise _Reject(404, f"unknown model {model_name!r}; this server has {service.name!r}")
        if version is not None and version != service.version:
            raise _Reject(
                404,
                f"unknown version {version!r} of model {model_name!r}; this server has "
                f"version {service.version!r}",
            )
        key = scope.get("state", {}).get("api_key", "")
        service.check_budget(key)  # nothing left: 429 before reading the body
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise _Reject(
                415,
                f"Content-Encoding {encoding!r} is not supported; send the body as is "
                "(identity) or gzip-compressed",
            )
        service.active += 1
        try:
            return await self._answer_body(receive, headers, encoding, key)
        finally:
            service.active -= 1

    async def _answer_body(
        self, receive: Any, headers: dict[str, str], encoding: str, key: str
    ) -> tuple[bytes, dict[str, str]]:
        service = self.service
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                raise _Reject(499, "the client closed the request")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _Reject(
                    413,
                    f"body is over the limit of {self.max_body_bytes} bytes; send smaller batches",
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if encoding == "gzip":
            body = _gunzip(body, self.max_body_bytes)
        raw_len = headers.get(protocol.HEADER_LENGTH)
        header_length = None
        if raw_len is not None:
            if not raw_len.strip().isdigit():
                raise _Reject(400, f"bad Inference-Header-Content-Length {raw_len!r}")
            header_length = int(raw_len)
        x, outputs = service.parse(body, header_length)
        rows = len(x)
        deadline = time.monotonic() + service.request_timeout
        left = service.reserve(key, rows)  # charged before any await
        names = list(outputs)
        stop = threading.Event()
        try:
            tensors = service.evaluate_inline(x, names)
            if tensors is None:
                tensors = await _in_thread(
                    lambda: service.evaluate(x, names, deadline=deadline, stop=stop)
                )
        except BaseException:
            stop.set()  # cancelled (client gone): the worker stops after its chunk
            service.refund(key, rows)  # nothing was answered: give the rows back
            raise
        params: dict[str, Any] = {"queries_used": rows}
        if left is not None:
            params["queries_remaining"] = left
        return protocol.encode_response(
            service.name,
            tensors,
            binary={o for o, b in outputs.items() if b},
            parameters=params,
            model_version=service.version,
        )


async def _in_thread(fn: Any) -> Any:
    """``fn()`` in a worker thread; a cancelled caller is freed at once (the thread
    finishes on its own)."""
    from anyio import to_thread

    return await to_thread.run_sync(fn, abandon_on_cancel=True)


_JSON_HEADERS = [(b"content-type", b"application/json")]


async def _answer(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """Send a whole response (``content-length`` added)."""
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _gunzip(body: bytes, limit: int) -> bytes:
    """Decompress a gzip body, refusing (413) more than ``limit`` bytes of output and
    (400) anything that is not one complete gzip stream."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise _Reject(
                413, f"decompressed body is over the limit of {limit} bytes; send smaller batches"
            )
        out += d.flush()
    except zlib.error as e:
        raise _Reject(400, f"body is not valid gzip data ({e})") from None
    if not d.eof or d.unused_data:
        raise _Reject(400, "body is not one complete gzip stream")
    return out


def is_loopback(host: str) -> bool:
    """True for loopback addresses (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _timed_h11(header_timeout: float) -> type:
    """uvicorn's h11 protocol, plus a deadline on the request head.

    uvicorn closes a kept-alive connection only when it sends nothing at all for
    ``timeout_keep_alive`` seconds, and never closes a connection that trickles a request
    head byte by byte (slow loris). Here a connection waiting for a request head (a new
    one, or one whose last response is sent) must deliver the complete head within
    ``header_timeout`` seconds, and a new connection is idle-timed from the start."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_head()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm_head()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head()
            super().connection_lost(exc)

        def _arm_head(self) -> None:
            self._disarm_head()
            self._head_timer = self.loop.call_later(header_timeout, self._head_expired)

        def _disarm_head(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_expired(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                log.info("closing a connection that sent no complete request head in time")
                self.transport.close()

    return TimedH11Protocol


def server_config(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "warning",
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
) -> Any:
    """The ``uvicorn.Config`` that :func:`serve` runs: ``app`` on ``host:port``, closing
    connections idle for ``idle_timeout`` seconds and those that send no complete request
    head within ``header_timeout`` seconds."""
    import uvicorn

    _check_seconds("idle_timeout", idle_timeout)
    _check_seconds("header_timeout", header_timeout)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=log_level == "info",
        http=_timed_h11(float(header_timeout)),
        timeout_keep_alive=max(1, round(idle_timeout)),
    )


def serve(
    model: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "warning",
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    **options: Any,
) -> None:
    """Run :func:`create_app` with uvicorn until interrupted (``options`` go to it;
    the timeouts to :func:`server_config`)."""
    import uvicorn

    if not is_loopback(host) and not options.get("api_key"):
        log.warning("serving on %s without an API key: anyone who can reach it may query", host)
    app = create_app(model, **options)
    config = server_config(
        app, host=host, port=port, log_level=log_level,
        idle_timeout=idle_timeout, header_timeout=header_timeout,
    )  # fmt: skip
    uvicorn.Server(config).run()


__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_CONCURRENT",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_REQUEST_TIMEOUT",
    "ModelService",
    "create_app",
    "is_loopback",
    "serve",
    "server_config",
]
