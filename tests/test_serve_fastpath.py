"""`advx serve`'s fast path: lone small requests evaluated on the event loop, the model held
in eval mode while serving, the raw inference endpoint's answers, and the client's
standard-library keep-alive transport (stale connections, failures, proxies, threads)."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from starlette.testclient import TestClient
from torch import nn

from advx.errors import RemoteError
from advx.models.adapter import Classifier
from advx.serve import protocol
from advx.serve.client import OipClient, StdlibHttp
from advx.serve.server import create_app, server_config
from advx.targets import ScoreBox

INFER = "/v2/models/m/infer"


def _box(fn=None, *, delay: float = 0.0) -> ScoreBox:
    def scores(x: torch.Tensor) -> torch.Tensor:
        if delay:
            time.sleep(delay)
        if fn is not None:
            fn(x)
        p = torch.stack([x[:, 0], 1 - x[:, 0]], dim=1)
        return p.clamp(0, 1)

    return ScoreBox(scores, input_shape=(3,), num_classes=2)


# returns the TestClient's response, an httpx2 or an httpx one depending on which of them
# starlette found, so it is left unannotated (as is _scores' argument)
def _post(c: TestClient, x: np.ndarray, binary: bool = True):
    body, headers = protocol.encode_request(x, outputs=["predict_proba"], binary=binary)
    return c.post(INFER, content=body, headers=headers)


def _scores(r: Any) -> np.ndarray:
    length = r.headers.get(protocol.HEADER_LENGTH)
    return protocol.decode_response(r.content, int(length) if length else None)["predict_proba"]


X = np.random.default_rng(0).random((5, 3)).astype(np.float32)
EXPECTED = np.stack([X[:, 0], 1 - X[:, 0]], axis=1)


# ------------------------------------------------------------------------- inline or thread
def test_lone_small_requests_run_inline_once_the_model_is_timed():
    app = create_app(_box(), name="m")
    service = app.state.service
    with TestClient(app) as c:
        for binary in (True, False, True):
            r = _post(c, X, binary)
            assert r.status_code == 200, r.text
            np.testing.assert_array_equal(_scores(r), EXPECTED)
    # the first request had no timing yet: a worker thread; the others ran inline
    assert (service.thread_count, service.inline_count) == (1, 2)
    assert service.used.get("", 0) == 15


def test_inline_can_be_turned_off_and_slow_models_stay_in_threads():
    for kw, delay in (({"inline_seconds": 0}, 0.0), ({"inline_seconds": 0.01}, 0.02)):
        app = create_app(_box(delay=delay), name="m", **kw)
        with TestClient(app) as c:
            for _ in range(3):
                assert _post(c, X).status_code == 200
        service = app.state.service
        assert (service.thread_count, service.inline_count) == (3, 0), kw


def test_inline_only_when_alone():
    app = create_app(_box(), name="m")
    service = app.state.service
    service.evaluate(X, ["predict"])  # timed now
    assert service.evaluate_inline(X, ["predict"]) is not None
    service.active = 2  # another inference request is being handled
    assert service.evaluate_inline(X, ["predict"]) is None
    service.active = 0
    assert service._lock.acquire()  # a worker thread holds the model
    try:
        assert service.evaluate_inline(X, ["predict"]) is None
    finally:
        service._lock.release()
    big = np.zeros((service.max_rows, 3), np.float32)
    service._seconds_per_row = 1.0  # far over inline_seconds for this many rows
    assert service.evaluate_inline(big, ["predict"]) is None


def test_a_model_error_inline_is_500_and_charges_nothing():
    def fail_on_marker(x: torch.Tensor) -> None:
        if bool((x[:, 1] == 0.5).any()):
            raise RuntimeError("boom")

    app = create_app(_box(fail_on_marker), name="m", api_key="k", max_queries=100)
    service = app.state.service
    with TestClient(app, raise_server_exceptions=False, headers={"x-api-key": "k"}) as c:
        assert _post(c, X).status_code == 200 and _post(c, X).status_code == 200
        assert service.inline_count == 1
        bad = X.copy()
        bad[0, 1] = 0.5
        r = _post(c, bad)
        assert r.status_code == 500 and "boom" in r.json()["error"]
        assert service.inline_count == 2  # it was evaluated inline, and refunded
        assert service.used["k"] == 10
        r = c.get(INFER)
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        assert c.post("/v2/models/m/versions/2/infer", content=b"{}").status_code == 404


def test_the_app_holds_the_model_in_eval_mode_while_it_runs():
    net = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    clf = Classifier(net, input_shape=(3,), num_classes=2).train()
    app = create_app(clf, name="m")
    with TestClient(app) as c:
        assert not clf.training and not any(p.requires_grad for p in clf.parameters())
        first = _scores(_post(c, X))
        np.testing.assert_array_equal(_scores(_post(c, X)), first)  # no dropout
    assert clf.training and all(p.requires_grad for p in clf.parameters())
    # without the app running (no lifespan), each chunk enters eval mode by itself
    service = create_app(clf, name="m").state.service
    out = service.evaluate(X, ["predict_proba"])[0].array
    np.testing.assert_allclose(out, first, rtol=1e-6)
    assert clf.training


# ------------------------------------------------------------------- the client's transport
@pytest.fixture()
def live():
    """uvicorn in a thread on a free loopback port, closing connections idle for 1 s."""
    import uvicorn

    app = create_app(_box(), name="m")
    server = uvicorn.Server(server_config(app, port=0, idle_timeout=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.02)
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", app.state.service
    server.should_exit = True
    thread.join(10)


def test_stdlib_transport_reuses_and_renews_connections(live, monkeypatch):
    url, service = live
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    client = OipClient(url, retries=0)
    assert isinstance(client.http, StdlibHttp)
    np.testing.assert_array_equal(client.infer("m", X, binary=True)["predict_proba"], EXPECTED)
    np.testing.assert_array_equal(client.infer("m", X)["predict_proba"], EXPECTED)
    assert len(client.http._idle) == 1  # one kept-alive connection, reused
    time.sleep(1.6)  # the server closes it as idle
    np.testing.assert_array_equal(client.infer("m", X)["predict_proba"], EXPECTED)
    assert client.requests == 3 and client.retried == 0
    assert client.model_metadata("m")["name"] == "m"
    client.close()
    assert client.http._idle == []


def test_stdlib_transport_threads_share_one_client(live):
    url, _ = live
    client = OipClient(url, retries=0)
    rng = np.random.default_rng(1)
    batches = [rng.random((i % 4 + 1, 3)).astype(np.float32) for i in range(24)]
    errors: list[BaseException] = []

    def work(chunk: list[np.ndarray]) -> None:
        try:
            for x in chunk:
                got = client.infer("m", x, binary=True)["predict_proba"]
                np.testing.assert_array_equal(got, np.stack([x[:, 0], 1 - x[:, 0]], axis=1))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(batches[i::6],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    client.close()


def test_unreachable_server_is_a_remote_error_after_retries():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket is closed
    client = OipClient(f"http://127.0.0.1:{port}", retries=1, backoff=0.0, timeout=2.0)
    with pytest.raises(RemoteError, match="failed after 2 attempts"):
        client.infer("m", X)
    assert client.requests == 2 and client.retried == 1


def test_proxied_and_https_urls_go_through_httpx(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert isinstance(OipClient("http://models.example:8080").http, httpx.Client)
    monkeypatch.setenv("no_proxy", "models.example")
    assert isinstance(OipClient("http://models.example:8080").http, StdlibHttp)
    assert isinstance(OipClient("https://models.example").http, httpx.Client)


# ------------------------------------------------------------------------ JSON float32 text
def test_float32_json_text_round_trips_exactly():
    import json

    rng = np.random.default_rng(2)
    f32 = np.finfo(np.float32)
    special = [0.0, -0.0, 1.0, f32.max, -f32.max, f32.tiny, f32.smallest_subnormal, 1 / 3]
    x = np.concatenate([rng.standard_normal(5000) * 10.0 ** rng.integers(-30, 30, 5000), special])
    x = x.astype(np.float32).reshape(-1, 2)
    body, headers = protocol.encode_request(x, outputs=["predict_proba"])
    assert protocol.HEADER_LENGTH not in headers
    data = json.loads(body)["inputs"][0]["data"]
    assert all(type(v) is float for v in data)  # never an int, even for 0 and 1
    back = protocol.decode_request(body).inputs[0].array
    assert back.dtype == np.float32
    assert np.array_equal(back.view(np.int32), x.view(np.int32))  # bit for bit, -0.0 too
    with pytest.raises(protocol.ProtocolError, match="NaN"):
        protocol.encode_request(np.array([[np.inf]], np.float32))
    # responses: float32 scores in JSON, int64 labels as JSON integers
    scores = np.array([[0.25, 0.75]], np.float32)
    labels = np.array([1], np.int64)
    body, _ = protocol.encode_response(
        "m",
        [protocol.WireTensor("predict_proba", scores), protocol.WireTensor("predict", labels)],
        parameters={"queries_used": 1},
    )
    obj = json.loads(body)
    assert obj["parameters"] == {"queries_used": 1} and obj["outputs"][1]["data"] == [1]
    out = protocol.decode_response(body)
    assert np.array_equal(out["predict_proba"], scores) and np.array_equal(out["predict"], labels)
