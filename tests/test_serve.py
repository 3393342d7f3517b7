"""`advx serve` and the HTTP client: protocol, guards (401/403/404/413/429/400), retries,
batching, and an attack over HTTP that reproduces the in-process one exactly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from starlette.testclient import TestClient

from advx.adapters import HttpTarget, sklearn_target, torch_target
from advx.attacks import create
from advx.errors import AccessError, RemoteError
from advx.serve import protocol
from advx.serve.client import HttpStatusError, OipClient
from advx.serve.server import create_app

KEY = "alice-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def infer_body(
    x: np.ndarray,
    outputs: Sequence[str] | None = None,
    name: str = "input",
    datatype: str = "FP32",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": name,
                "shape": list(x.shape),
                "datatype": datatype,
                "data": x.reshape(-1).tolist(),
            }
        ]
    }
    if outputs:
        body["outputs"] = [{"name": o} for o in outputs]
    return body


@pytest.fixture()
def app(digits_mlp):
    return create_app(
        digits_mlp,
        name="digits",
        api_key=[KEY, "bob-key"],
        max_queries=100,
        max_body_bytes=64 * 1024,
    )


@pytest.fixture()
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


# --------------------------------------------------------------------------- protocol
def test_metadata_health_and_index(client, digits_mlp):
    assert client.get("/v2/health/live", headers=AUTH).status_code == 200
    assert client.get("/v2/health/ready", headers=AUTH).status_code == 200
    assert client.get("/v2/models/digits/ready", headers=AUTH).status_code == 200
    meta = client.get("/v2/models/digits", headers=AUTH).json()
    assert meta["name"] == "digits"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert [o["name"] for o in meta["outputs"]] == ["predict_proba", "predict"]
    p = meta["parameters"]
    assert p["num_classes"] == 10 and p["bounds"] == [0.0, 1.0]
    assert p["class_names"] == list(digits_mlp.class_names) and p["max_queries"] == 100
    index = client.post("/v2/repository/index", headers=AUTH, json={}).json()
    assert index == [{"name": "digits", "version": "1", "state": "READY"}]
    assert protocol.BINARY_EXTENSION in client.get("/v2", headers=AUTH).json()["extensions"]


def test_infer_json_and_binary_match_model(client, digits_mlp, digits_data):
    x = digits_data[2][:5]
    ref = torch_target(digits_mlp).scores(x)
    r = client.post("/v2/models/digits/infer", headers=AUTH, json=infer_body(x.numpy()))
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["predict_proba"]["shape"] == [5, 10] and out["predict_proba"]["datatype"] == "FP32"
    assert torch.equal(
        torch.tensor(out["predict_proba"]["data"], dtype=torch.float32).view(5, 10), ref
    )
    assert out["predict"]["data"] == ref.argmax(1).tolist()
    assert r.json()["parameters"] == {"queries_used": 5, "queries_remaining": 95}
    body, headers = protocol.encode_request(x.numpy(), outputs=["predict"], binary=True)
    r = client.post("/v2/models/digits/infer", headers={**AUTH, **headers}, content=body)
    assert r.status_code == 200 and r.headers["content-type"] == protocol.BINARY_CONTENT_TYPE
    got = protocol.decode_response(r.content, int(r.headers[protocol.HEADER_LENGTH]))
    assert got["predict"].dtype == np.int64 and got["predict"].tolist() == ref.argmax(1).tolist()


def test_protocol_round_trip_is_exact():
    x = np.random.default_rng(0).random((3, 2, 5)).astype(np.float32)
    for binary in (False, True):
        body, headers = protocol.encode_request(x, outputs=["predict_proba"], binary=binary)
        length = headers.get(protocol.HEADER_LENGTH)
        req = protocol.decode_request(body, int(length) if length else None)
        assert np.array_equal(req.inputs[0].array, x) and req.inputs[0].array.dtype == np.float32
        assert req.outputs == {"predict_proba": binary}
    with pytest.raises(protocol.ProtocolError, match="NaN"):
        protocol.encode_request(np.full((1, 2), np.nan, dtype=np.float32))


# ----------------------------------------------------------------------------- guards
def test_every_request_needs_the_key(client, digits_data):
    x = digits_data[2][:1].numpy()
    for method, path in [("GET", "/v2/health/ready"), ("GET", "/v2/models/digits"), ("GET", "/nowhere"),
                         ("POST", "/v2/models/digits/infer")]:  # fmt: skip
        r = client.request(method, path, json=infer_body(x))
        assert r.status_code == 401 and "API key" in r.json()["error"]
        assert client.request(method, path, headers={"x-api-key": "wrong"}).status_code == 401
    assert client.get("/v2/models/digits", headers={"x-api-key": KEY}).status_code == 200
    assert (
        client.get("/v2/models/digits", headers={"Authorization": "bearer bob-key"}).status_code
        == 200
    )


def test_body_limit_413(client, app):
    big = np.random.default_rng(0).random((60, 1, 8, 8), dtype=np.float32)  # ~80 kB JSON > 64 kB
    r = client.post("/v2/models/digits/infer", headers=AUTH, json=infer_body(big))
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        for _ in range(100):
            yield b" " * 1024

    r = client.post("/v2/models/digits/infer", headers=AUTH, content=chunks())
    assert r.status_code == 413
    assert app.state.service.used.get(KEY, 0) == 0


def test_budget_429_per_key(client, app, digits_data):
    x = digits_data[2]
    service = app.state.service
    seen = service.target.queries
    assert (
        client.post(
            "/v2/models/digits/infer", headers=AUTH, json=infer_body(x[:60].numpy())
        ).status_code
        == 200
    )
    r = client.post("/v2/models/digits/infer", headers=AUTH, json=infer_body(x[:41].numpy()))
    assert (
        r.status_code == 429
        and "59" not in r.json()["error"]
        and "40 rows left" in r.json()["error"]
    )
    assert (
        client.post(
            "/v2/models/digits/infer", headers=AUTH, json=infer_body(x[:40].numpy())
        ).status_code
        == 200
    )
    r = client.post("/v2/models/digits/infer", headers=AUTH, json=infer_body(x[:1].numpy()))
    assert r.status_code == 429 and "spent" in r.json()["error"]
    # the rejected requests evaluated nothing; bob has his own budget
    assert service.used == {KEY: 100} and service.target.queries - seen == 2 * 100
    bob = {"x-api-key": "bob-key"}
    assert (
        client.post(
            "/v2/models/digits/infer", headers=bob, json=infer_body(x[:100].numpy())
        ).status_code
        == 200
    )


# returns the TestClient's response, an httpx2 or an httpx one depending on which of them
# starlette found, so it is left unannotated
def _post(
    client: TestClient, payload: dict[str, Any] | bytes, headers: dict[str, str] | None = None
):
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post(
        "/v2/models/digits/infer", headers={**AUTH, **(headers or {})}, content=content
    )


def test_malformed_requests_get_400_with_reason(client, app, digits_data):
    x = digits_data[2][:2].numpy()
    ok = infer_body(x)
    cases: dict[str, dict[str, Any] | bytes] = {
        "not valid JSON": b"{inputs: nope",
        "nested too deeply": b"[" * 20_000,
        "must be a JSON object": b"[1, 2]",
        "'inputs' must be a non-empty list": {"inputs": []},
        "input shape must be [N, 1, 8, 8]": infer_body(x.reshape(2, 64)),
        "input datatype must be FP32": infer_body(x.astype(np.int32), datatype="INT32"),
        "unsupported datatype": {**ok, "inputs": [{**ok["inputs"][0], "datatype": "STRING"}]},
        "NaN or inf": b'{"inputs":[{"name":"input","shape":[1,1,8,8],"datatype":"FP32","data":['
        + b",".join([b"NaN"] * 64)
        + b"]}]}",
        "outside the bounds": infer_body(x + 2.0),
        "unknown input": infer_body(x, name="pixels"),
        "unknown output": infer_body(x, outputs=["logits"]),
        "has 128 values but shape": {"inputs": [{**ok["inputs"][0], "shape": [3, 1, 8, 8]}]},
        "ragged or mixed": {"inputs": [{**ok["inputs"][0], "data": [[1.0], [1.0, 2.0]]}]},
        "not valid for datatype FP32": {"inputs": [{**ok["inputs"][0], "data": ["a"] * 128}]},
        "empty batch": {"inputs": [{**ok["inputs"][0], "shape": [0, 1, 8, 8], "data": []}]},
        "'shape' must be a list": {"inputs": [{**ok["inputs"][0], "shape": "2,1,8,8"}]},
    }
    for reason, payload in cases.items():
        r = _post(client, payload)
        assert r.status_code == 400, (reason, r.status_code, r.text)
        assert reason in r.json()["error"], (reason, r.json())
    body, headers = protocol.encode_request(x, binary=True)
    for bad_len in ("-1", "abc", str(len(body) + 1)):
        assert _post(client, body, {**headers, protocol.HEADER_LENGTH: bad_len}).status_code == 400
    assert _post(client, body[:-8], headers).status_code == 400  # truncated tensor bytes
    assert client.post("/v2/models/nope/infer", headers=AUTH, json=ok).status_code == 404
    assert client.get("/v2/models/digits/infer", headers=AUTH).status_code == 405
    # nothing was charged, and the server still answers
    assert app.state.service.used.get(KEY, 0) == 0
    assert _post(client, ok).status_code == 200


def test_labels_only_server(digits_mlp, digits_data):
    x = digits_data[2][:6]
    app = create_app(digits_mlp, name="digits", labels_only=True)
    with TestClient(app) as tc:
        meta = tc.get("/v2/models/digits").json()
        assert [o["name"] for o in meta["outputs"]] == ["predict"] and meta["parameters"][
            "labels_only"
        ]
        r = tc.post(
            "/v2/models/digits/infer", json=infer_body(x.numpy(), outputs=["predict_proba"])
        )
        assert r.status_code == 403 and "labels only" in r.json()["error"]
        r = tc.post("/v2/models/digits/infer", json=infer_body(x.numpy()))
        assert [o["name"] for o in r.json()["outputs"]] == ["predict"]
        with pytest.raises(AccessError, match="labels only"):
            HttpTarget("http://testserver", "digits", http_client=tc)
        target = HttpTarget("http://testserver", "digits", outputs="labels", http_client=tc)
        assert torch.equal(target.labels(x), digits_mlp(x).argmax(1))
        with pytest.raises(AccessError):
            target.scores(x)


def test_serves_sklearn_models(digits_data):
    from sklearn.linear_model import LogisticRegression

    xtr, ytr, xte, _ = digits_data
    est = LogisticRegression(max_iter=200).fit(xtr.reshape(len(xtr), -1).numpy(), ytr.numpy())
    app = create_app(sklearn_target(est, input_shape=(1, 8, 8)), name="lr")
    with TestClient(app) as tc:
        target = HttpTarget("http://testserver", None, http_client=tc)  # the only model
        assert target.model_name == "lr" and target.input_shape == (1, 8, 8)
        np.testing.assert_allclose(
            target.scores(xte[:9]).numpy(),
            est.predict_proba(xte[:9].reshape(9, -1).numpy()),
            rtol=1e-6,
        )


# ----------------------------------------------------------------------------- client
def _mock(handler: Callable[[httpx.Request], httpx.Response]) -> OipClient:
    return OipClient(
        "http://model.test",
        retries=3,
        backoff=0.0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def _answer(request: httpx.Request, scores: bool = True) -> httpx.Response:
    req = protocol.decode_request(request.content)
    x = req.inputs[0].array
    n = x.shape[0]
    probs = np.full((n, 3), 1 / 3, dtype=np.float32)
    probs[:, 0] += x.reshape(n, -1)[:, 0] / 10
    probs /= probs.sum(1, keepdims=True)
    body, headers = protocol.encode_response("m", [protocol.WireTensor("predict_proba", probs)])
    return httpx.Response(200, content=body, headers=headers)


META = {"name": "m", "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 2]}],
        "parameters": {"num_classes": 3, "bounds": [0, 1]}}  # fmt: skip


def _mock_target(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> HttpTarget:
    def route(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=META)
        return handler(request)

    http = httpx.Client(transport=httpx.MockTransport(route))
    return HttpTarget("http://model.test", "m", http_client=http, backoff=0.0, **kw)


def test_batching_splits_rows_and_counts_each_once():
    sizes = []

    def handler(request):
        sizes.append(protocol.decode_request(request.content).inputs[0].array.shape[0])
        return _answer(request)

    t = _mock_target(handler, batch_size=3)
    x = torch.rand(10, 2)
    s = t.scores(x)
    assert sizes == [3, 3, 3, 1] and s.shape == (10, 3) and t.queries == 10
    assert torch.equal(t.labels(x), s.argmax(1)) and t.queries == 20


def test_retries_on_5xx_and_connection_errors_count_queries_once():
    failures = iter([503, "connect", "timeout", None] * 2)

    def handler(request):
        f = next(failures)
        if f == "connect":
            raise httpx.ConnectError("refused", request=request)
        if f == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        if isinstance(f, int):
            return httpx.Response(f, json={"error": "busy"})
        return _answer(request)

    t = _mock_target(handler, retries=3)
    x = torch.rand(4, 2)
    s = t.scores(x)
    assert s.shape == (4, 3) and t.queries == 4
    assert t.client.requests == 5 and t.client.retried == 3  # metadata + 4 attempts

    t = _mock_target(lambda r: httpx.Response(500, json={"error": "boom"}), retries=2)
    with pytest.raises(HttpStatusError, match="failed after 3 attempts.*boom") as e:
        t.scores(x)
    assert e.value.status_code == 500 and t.client.requests == 4

    def down(request):
        raise httpx.ConnectError("refused", request=request)

    c = _mock(down)
    with pytest.raises(RemoteError, match="failed after 4 attempts.*ConnectError"):
        c.model_metadata("m")


def test_4xx_is_not_retried_and_says_what_to_do():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(429, json={"error": "query budget of 10 rows is spent"})

    t = _mock_target(handler)
    with pytest.raises(HttpStatusError, match="budget.*spent") as e:
        t.scores(torch.rand(2, 2))
    assert e.value.status_code == 429 and len(calls) == 1
    t = _mock_target(lambda r: httpx.Response(401, json={"error": "missing key"}))
    with pytest.raises(HttpStatusError, match="api_key="):
        t.scores(torch.rand(2, 2))


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (httpx.Response(200, content=b"<html>"), "malformed response"),
        (httpx.Response(200, json={"outputs": "x"}), "no 'outputs' list"),
        (httpx.Response(200, json={"outputs": [{"name": "other", "shape": [2, 3], "datatype": "FP32", "data": [0.0] * 6}]}), "no output 'predict_proba'"),
        (httpx.Response(200, json={"outputs": [{"name": "predict_proba", "shape": [2, 2], "datatype": "FP32", "data": [0.5] * 4}]}), r"float \(N, 3\)"),
        (httpx.Response(200, json={"outputs": [{"name": "predict_proba", "shape": [1, 3], "datatype": "FP32", "data": [0.5] * 3}]}), "asked 2 rows"),
        (httpx.Response(200, content=b'{"outputs":[{"name":"predict_proba","shape":[2,3],"datatype":"FP32","data":[NaN,0,0,0,0,0]}]}'), "NaN"),
    ],
)  # fmt: skip
def test_malformed_responses_raise_remote_error(response, match):
    t = _mock_target(lambda r: response)
    with pytest.raises(RemoteError, match=match):
        t.scores(torch.rand(2, 2))


def test_labels_output_validated():
    def labels(values: list[Any]) -> Callable[[httpx.Request], httpx.Response]:
        def handler(request: httpx.Request) -> httpx.Response:
            body, headers = protocol.encode_response(
                "m", [protocol.WireTensor("predict", np.array(values))]
            )
            return httpx.Response(200, content=body, headers=headers)

        return handler

    t = _mock_target(labels([[2], [0]]), outputs="labels")
    assert t.labels(torch.rand(2, 2)).tolist() == [2, 0]  # MLServer's (N, 1) labels
    for bad in ([3, 0], [0.5, 1.0], [-1, 0]):
        with pytest.raises(RemoteError, match="class indices"):
            _mock_target(labels(bad), outputs="labels").labels(torch.rand(2, 2))


def test_api_key_headers():
    seen = []

    def handler(request):
        seen.append((request.headers.get("authorization"), request.headers.get("x-api-key")))
        return httpx.Response(200, json=META)

    for header in ("Authorization", "x-api-key"):
        c = OipClient("http://m.test", api_key="s3", api_key_header=header,
                      http_client=httpx.Client(transport=httpx.MockTransport(handler)))  # fmt: skip
        c.model_metadata("m")
    assert seen == [("Bearer s3", None), (None, "s3")]
    with pytest.raises(RemoteError, match="not an HTTP URL"):
        OipClient("127.0.0.1:8080")


def test_explicit_metadata_for_servers_that_do_not_declare_it():
    def route(request):
        if request.method == "GET":
            return httpx.Response(
                200, json={"name": "m", "inputs": [], "outputs": [], "parameters": {}}
            )
        req = protocol.decode_request(request.content)
        assert req.inputs[0].array.shape == (2, 4)  # sent in the server's flat layout
        return httpx.Response(200, json={"outputs": [{"name": "predict_proba", "shape": [2, 2], "datatype": "FP64", "data": [0.25, 0.75, 1.0, 0.0]}]})  # fmt: skip

    http = httpx.Client(transport=httpx.MockTransport(route))
    with pytest.raises(Exception, match="input_shape= and num_classes="):
        HttpTarget("http://m.test", "m", http_client=http)
    t = HttpTarget(
        "http://m.test",
        "m",
        http_client=http,
        input_shape=(1, 2, 2),
        num_classes=2,
        wire_shape=(4,),
    )
    assert t.bounds == (0.0, 1.0)
    assert t.scores(torch.rand(2, 1, 2, 2)).tolist() == [[0.25, 0.75], [1.0, 0.0]]


# ------------------------------------------------------------- `advx serve` subprocess
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def zoo_mlp(digits_mlp, tmp_path_factory):
    """The trained digits MLP fixture as a zoo checkpoint directory (same layers, so its
    weights load into the zoo's ``mlp`` with one hidden layer of 128 and no dropout)."""
    from advx import models

    clf = models.build("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[128], dropout=0.0)
    clf.load_state_dict(digits_mlp.state_dict())
    path = models.save(
        clf.eval(), tmp_path_factory.mktemp("zoo") / "digits-mlp", meta={"dataset": "digits"}
    )
    return models.load(path), path


BUDGET = 3000


@pytest.fixture(scope="module")
def served(zoo_mlp, tmp_path_factory):
    """`python -m advx serve` on a free loopback port with three keys, a per-key budget
    and a 200 kB body limit; yields (url, process)."""
    _, path = zoo_mlp
    logs = tmp_path_factory.mktemp("serve-logs")
    for attempt in range(3):  # a free port can be taken between probing and binding
        port = _free_port()
        cmd = [sys.executable, "-m", "advx", "serve", str(path), "--port", str(port), "--name", "digits",
               "--api-key", KEY, "--api-key", "bob-key", "--api-key", "carol-key",
               "--max-queries", str(BUDGET), "--max-body-bytes", "200000"]  # fmt: skip
        log = (logs / f"serve-{attempt}.log").open("wb")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        client = OipClient(url, api_key=KEY, retries=0, timeout=5.0)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if client.ready():
                    break
            except RemoteError:
                pass
            time.sleep(0.2)
        client.close()
        if proc.poll() is None and time.monotonic() < deadline:
            break
        proc.kill()
        proc.wait()
        log.close()
    else:
        pytest.fail("advx serve did not start:\n" + (logs / "serve-2.log").read_text()[-3000:])
    yield url, proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def test_served_metadata_comes_from_the_checkpoint(served, zoo_mlp):
    url, _ = served
    clf, _ = zoo_mlp
    t = HttpTarget(url, "digits", api_key=KEY)
    assert (t.input_shape, t.num_classes, t.bounds) == ((1, 8, 8), 10, (0.0, 1.0))
    assert t.class_names == clf.class_names and t.binary is True
    assert t.client.model_metadata("digits")["parameters"]["dataset"] == "digits"


@pytest.mark.parametrize("binary", [True, False])
def test_square_over_http_equals_in_process(served, zoo_mlp, digits_data, binary):
    url, _ = served
    clf, _ = zoo_mlp
    x, y = digits_data[2][:10], digits_data[3][:10]
    attack = create("square", eps=0.15, max_queries=80, steps=80, p_init=0.3, seed=0)
    remote = HttpTarget(url, "digits", api_key=KEY, binary=binary)
    r_http = attack(remote, x, y)
    r_local = attack(torch_target(clf), x, y)
    assert torch.equal(r_http.x_adv, r_local.x_adv)
    assert torch.equal(r_http.queries, r_local.queries) and int(r_http.queries.max()) <= 80
    assert torch.equal(r_http.status, r_local.status)
    assert (r_http.pred_adv != y).sum() > (r_http.pred_clean != y).sum()  # it does fool the model
    # each row counted once on the client, and the server charged exactly those rows
    assert remote.queries == int(r_http.queries.sum()) + r_http.overhead_queries
    left = remote.client.model_metadata("digits")  # metadata is free
    assert left["parameters"]["max_queries"] == BUDGET


def test_budget_enforced_over_http(served, digits_data):
    url, _ = served
    x = digits_data[2]
    t = HttpTarget(url, "digits", api_key="carol-key", batch_size=500)  # 128 kB requests
    rows = torch.cat([x] * 3)[:1000]
    for _ in range(BUDGET // 1000):
        t.scores(rows)
    with pytest.raises(HttpStatusError, match="budget") as e:
        t.scores(rows[:1])
    assert e.value.status_code == 429 and t.client.retried == 0
    with pytest.raises(RemoteError, match="429"):
        create("square", eps=0.1, max_queries=10, steps=10)(t, x[:4], digits_data[3][:4])
    # other keys keep their own budgets
    assert HttpTarget(url, "digits", api_key="bob-key").scores(x[:2]).shape == (2, 10)


def test_guards_over_http(served, digits_data):
    url, _ = served
    x = digits_data[2]
    with pytest.raises(HttpStatusError, match="API key") as e:
        HttpTarget(url, "digits")
    assert e.value.status_code == 401
    with pytest.raises(HttpStatusError, match="API key"):
        HttpTarget(url, "digits", api_key="mallory")
    big = HttpTarget(url, "digits", api_key="bob-key", batch_size=1000, binary=False)
    with pytest.raises(HttpStatusError, match="too large") as e:
        big.scores(torch.cat([x] * 3)[:1000])  # ~1.3 MB of JSON > 200 kB
    assert e.value.status_code == 413
    big.batch_size = 100  # the fix the message suggests
    assert big.scores(x[:300]).shape == (300, 10)
    with pytest.raises(HttpStatusError) as e:
        HttpTarget(url, "nope", api_key=KEY)
    assert e.value.status_code == 404


def test_server_survives_garbage(served, digits_data):
    url, proc = served
    port = int(url.rsplit(":", 1)[1])
    junk = [
        b"\x00\xff\xfe garbage\r\n\r\n",
        bytes(range(256)) * 4,
        b'POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{"inputs"',
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ]
    for payload in junk:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            try:
                s.recv(4096)
            except OSError:
                pass
    http = httpx.Client(base_url=url, headers=AUTH, timeout=10)
    for body in (b"{", b"null", b'{"inputs": [{"name": "input", "shape": [1e9], "datatype": "FP32", "data": []}]}',
                 b'{"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": {"a": 1}}]}'):  # fmt: skip
        assert http.post("/v2/models/digits/infer", content=body).status_code == 400
    r = http.post(
        "/v2/models/digits/infer", content=b"{}", headers={protocol.HEADER_LENGTH: "999999"}
    )
    assert r.status_code == 400
    assert proc.poll() is None
    assert HttpTarget(url, "digits", api_key=KEY).scores(digits_data[2][:3]).shape == (3, 10)


def test_cli_attack_over_http(served, tmp_path):
    from typer.testing import CliRunner

    from advx.cli import app

    url, _ = served
    out = tmp_path / "run"
    args = ["attack", url, "--model-name", "digits", "--api-key", "bob-key", "--attack", "square",
            "--eps", "0.2", "--max-queries", "40", "--n", "12", "--json", "--out", str(out)]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    stats = json.loads(r.stdout.strip().splitlines()[-1])
    assert 0 < stats["clean_accuracy"] <= 1 and stats["robust_accuracy"] <= stats["clean_accuracy"]
    assert stats["mean_queries"] <= 40
    assert json.loads((out / "summary.json").read_text())["data"]  # the dataset the server named
    # a gradient attack on an HTTP endpoint is a clear error, not a crash
    r = CliRunner().invoke(app, ["attack", url, "--model-name", "digits", "--api-key", "bob-key",
                                 "--attack", "pgd", "--eps", "0.1", "--n", "4"])  # fmt: skip
    assert r.exit_code == 2 and "needs gradients" in r.output
    r = CliRunner().invoke(app, ["attack", url, "--attack", "square", "--eps", "0.1", "--n", "4"])
    assert r.exit_code == 2 and "API key" in r.output
