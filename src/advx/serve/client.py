"""A small synchronous client of the Open Inference Protocol (KServe V2 REST).

It speaks to ``advx serve``, MLServer, Triton and KServe model servers. What it adds over
a bare HTTP call is what attacks need from a remote model: time-outs, retries with
exponential back-off on server errors (5xx) and connection failures, an API key header,
and typed errors: a 4xx answer or a malformed response raises
:class:`~advx.errors.RemoteError` (:class:`HttpStatusError` carries the status code).

Plain ``http://`` servers that are reached without a proxy are spoken to through the
standard library's keep-alive connections (:class:`StdlibHttp`: about a third of
httpx's Python work per request, which shows on a fast model); ``https://`` servers,
proxied ones and a caller's own ``http_client`` go through httpx, imported only then.
"""

from __future__ import annotations

import http.client
import json
import logging
import select
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from advx.errors import RemoteError
from advx.serve import protocol

log = logging.getLogger(__name__)


def _q(name: str) -> str:
    """A model name as one URL path segment."""
    from urllib.parse import quote

    return quote(name, safe="")


class HttpStatusError(RemoteError):
    """The server answered with an error status (4xx, or 5xx after all retries).

    Attributes:
        status_code: the HTTP status (401 missing/wrong API key, 413 body too large,
            429 query budget spent, 400 malformed request, 404 unknown model...).
    """

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


_HINTS = {
    400: "the server rejected the request as malformed",
    401: "the server wants an API key: pass api_key= (CLI: --api-key)",
    403: "the server refuses this request (e.g. scores asked of a labels-only server: use outputs='labels')",
    404: "no such model or endpoint: check the URL and the model name",
    413: "the request body is too large for the server: use a smaller batch_size",
    429: "the server's query budget for this key is spent",
}


class TransportError(RemoteError):
    """The request got no HTTP answer (connection refused or reset, time-out)."""


