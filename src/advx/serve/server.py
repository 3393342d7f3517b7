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

Guards, each answered with ``{"error": "..."}`` and never a crash:

* API keys: when ``api_key`` is set, every request must carry ``Authorization: Bearer
  <key>`` or ``x-api-key: <key>``, else **401**.
* Body size: bodies over ``max_body_bytes`` get **413** (checked on ``Content-Length``
  before reading, and while reading otherwise).
* Query budgets: with ``max_queries``, each key (or everyone together when there are no
  keys) may have that many rows evaluated; a request that would go over gets **429**
  and evaluates nothing.
* Validation: bad JSON, unknown inputs/outputs, wrong shape or datatype, NaN/inf,
  values outside the model's bounds, empty batches get **400** saying what is wrong;
  asking for scores from a labels-only server gets **403**; unknown models **404**.

Use :func:`create_app` in-process (tests, notebooks) or ``advx serve MODEL_DIR``.
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations
# at runtime, and `Request` is imported inside create_app (FastAPI loads lazily).
import hmac
import json
import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

import advx
from advx.errors import InputError
from advx.serve import protocol
from advx.targets import Access, Target

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
_FLOAT_TYPES = ("FP32", "FP64")


class _Reject(Exception):
    """An error answer: HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class ModelService:
    """What the server does, without HTTP: validation, budgets and evaluation.

    Args:
        target: the model as an advx target (scores needed unless ``labels_only``).
        name: the model's name in URLs.
        max_queries: rows each key may have evaluated (None: unlimited).
        labels_only: serve labels only.
        version: model version string reported in metadata and answers.
        dataset: name of the model's dataset, published in the metadata so clients
            (``advx attack URL``) can load matching evaluation data.
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
    ) -> None:
        if max_queries is not None and max_queries < 1:
            raise InputError(f"max_queries must be >= 1, got {max_queries}")
        if not labels_only and target.access < Access.SCORES:
            log.info("%s gives labels only; serving labels only", target.name)
            labels_only = True
        self.target = target
        self.name = name
        self.max_queries = max_queries
        self.labels_only = labels_only
        self.version = version
        self.dataset = dataset
        self.used: dict[str, int] = {}
        self._lock = threading.Lock()  # targets count queries; evaluate one batch at a time

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

    def check_budget(self, key: str, rows: int = 1) -> None:
        """Raise 429 unless ``key`` may have ``rows`` more rows evaluated."""
        left = self.remaining(key)
        if left is not None and rows > left:
            spent = "is spent" if left <= 0 else f"has {left} rows left"
            raise _Reject(
                429,
                f"query budget of {self.max_queries} rows {spent}; this request has {rows} rows",
            )

    # -- inference --------------------------------------------------------------------
    def parse(self, body: bytes, header_length: int | None) -> tuple[np.ndarray, dict[str, bool]]:
        """Decode and validate a request: the batch ``(N, *input_shape)`` float32 and the
        outputs to send (name -> binary). Raises ``_Reject`` (400/403)."""
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
        dt = protocol.datatype_of(t.array)
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
        outputs = req.outputs or {o: False for o in self.output_names}
        for o in outputs:
            if o == protocol.SCORES_OUTPUT and self.labels_only:
                raise _Reject(
                    403, f"this server gives labels only; ask for {protocol.LABELS_OUTPUT!r}"
                )
            if o not in self.output_names:
                raise _Reject(400, f"unknown output {o!r}; outputs: {', '.join(self.output_names)}")
        return np.array(a, dtype=np.float32, order="C"), outputs  # a writable copy

    def evaluate(self, x: np.ndarray, outputs: Sequence[str]) -> list[protocol.WireTensor]:
        """Run the model on ``x`` for the requested outputs (thread-safe)."""
        batch = torch.from_numpy(x)
        result = []
        with self._lock, self.target.attacking():
            for o in outputs:
                if o == protocol.SCORES_OUTPUT:
                    y = self.target.scores(batch).detach().cpu().to(torch.float32).numpy()
                else:
                    y = self.target.labels(batch).detach().cpu().to(torch.int64).numpy()
                result.append(protocol.WireTensor(o, y))
        return result


def _keys_of(api_key: str | Sequence[str] | None) -> tuple[str, ...]:
    if api_key is None:
        return ()
    keys = (api_key,) if isinstance(api_key, str) else tuple(api_key)
    if any(not k for k in keys):
        raise InputError("API keys must be non-empty strings")
    return keys


