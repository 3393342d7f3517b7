"""`advx serve` limits: rows per request, fair turns for small requests, request/body/
header/idle timeouts, requests in flight per key, gzip bodies, versions, health without a
key, JSON booleans, per-request query accounting, and an empty ADVX_API_KEY."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
import zlib
from typing import Any

import numpy as np
import pytest
import torch
from starlette.applications import Starlette
from starlette.testclient import TestClient

from advx.adapters import HttpTarget
from advx.errors import InputError
from advx.serve import protocol
from advx.serve.server import _Guard, create_app, server_config
from advx.targets import ScoreBox

KEY = "alice-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
INFER = "/v2/models/digits/infer"


def body_of(x: np.ndarray, data: list[Any] | None = None) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "input",
                "shape": list(x.shape),
                "datatype": "FP32",
                "data": x.reshape(-1).tolist() if data is None else data,
            }
        ]
    }


@pytest.fixture()
def rows(digits_data) -> np.ndarray:
    out: np.ndarray = digits_data[2][:200].numpy()
    return out


def service_of(c: TestClient) -> Any:
    """The serving state ``create_app`` keeps on its (Starlette) app."""
    assert isinstance(c.app, Starlette)
    return c.app.state.service


def make_client(model, **kw) -> TestClient:
    opts = {"name": "digits", "api_key": KEY, "max_queries": 1000, **kw}
    return TestClient(create_app(model, **opts), raise_server_exceptions=False)


# ----------------------------------------------------------------------- rows per request
def test_rows_per_request_capped_and_published(digits_mlp, rows):
    with make_client(digits_mlp, max_rows=50) as c:
        r = c.post(INFER, headers=AUTH, json=body_of(rows[:51]))
        assert r.status_code == 413 and "51 rows" in r.json()["error"]
        assert "limit of 50 rows per request" in r.json()["error"]
        assert service_of(c).used.get(KEY, 0) == 0  # nothing charged
        assert c.post(INFER, headers=AUTH, json=body_of(rows[:50])).status_code == 200
        assert c.get("/v2/models/digits", headers=AUTH).json()["parameters"]["max_rows"] == 50
        # the client reads the limit and splits its batches to fit
        t = HttpTarget("http://testserver", "digits", api_key=KEY, http_client=c, batch_size=256)
        assert t.batch_size == 50
        assert t.scores(torch.from_numpy(rows[:120])).shape == (120, 10)


def test_default_row_cap_is_safe(digits_mlp):
    app = create_app(digits_mlp, name="digits")
    assert 1 <= app.state.service.max_rows <= 4096


@pytest.mark.parametrize(
    "kw",
    [
        {"max_rows": 0},
        {"max_rows": 1.5},
        {"chunk_rows": True},
        {"request_timeout": 0},
        {"request_timeout": float("inf")},
        {"body_timeout": -1},
        {"max_concurrent": 0},
    ],
)
def test_bad_limits_refused(digits_mlp, kw):
    with pytest.raises(InputError):
        create_app(digits_mlp, name="digits", **kw)


# ------------------------------------------------------------------------------ fairness
def test_small_request_is_not_starved_by_a_large_one():
    """A 1-row request sent while a 1000-row one is being evaluated is answered between
    the large one's chunks, not after all of them."""
    calls: list[str] = []
    started = threading.Event()
    release = threading.Event()

    def fn(x: torch.Tensor) -> torch.Tensor:
        kind = "small" if x.shape[0] == 1 else "big"
        calls.append(kind)
        if kind == "big" and len(calls) == 1:
            started.set()
            release.wait(10)  # hold the first chunk until the small request is queued
        return torch.full((x.shape[0], 2), 0.5)

    target = ScoreBox(fn, input_shape=(3,), num_classes=2)
    app = create_app(target, name="m", chunk_rows=100, max_rows=1000)
    service = app.state.service
    big = np.zeros((1000, 3), dtype=np.float32)
    small = np.zeros((1, 3), dtype=np.float32)
    out: dict[str, Any] = {}
    tb = threading.Thread(target=lambda: out.setdefault("big", service.evaluate(big, ["predict"])))
    tb.start()
    assert started.wait(10)
    ts = threading.Thread(
        target=lambda: out.setdefault("small", service.evaluate(small, ["predict"]))
    )
    ts.start()
    for _ in range(1000):  # wait until the small request is in line for the lock
        if service._lock._queue:
            break
        time.sleep(0.01)
    release.set()
    tb.join(30)
    ts.join(30)
    assert "small" in calls
    first_small = calls.index("small")
    assert calls[first_small + 1 :].count("big") >= 5, calls  # it did not wait for all 10
    assert out["big"][0].array.shape == (1000,) and out["small"][0].array.shape == (1,)