class StdlibResponse:
    """An HTTP answer read by :class:`StdlibHttp`: ``status_code``, ``headers`` (looked up
    without regard to case), ``content``, :meth:`json`; the part of ``httpx.Response``
    that :class:`OipClient` uses."""

    def __init__(self, status_code: int, headers: Any, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` if it is not)."""
        return json.loads(self.content)


class StdlibHttp:
    """Keep-alive HTTP/1.1 connections to one ``http://`` server, from ``http.client``.

    Thread-safe: each request takes an idle connection (or opens one) and puts it back
    once its answer is read. A kept-alive connection that the server has closed (an idle
    time-out) is noticed before it is reused, and a request that fails on a reused
    connection before any answer is sent again once on a new one, as browsers and httpx
    do; other failures raise :class:`TransportError`.

    Args:
        url: ``http://host[:port]`` (a path prefix is kept).
        timeout: seconds for connecting and for each read.
    """

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise RemoteError(f"{url!r} is not a plain http:// URL")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection still open (reused: True), or a new one."""
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout), False
            sock = conn.sock
            # readable while idle: the server closed it (EOF) or sent garbage; drop it
            if sock is not None and not select.select([sock], [], [], 0)[0]:
                return conn, True
            conn.close()

    def request(
        self, method: str, url: str, *, content: bytes | None, headers: dict[str, str]
    ) -> StdlibResponse:
        """Send one request (``url``: the full URL as :class:`OipClient` builds it)."""
        path = self.prefix + urlsplit(url).path
        for fresh_try in (False, True):
            conn, reused = self._connection()
            try:
                conn.request(method, path, body=content, headers=headers)
                r = conn.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                stale = isinstance(
                    e, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
                )
                if reused and stale and not fresh_try:
                    continue  # the server closed the kept-alive connection: once more
                raise TransportError(f"{type(e).__name__}: {e}") from None
            if r.will_close:
                conn.close()
            else:
                with self._lock:
                    self._idle.append(conn)
            return StdlibResponse(r.status, r.headers, data)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _direct_http(url: str) -> bool:
    """True for an ``http://`` URL that no proxy setting (``HTTP_PROXY``...) applies to."""
    import urllib.request

    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    proxies = urllib.request.getproxies()
    return "http" not in proxies or bool(urllib.request.proxy_bypass(parts.hostname))


def scores_from_outputs(
    arrays: Sequence[np.ndarray], *, url: str, output: str, num_classes: int
) -> np.ndarray:
    """The score rows of a model's answers, concatenated as float32 ``(N, num_classes)``;
    :class:`~advx.errors.RemoteError` naming ``url`` and ``output`` for a wrong dtype or
    shape, NaN or inf. Shared by the image and text HTTP targets."""
    for a in arrays:
        if a.dtype.kind != "f" or a.ndim != 2 or a.shape[1] != num_classes:
            raise RemoteError(
                f"{url}: output {output!r} should be float (N, {num_classes}), got "
                f"{a.dtype} {list(a.shape)}"
            )
        if not bool(np.isfinite(a).all()):
            raise RemoteError(f"{url}: output {output!r} has NaN or inf")
    if not arrays:
        return np.zeros((0, num_classes), dtype=np.float32)
    return np.concatenate([a.astype(np.float32) for a in arrays])


def labels_from_outputs(
    arrays: Sequence[np.ndarray], *, url: str, output: str, num_classes: int, row: str = "row"
) -> np.ndarray:
    """The labels of a model's answers, concatenated as int64 ``(N,)``:
    :class:`~advx.errors.RemoteError` unless each ``row`` (input) has one whole number in
    ``[0, num_classes)``."""
    labels = []
    for a in arrays:
        flat = a.reshape(a.shape[0], -1)
        if flat.shape[1] != 1 or a.dtype.kind not in "iuf":
            raise RemoteError(
                f"{url}: output {output!r} should be one label per {row}, got "
                f"{a.dtype} {list(a.shape)}"
            )
        lab = flat[:, 0]
        if not bool(np.all(lab == np.round(lab))) or bool(((lab < 0) | (lab >= num_classes)).any()):
            raise RemoteError(f"{url}: labels must be class indices in [0, {num_classes - 1}]")
        labels.append(lab.astype(np.int64))
    return np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)


class OipClient:
    """Client of one V2 inference server.

    Args:
        url: server root, e.g. ``"http://127.0.0.1:8080"`` (no ``/v2``).
        api_key: sent with every request, in ``api_key_header``. With the default header
            ``"Authorization"`` the value is ``"Bearer <key>"``; with any other header
            name (e.g. ``"x-api-key"``) it is the bare key. ``advx serve`` accepts both.
        api_key_header: the header carrying the key (default ``"Authorization"``).
        timeout: seconds to wait for connecting and for each read (default 30).
        retries: extra attempts after a 5xx answer, a time-out or a connection error
            (default 3); 4xx answers are never retried.
        backoff: seconds before the first retry, doubled after each (default 0.25).
        http_client: an existing ``httpx.Client`` to send through, with its own time-out
            settings (for tests, e.g. Starlette's ``TestClient``); default: keep-alive
            connections of the standard library for a plain ``http://`` URL reached
            without a proxy (:class:`StdlibHttp`), else a new ``httpx.Client``.

    Attributes:
        requests: HTTP requests sent (retries included); ``retried``: retries made.

    Example:
        >>> client = OipClient("http://127.0.0.1:8080")  # doctest: +SKIP
        >>> client.infer("digits", x.numpy(), outputs=["predict_proba"])  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        api_key_header: str = "Authorization",
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.25,
        http_client: Any = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise RemoteError(f"{url!r} is not an HTTP URL; expected e.g. http://127.0.0.1:8080")
        if retries < 0 or timeout <= 0 or backoff < 0:
            raise RemoteError(
                f"need retries >= 0, timeout > 0, backoff >= 0; got {retries}, {timeout}, {backoff}"
            )
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.headers: dict[str, str] = {}
        if api_key:
            is_auth = api_key_header.lower() == "authorization"
            self.headers[api_key_header] = f"Bearer {api_key}" if is_auth else api_key
        self._owned = http_client is None
        # Our own client carries the time-out; a caller's client keeps its own settings.
        self.http: Any
        self._transport_errors: tuple[type[BaseException], ...] = (TransportError,)
        if http_client is None and _direct_http(self.url):
            self.http = StdlibHttp(self.url, self.timeout)
        else:
            import httpx

            self._transport_errors = (TransportError, httpx.TransportError)
            self.http = http_client if http_client is not None else httpx.Client(timeout=timeout)
        self.requests = 0
        self.retried = 0

    # -- plumbing ---------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send one request with retries; return the response of a 2xx answer (an
        ``httpx.Response``, or a :class:`StdlibResponse`: ``status_code``, ``headers``,
        ``content``, ``json()``).

        Raises:
            HttpStatusError: a 4xx answer, or a 5xx answer after all retries.
            RemoteError: the server could not be reached after all retries.
        """
        url = self.url + path
        last, last_status = "", 0
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                time.sleep(self.backoff * 2 ** (attempt - 1))
            self.requests += 1
            try:
                r = self.http.request(
                    method,
                    url,
                    content=content,
                    headers={**self.headers, **(headers or {})},
                )
            except self._transport_errors as e:  # connect/read errors and time-outs
                last, last_status = f"{type(e).__name__}: {e}", 0
                log.info("%s %s failed (%s); attempt %d", method, url, last, attempt + 1)
                continue
            if r.status_code < 400:
                return r
            message = protocol.error_message(r.content)
            if r.status_code < 500:
                hint = _HINTS.get(r.status_code, "the server refused the request")
                raise HttpStatusError(
                    f"{method} {url} -> {r.status_code}: {message} ({hint})", r.status_code
                )
            last, last_status = f"status {r.status_code}: {message}", r.status_code
            log.info("%s %s answered %s; attempt %d", method, url, last, attempt + 1)
        message = (
            f"{method} {url} failed after {self.retries + 1} attempts; last error: {last}. "
            "Is the server running and reachable?"
        )
        if last_status:
            raise HttpStatusError(message, last_status)
        raise RemoteError(message)

    def _json(self, r: Any, what: str) -> Any:
        try:
            return r.json()
        except ValueError:
            raise RemoteError(f"{what}: the server's answer is not JSON") from None

    # -- protocol ---------------------------------------------------------------------
    def live(self) -> bool:
        """True when ``GET /v2/health/live`` answers 2xx."""
        return self._health("/v2/health/live")

    def ready(self) -> bool:
        """True when ``GET /v2/health/ready`` answers 2xx (False for other statuses)."""
        return self._health("/v2/health/ready")

    def _health(self, path: str) -> bool:
        try:
            self.request("GET", path)
        except HttpStatusError as e:
            if e.status_code in (401, 403):
                raise
            return False
        return True

    def wait_ready(self, timeout: float = 30.0, interval: float = 0.1) -> None:
        """Poll readiness until the server is ready; :class:`RemoteError` after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        saved, self.retries = self.retries, 0
        try:
            while True:
                try:
                    if self.ready():
                        return
                except HttpStatusError:
                    raise
                except RemoteError:
                    pass
                if time.monotonic() > deadline:
                    raise RemoteError(f"{self.url} was not ready within {timeout:g} s")
                time.sleep(interval)
        finally:
            self.retries = saved

    def server_metadata(self) -> dict[str, Any]:
        """``GET /v2``: server name, version and protocol extensions."""
        meta = self._json(self.request("GET", "/v2"), "server metadata")
        if not isinstance(meta, dict):
            raise RemoteError(f"{self.url}/v2: server metadata is not a JSON object")
        return meta

    def model_metadata(self, model: str) -> dict[str, Any]:
        """``GET /v2/models/{model}``: inputs, outputs and parameters of the model."""
        meta = self._json(self.request("GET", f"/v2/models/{_q(model)}"), f"metadata of {model!r}")
        if not isinstance(meta, dict):
            raise RemoteError(f"metadata of model {model!r} is not a JSON object")
        return meta

    def describe(self, model: str | None = None) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """The model to talk to and what its metadata says: ``(name, parameters, first
        declared input)`` (``{}`` each when absent). ``model``
        None picks the server's only model.

        Raises:
            ConfigError: no name given and the server holds no model, or several.
        """
        if model is None:
            found = self.models()
            if len(found) != 1:
                from advx.errors import ConfigError

                raise ConfigError(
                    f"{self.url} serves {len(found)} models ({', '.join(found) or 'none'}); "
                    "pass the model name (model_name=...; `advx attack --model-name`)"
                )
            model = found[0]
        meta = self.model_metadata(model)
        params = meta.get("parameters")
        inputs = meta.get("inputs")
        declared = (
            inputs[0] if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict) else {}
        )
        return model, params if isinstance(params, dict) else {}, declared

    def models(self) -> list[str]:
        """Names of the models the server holds (repository extension,
        ``POST /v2/repository/index``; served by advx, MLServer and Triton)."""
        index = self._json(
            self.request(
                "POST",
                "/v2/repository/index",
                content=b"{}",
                headers={"content-type": "application/json"},
            ),
            "repository index",
        )
        if not isinstance(index, list):
            raise RemoteError("the repository index is not a JSON list")
        return [str(m["name"]) for m in index if isinstance(m, dict) and "name" in m]

    def infer(
        self,
        model: str,
        x: np.ndarray,
        *,
        input_name: str = protocol.INPUT_NAME,
        outputs: Sequence[str] = (),
        binary: bool = False,
    ) -> dict[str, np.ndarray]:
        """``POST /v2/models/{model}/infer`` with the batch ``x``; the outputs by name.

        Args:
            model: model name.
            x: input batch (N, ...), float32 for ``FP32``.
            input_name: the model's input name.
            outputs: output names to ask for (empty: the server's default).
            binary: use the binary tensor extension (only if the server supports it).

        Raises:
            HttpStatusError / RemoteError: see :meth:`request`; also for malformed answers.
        """
        try:
            body, headers = protocol.encode_request(
                x, input_name=input_name, outputs=outputs, binary=binary
            )
        except protocol.ProtocolError as e:
            raise RemoteError(f"cannot encode the request: {e}") from None
        r = self.request("POST", f"/v2/models/{_q(model)}/infer", content=body, headers=headers)
        raw_len = r.headers.get(protocol.HEADER_LENGTH)
        try:
            header_length = int(raw_len) if raw_len is not None else None
            return protocol.decode_response(r.content, header_length)
        except (ValueError, protocol.ProtocolError) as e:
            raise RemoteError(
                f"malformed response from {self.url} for model {model!r}: {e}"
            ) from None

    def close(self) -> None:
        """Close the connection pool (if this client created it)."""
        if self._owned:
            self.http.close()

    def __enter__(self) -> OipClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