class _Guard:
    """ASGI middleware: API key (401) and declared body size (413) before any endpoint."""

    def __init__(self, app: Any, keys: tuple[str, ...], max_body_bytes: int) -> None:
        self.app = app
        self.keys = keys
        self.max_body_bytes = max_body_bytes

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
        if self.keys:
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
        scope.setdefault("state", {})["api_key"] = key
        await self.app(scope, receive, send)


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
) -> Any:
    """The FastAPI app serving ``model`` over the Open Inference Protocol.

    Args:
        model: an advx :class:`~advx.targets.Target`, a torch classifier, a scikit-learn
            model (the zoo's or a plain estimator) or an ONNX session; see
            :func:`advx.adapters.as_target`.
        name: the model's name in URLs (``/v2/models/{name}/infer``).
        api_key: a key, or several, each with its own query budget; None: no
            authentication (keep the server on loopback then).
        max_queries: rows each key may have evaluated; None: unlimited.
        labels_only: answer labels only (``predict``), never probabilities.
        max_body_bytes: largest request body accepted (default 32 MiB).
        dataset: the model's dataset name, published in the metadata ``parameters``.

    Returns:
        The FastAPI application (``app.state.service`` is its :class:`ModelService`,
        holding budgets used per key); run it with uvicorn or Starlette's TestClient.

    Example:
        >>> app = create_app(clf, name="digits", api_key="s3cret", max_queries=10_000)  # doctest: +SKIP
        >>> uvicorn.run(app, host="127.0.0.1", port=8080)  # doctest: +SKIP
    """
    from anyio import to_thread
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException

    from advx.adapters import as_target

    if not name or "/" in name:
        raise InputError(f"model name must be non-empty without '/', got {name!r}")
    if max_body_bytes < 1024:
        raise InputError(f"max_body_bytes must be >= 1024, got {max_body_bytes}")
    keys = _keys_of(api_key)
    target = as_target(model, name=name)
    service = ModelService(
        target, name=name, max_queries=max_queries, labels_only=labels_only, dataset=dataset
    )
    app = FastAPI(
        title=f"advx serve: {name}",
        version=advx.__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
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

    def model_or_404(model_name: str) -> None:
        if model_name != service.name:
            raise _Reject(404, f"unknown model {model_name!r}; this server has {service.name!r}")

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
        model_or_404(model_name)
        return JSONResponse(service.metadata())

    @app.get("/v2/models/{model_name}/ready")
    @app.get("/v2/models/{model_name}/versions/{version}/ready")
    async def model_ready(model_name: str, version: str | None = None) -> Response:
        model_or_404(model_name)
        return Response(status_code=200)

    @app.post("/v2/repository/index")
    async def repository_index() -> list[dict[str, str]]:
        return [{"name": service.name, "version": service.version, "state": "READY"}]

    @app.post("/v2/models/{model_name}/infer")
    @app.post("/v2/models/{model_name}/versions/{version}/infer")
    async def infer(model_name: str, request: Request, version: str | None = None) -> Response:
        model_or_404(model_name)
        key = request.scope.get("state", {}).get("api_key", "")
        service.check_budget(key)  # nothing left: 429 before reading the body
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise _Reject(
                    413, f"body is over the limit of {max_body_bytes} bytes; send smaller batches"
                )
            chunks.append(chunk)
        body = b"".join(chunks)
        raw_len = request.headers.get(protocol.HEADER_LENGTH)
        header_length = None
        if raw_len is not None:
            if not raw_len.strip().isdigit():
                raise _Reject(400, f"bad Inference-Header-Content-Length {raw_len!r}")
            header_length = int(raw_len)
        x, outputs = service.parse(body, header_length)
        rows = x.shape[0]
        service.check_budget(key, rows)
        service.used[key] = service.used.get(key, 0) + rows  # reserved before the await
        try:
            tensors = await to_thread.run_sync(service.evaluate, x, list(outputs))
        except Exception:
            service.used[key] -= rows  # nothing was answered: give the rows back
            raise
        left = service.remaining(key)
        params: dict[str, Any] = {"queries_used": service.used[key]}
        if left is not None:
            params["queries_remaining"] = left
        body, headers = protocol.encode_response(
            service.name,
            tensors,
            binary={o for o, b in outputs.items() if b},
            parameters=params,
            model_version=service.version,
        )
        return Response(body, headers=headers)

    app.add_middleware(_Guard, keys=keys, max_body_bytes=max_body_bytes)
    return app


def is_loopback(host: str) -> bool:
    """True for loopback addresses (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    model: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "warning",
    **options: Any,
) -> None:
    """Run :func:`create_app` with uvicorn until interrupted (``options`` go to it)."""
    import uvicorn

    if not is_loopback(host) and not options.get("api_key"):
        log.warning("serving on %s without an API key: anyone who can reach it may query", host)
    app = create_app(model, **options)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "info")


__all__ = ["DEFAULT_MAX_BODY_BYTES", "ModelService", "create_app", "is_loopback", "serve"]