def test_request_timeout_answers_503_and_charges_nothing(digits_mlp, rows):
    with make_client(digits_mlp, request_timeout=0.2) as c:
        service = service_of(c)
        assert service._lock.acquire()  # someone else holds the model
        try:
            r = c.post(INFER, headers=AUTH, json=body_of(rows[:3]))
        finally:
            service._lock.release()
        assert r.status_code == 503 and "within 0.2 s" in r.json()["error"]
        assert service.used.get(KEY, 0) == 0
        assert c.post(INFER, headers=AUTH, json=body_of(rows[:3])).status_code == 200


# ---------------------------------------------------------------- requests in flight per key
def test_requests_in_flight_per_key_capped():
    gate = asyncio.Event

    async def scenario() -> list[int | str]:
        release = gate()

        async def inner(scope, receive, send):
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        guard = _Guard(inner, (KEY, "bob"), 1 << 20, max_concurrent=2)
        statuses: list[int] = []

        def call(key: str):
            scope = {
                "type": "http",
                "path": INFER,
                "headers": [(b"x-api-key", key.encode())],
            }

            async def receive():
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message):
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            return guard(scope, receive, send)

        tasks = [asyncio.create_task(call(KEY)) for _ in range(3)]
        tasks.append(asyncio.create_task(call("bob")))  # bob has his own allowance
        await asyncio.sleep(0.05)
        early = list(statuses)
        release.set()
        await asyncio.gather(*tasks)
        assert guard.in_flight == {}
        marked: list[int | str] = [*early, "|", *statuses[len(early) :]]
        return marked

    result = asyncio.run(scenario())
    early = result[: result.index("|")]
    assert early == [429], result  # the third request of alice, at once
    assert sorted(result[result.index("|") + 1 :]) == [200, 200, 200]


# ---------------------------------------------------------------- protocol corner cases
def test_unknown_version_is_404(digits_mlp, rows):
    with make_client(digits_mlp) as c:
        ok = body_of(rows[:1])
        assert (
            c.post("/v2/models/digits/versions/1/infer", headers=AUTH, json=ok).status_code == 200
        )
        r = c.post("/v2/models/digits/versions/999/infer", headers=AUTH, json=ok)
        assert r.status_code == 404 and "unknown version '999'" in r.json()["error"]
        assert c.get("/v2/models/digits/versions/999", headers=AUTH).status_code == 404
        assert c.get("/v2/models/digits/versions/999/ready", headers=AUTH).status_code == 404
        assert service_of(c).used[KEY] == 1


def test_json_booleans_are_not_fp32(digits_mlp, rows):
    with make_client(digits_mlp) as c:
        for data in ([True] * 64, [True] + [0.5] * 63, [[0.5] * 63 + [False]]):
            r = c.post(INFER, headers=AUTH, json=body_of(rows[:1], data=data))
            assert r.status_code == 400 and "true/false" in r.json()["error"], r.text
        assert service_of(c).used.get(KEY, 0) == 0
    x = protocol.decode_request(
        json.dumps(
            {"inputs": [{"name": "b", "shape": [2], "datatype": "BOOL", "data": [True, False]}]}
        ).encode()
    )
    assert x.inputs[0].array.tolist() == [True, False]  # BOOL tensors still take them


def test_gzip_bodies_decoded_other_encodings_415(digits_mlp, rows):
    with make_client(digits_mlp, max_body_bytes=64 * 1024) as c:
        raw = json.dumps(body_of(rows[:4])).encode()
        plain = c.post(INFER, headers=AUTH, content=raw).json()
        r = c.post(INFER, headers={**AUTH, "Content-Encoding": "gzip"}, content=gzip.compress(raw))
        assert r.status_code == 200, r.text
        assert r.json()["outputs"] == plain["outputs"]
        r = c.post(INFER, headers={**AUTH, "Content-Encoding": "br"}, content=raw)
        assert r.status_code == 415 and "Content-Encoding 'br'" in r.json()["error"]
        r = c.post(INFER, headers={**AUTH, "Content-Encoding": "gzip"}, content=raw)
        assert r.status_code == 400 and "gzip" in r.json()["error"]
        bomb = gzip.compress(b" " * (10 * 1024 * 1024))  # 10 kB that inflate to 10 MB
        r = c.post(INFER, headers={**AUTH, "Content-Encoding": "gzip"}, content=bomb)
        assert r.status_code == 413 and "decompressed" in r.json()["error"]
        deflate = zlib.compress(raw)
        r = c.post(INFER, headers={**AUTH, "Content-Encoding": "gzip"}, content=deflate)
        assert r.status_code == 400
        assert service_of(c).used[KEY] == 8


def test_queries_used_is_per_request_under_concurrency(digits_mlp, rows):
    sizes = [1, 2, 3, 5, 8, 13, 21, 34]
    with make_client(digits_mlp, max_queries=1000, chunk_rows=4) as c:
        answers: list[dict[str, Any]] = []

        def post(k: int) -> None:
            r = c.post(INFER, headers=AUTH, json=body_of(rows[:k]))
            answers.append(r.json()["parameters"])

        threads = [threading.Thread(target=post, args=(k,)) for k in sizes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert sorted(a["queries_used"] for a in answers) == sorted(sizes)
    # each answer's remaining is what was left right after its own rows were charged
    remaining = sorted((a["queries_remaining"] for a in answers), reverse=True)
    used = [a["queries_used"] for a in sorted(answers, key=lambda a: -a["queries_remaining"])]
    assert remaining == [1000 - s for s in np.cumsum(used).tolist()]


def test_health_without_key_is_a_choice(digits_mlp):
    with make_client(digits_mlp) as c:  # default: the key is needed everywhere
        assert c.get("/v2/health/ready").status_code == 401
    with make_client(digits_mlp, public_health=True) as c:
        assert c.get("/v2/health/live").status_code == 200
        assert c.get("/v2/health/ready").status_code == 200
        assert c.get("/v2/models/digits").status_code == 401
        assert c.post(INFER, json={}).status_code == 401


def test_empty_env_api_key_refused(tmp_path):
    from typer.testing import CliRunner

    from advx.cli import app

    r = CliRunner().invoke(app, ["serve", str(tmp_path / "model")], env={"ADVX_API_KEY": ""})
    assert r.exit_code == 2 and "ADVX_API_KEY is set but empty" in r.output, r.output
    r = CliRunner().invoke(app, ["serve", str(tmp_path / "model"), "--api-key", ""])
    assert r.exit_code == 2 and "non-empty" in r.output


def test_serve_help_documents_the_limits():
    from typer.testing import CliRunner

    from advx.cli import app

    out = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output
    for flag in ("--max-rows", "--max-body-bytes", "--request-timeout", "--body-timeout",
                 "--idle-timeout", "--header-timeout", "--max-concurrent", "--public-health"):  # fmt: skip
        assert flag in out


# -------------------------------------------------------------- a real server: timeouts
@pytest.fixture()
def live(digits_mlp):
    """uvicorn in a thread on a free loopback port, with 1 s timeouts."""
    import uvicorn

    app = create_app(digits_mlp, name="digits", api_key=KEY, body_timeout=1.0)
    server = uvicorn.Server(server_config(app, port=0, idle_timeout=1, header_timeout=1.0))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.02)
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]
    yield port
    server.should_exit = True
    thread.join(10)


def _closed_by_server(s: socket.socket, trickle: bytes = b"", limit: float = 15.0) -> bool:
    """Send ``trickle`` one byte at a time; True once the server closes the connection,
    False if it is still open after ``limit`` seconds."""
    s.settimeout(0.2)
    end = time.monotonic() + limit
    i = 0
    while time.monotonic() < end:
        try:
            if i < len(trickle):
                s.send(trickle[i : i + 1])
                i += 1
            if s.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:  # reset or broken pipe: closed
            return True
    return False


def test_idle_connection_closed(live):
    with socket.create_connection(("127.0.0.1", live)) as s:
        assert _closed_by_server(s)


def test_slow_loris_head_closed(live):
    head = f"GET /v2/models/digits HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\n".encode()
    head += b"X-Slow: " + b"a" * 500  # never ends: one byte every 0.2 s
    with socket.create_connection(("127.0.0.1", live)) as s:
        assert _closed_by_server(s, head)


def test_kept_alive_connection_closed_after_a_response(live):
    req = f"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", live)) as s:
        s.sendall(req)
        s.settimeout(5)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        assert _closed_by_server(s, b"GET /v2/health/live HTTP/1.1\r\nHost")


def test_slow_body_answered_408(live):
    head = (
        f"POST {INFER} HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", live)) as s:
        s.sendall(head + b'{"inputs": ')
        s.settimeout(10)
        answer = b""
        while b"did not arrive" not in answer:  # head and body may come in two packets
            part = s.recv(4096)
            if not part:
                break
            answer += part
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"did not arrive within 1 s" in answer


# ------------------------------------------------------------------------------- soak
SOAK_BUDGET = 30_000
BIG_KEYS = [f"big{i}" for i in range(8)]
SMALL_KEYS = ["small-a", "small-b"]


@pytest.fixture()
def soak_server(tmp_path_factory):
    """`python -m advx serve` (a subprocess, loopback) of a deliberately heavy MLP, so a
    1024-row request costs real compute; yields (url, pid). A fresh server (and fresh
    budgets) for each soak."""
    import os
    import subprocess
    import sys

    from advx import models
    from advx.serve.client import OipClient

    torch.manual_seed(0)
    clf = models.build("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[1024, 1024],
                       dropout=0.0).eval()  # fmt: skip
    path = models.save(clf, tmp_path_factory.mktemp("soak") / "heavy", meta={"dataset": "digits"})
    keys = [a for k in [KEY, *SMALL_KEYS, *BIG_KEYS] for a in ("--api-key", k)]
    log = tmp_path_factory.mktemp("soak-log") / "serve.log"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "advx", "serve", str(path), "--port", str(port), "--name",
           "digits", *keys, "--max-queries", str(SOAK_BUDGET), "--max-rows", "1024"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    client = OipClient(url, api_key=KEY, retries=0, timeout=5.0)
    for _ in range(600):
        if proc.poll() is not None:
            break
        try:
            if client.ready():
                break
        except Exception:
            pass
        time.sleep(0.1)
    client.close()
    if proc.poll() is not None:
        pytest.fail("advx serve did not start:\n" + log.read_text()[-3000:])
    yield url, proc.pid
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


NAN_BODY = (
    b'{"inputs":[{"name":"input","shape":[1,1,8,8],"datatype":"FP32","data":['
    + b",".join([b"NaN"] * 64)
    + b"]}]}"
)


def _soak_requests(rng: np.random.Generator, i: int) -> tuple[str, str, bytes, dict[str, str], str]:
    """One mixed request: (kind, path, body, headers, expected status class)."""
    key = SMALL_KEYS[i % 2]
    auth = {"x-api-key": key}
    x = rng.random((1, 1, 8, 8), dtype=np.float32)
    raw = json.dumps(body_of(x)).encode()
    r = rng.random()
    if r < 0.60:
        return "one-row", INFER, raw, auth, "2xx"
    if r < 0.66:
        rows = rng.random((int(rng.integers(2, 17)), 1, 8, 8), dtype=np.float32)
        body, h = protocol.encode_request(rows, binary=True)
        return "binary", INFER, body, {**auth, **h}, "2xx"
    if r < 0.70:
        return "gzip", INFER, gzip.compress(raw), {**auth, "content-encoding": "gzip"}, "2xx"
    bad = {
        0: ("bad-json", INFER, b"{inputs", auth, "400"),
        1: ("nan", INFER, NAN_BODY, auth, "400"),
        2: ("bool", INFER, json.dumps(body_of(x, [True] * 64)).encode(), auth, "400"),
        3: ("shape", INFER, json.dumps(body_of(x.reshape(1, 64))).encode(), auth, "400"),
        4: ("wrong-key", INFER, raw, {"x-api-key": "mallory"}, "401"),
        5: ("no-model", "/v2/models/nope/infer", raw, auth, "404"),
        6: ("no-version", "/v2/models/digits/versions/999/infer", raw, auth, "404"),
        7: ("br", INFER, raw, {**auth, "content-encoding": "br"}, "415"),
        8: ("bounds", INFER, json.dumps(body_of(x + 3)).encode(), auth, "400"),
        9: ("too-many-rows", INFER, b"", auth, "413"),
    }[int(rng.integers(0, 10))]
    if bad[0] == "too-many-rows":
        body, h = protocol.encode_request(np.zeros((1025, 1, 8, 8), np.float32), binary=True)
        return "too-many-rows", INFER, body, {**auth, **h}, "413"
    return bad


def soak(url: str, pid: int, total: int, seconds: float) -> dict[str, Any]:
    """Send ``total`` requests (about 10% of them 256..1024-row binary requests from two
    threads, the rest a mix of valid and invalid small ones from six threads), stopping
    after ``seconds`` at the latest. Returns the figures."""
    import httpx
    import psutil

    server = psutil.Process(pid)
    lock = threading.Lock()
    state = {"sent": 0, "rss_warm": 0}  # rss_warm: 0 until measured
    statuses: dict[str, int] = {}
    wrong: list[tuple[str, str, int, str]] = []
    charged: dict[str, list[tuple[int, int]]] = {}  # key -> [(queries_used, remaining)]
    small_lat: list[float] = []
    large_lat: list[float] = []
    budget_429 = [0]
    deadline = time.monotonic() + seconds
    n_large = total // 10

    def take() -> int | None:
        with lock:
            if state["sent"] >= total or time.monotonic() > deadline:
                return None
            state["sent"] += 1
            if state["sent"] == total // 10:
                state["rss_warm"] = server.memory_info().rss
            return state["sent"]

    def record(key: str, resp: httpx.Response) -> str:
        cls = f"{resp.status_code // 100}xx"
        with lock:
            statuses[str(resp.status_code)] = statuses.get(str(resp.status_code), 0) + 1
            if resp.status_code == 200:
                head = int(resp.headers.get(protocol.HEADER_LENGTH) or len(resp.content))
                p = json.loads(resp.content[:head])["parameters"]
                charged.setdefault(key, []).append((p["queries_used"], p["queries_remaining"]))
            elif resp.status_code == 429 and "budget" in resp.text:
                budget_429[0] += 1
        return cls

    def mixed(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=url, timeout=60) as http:
            while (i := take()) is not None:
                kind, path, body, headers, want = _soak_requests(rng, i)
                t0 = time.perf_counter()
                resp = http.post(path, content=body, headers=headers)
                dt = time.perf_counter() - t0
                got = record(headers.get("x-api-key", ""), resp)
                if kind == "one-row" and resp.status_code == 200:
                    with lock:
                        small_lat.append(dt)
                if (want == "2xx" and got != "2xx") or (
                    want != "2xx" and str(resp.status_code) != want
                ):
                    with lock:
                        wrong.append((kind, want, resp.status_code, resp.text[:200]))

    def large(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=url, timeout=60) as http:
            j = seed
            while len(large_lat) < n_large and take() is not None:
                rows = rng.random((int(rng.integers(256, 1025)), 1, 8, 8), dtype=np.float32)
                key = BIG_KEYS[j % len(BIG_KEYS)]
                j += 2
                body, h = protocol.encode_request(rows, outputs=["predict_proba"], binary=True)
                t0 = time.perf_counter()
                resp = http.post(INFER, content=body, headers={"x-api-key": key, **h})
                dt = time.perf_counter() - t0
                record(key, resp)
                if resp.status_code == 200:
                    with lock:
                        large_lat.append(dt)
                elif not (resp.status_code == 429 and "budget" in resp.text):
                    with lock:
                        wrong.append(("large", "2xx/429", resp.status_code, resp.text[:200]))

    t_start = time.monotonic()
    threads = [threading.Thread(target=mixed, args=(s,)) for s in range(6)]
    threads += [threading.Thread(target=large, args=(s,)) for s in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    rss_after = server.memory_info().rss
    return {
        "requests": state["sent"],
        "seconds": round(time.monotonic() - t_start, 1),
        "statuses": dict(sorted(statuses.items())),
        "wrong": wrong,
        "charged": charged,
        "budget_429": budget_429[0],
        "rss_warm_mb": round((state["rss_warm"] or rss_after) / 2**20, 1),
        "rss_after_mb": round(rss_after / 2**20, 1),
        "one_row_p50_ms": round(1000 * float(np.percentile(small_lat, 50)), 1),
        "one_row_p99_ms": round(1000 * float(np.percentile(small_lat, 99)), 1),
        "large_p50_ms": round(1000 * float(np.percentile(large_lat, 50)), 1) if large_lat else None,
        "large_requests": len(large_lat),
    }


def _check_soak(fig: dict[str, Any], total: int) -> None:
    summary = {k: v for k, v in fig.items() if k not in ("charged", "wrong")}
    print("\nsoak figures:", json.dumps(summary))  # the issue asks for these numbers
    assert fig["requests"] == total
    assert not [s for s in fig["statuses"] if s.startswith("5")], fig["statuses"]
    assert not fig["wrong"], fig["wrong"][:5]
    # budgets exact: each key was charged exactly the rows it was answered for
    for key, answers in fig["charged"].items():
        used = sum(u for u, _ in answers)
        assert SOAK_BUDGET - min(r for _, r in answers) == used, key
        assert used <= SOAK_BUDGET
    assert fig["rss_after_mb"] <= 1.2 * fig["rss_warm_mb"]
    # small requests are not starved: they wait for chunks, not for whole large requests
    # (a ratio, so machine speed cancels; before the fix it was 3.9 on the machine where
    # this was written, 0.9-1.8 after, with the machine loaded 10x over)
    assert fig["large_requests"] >= 5
    assert fig["one_row_p99_ms"] <= 2 * fig["large_p50_ms"]


def _spend_to_the_end(url: str, key: str) -> None:
    """After a soak: spend ``key``'s budget with full-size requests; once a request needs
    more rows than are left, it is refused (429, "budget") and charges nothing."""
    import httpx

    rows = np.zeros((1024, 1, 8, 8), np.float32)
    body, h = protocol.encode_request(rows, outputs=["predict_proba"], binary=True)
    remaining = None
    with httpx.Client(base_url=url, timeout=60) as http:
        for _ in range(SOAK_BUDGET // 1024 + 2):
            resp = http.post(INFER, content=body, headers={"x-api-key": key, **h})
            if resp.status_code != 200:
                break
            head = int(resp.headers.get(protocol.HEADER_LENGTH) or len(resp.content))
            remaining = json.loads(resp.content[:head])["parameters"]["queries_remaining"]
        assert resp.status_code == 429 and "budget" in resp.text, resp.text[:200]
        assert remaining is None or remaining < 1024  # refused only when it would overdraw
        one = protocol.encode_request(rows[:1], binary=True)
        if remaining:  # what is left is still served, to the row
            ok = http.post(INFER, content=one[0], headers={"x-api-key": key, **one[1]})
            assert ok.status_code == 200


def test_soak_short(soak_server):
    url, pid = soak_server
    _check_soak(soak(url, pid, total=1000, seconds=120), 1000)
    _spend_to_the_end(url, BIG_KEYS[0])


@pytest.mark.slow
def test_soak_10000(soak_server):
    url, pid = soak_server
    fig = soak(url, pid, total=10_000, seconds=600)
    _check_soak(fig, 10_000)
    # the large keys may or may not have run dry during the mix (it depends on how fast
    # the small requests finish the 10,000); spend one to the end to see the refusal
    _spend_to_the_end(url, BIG_KEYS[1])


def test_evaluation_stops_between_chunks_once_the_client_is_gone():
    calls: list[int] = []
    stop = threading.Event()

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        stop.set()  # the client goes away during the first chunk
        return torch.full((x.shape[0], 2), 0.5)

    app = create_app(ScoreBox(fn, input_shape=(3,), num_classes=2), name="m", chunk_rows=10)
    from advx.serve.server import _Reject

    with pytest.raises(_Reject):
        app.state.service.evaluate(np.zeros((100, 3), np.float32), ["predict"], stop=stop)
    assert calls == [10]  # one chunk, not ten
