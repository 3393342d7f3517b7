"""Property-based fuzzing (hypothesis): any bytes into the HTTP decoder give an answer or a
4xx, never a 5xx or a traceback; any model.json gives a model or a CheckpointError."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from advx.errors import CheckpointError
from advx.models import build, load, save
from advx.models import checkpoint as ckpt
from advx.serve import protocol
from advx.serve.server import _Reject, create_app

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# JSON values, a few levels deep
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)


def _valid_request(rows: int = 2) -> dict[str, Any]:
    x = np.random.default_rng(rows).random((rows, 1, 8, 8), dtype=np.float32)
    return {
        "inputs": [
            {
                "name": "input",
                "shape": [rows, 1, 8, 8],
                "datatype": "FP32",
                "data": x.reshape(-1).tolist(),
            }
        ],  # fmt: skip
        "outputs": [{"name": "predict_proba"}],
    }


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    """A valid request with one field replaced by an arbitrary JSON value."""
    req = _valid_request(draw(st.integers(1, 3)))
    where = draw(st.sampled_from(["top", "input", "output", "params"]))
    key = draw(st.sampled_from(["inputs", "outputs", "parameters", "name", "shape",
                                "datatype", "data", "binary_data_size", "binary_data"]))  # fmt: skip
    value = draw(json_values)
    if where == "top":
        req[key] = value
    elif where == "input":
        req["inputs"][0][key] = value
    elif where == "output":
        req["outputs"][0][key] = value
    else:
        req["inputs"][0]["parameters"] = {key: value}
    return json.dumps(req).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated_requests(),
)


@pytest.fixture(scope="module")
def served(digits_mlp):
    app = create_app(digits_mlp, name="digits", max_queries=10**9, max_rows=64)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield app.state.service, client


@FUZZ
@given(body=bodies, header_length=st.none() | st.integers(-5, 400))
def test_decoder_gives_a_request_or_a_4xx(served, body: bytes, header_length: int | None):
    service, _ = served
    try:
        x, outputs = service.parse(body, header_length)
    except _Reject as e:
        assert 400 <= e.status < 500 and e.message
        return
    assert x.dtype == np.float32 and x.shape[1:] == (1, 8, 8) and 1 <= x.shape[0] <= 64
    assert np.isfinite(x).all() and set(outputs) <= set(service.output_names)


@FUZZ
@given(body=bodies)
def test_decoder_never_raises_anything_but_protocol_errors(body: bytes):
    try:
        req = protocol.decode_request(body)
    except protocol.ProtocolError as e:
        assert str(e)
        return
    assert req.inputs and all(isinstance(t.array, np.ndarray) for t in req.inputs)


header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)


@settings(FUZZ, max_examples=80)
@given(
    body=bodies,
    headers=st.dictionaries(
        st.sampled_from(
            [
                "content-type",
                "content-encoding",
                protocol.HEADER_LENGTH,
                "x-api-key",
                "authorization",
                "content-length",
            ]
        ),  # fmt: skip
        header_values,
        max_size=3,
    ),
    path=st.sampled_from(
        [
            "/v2/models/digits/infer",
            "/v2/models/digits/versions/1/infer",
            "/v2/models/digits/versions/x/infer",
            "/v2/models/other/infer",
        ]
    ),  # fmt: skip
)
def test_http_server_never_answers_5xx(served, body: bytes, headers: dict[str, str], path: str):
    _, client = served
    try:
        r = client.post(path, content=body, headers=headers)
    except Exception:  # the test client refused to send (e.g. a Content-Length lie)
        return
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400:
        assert "error" in r.json()


# ---------------------------------------------------------------------------- model.json
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    clf = build("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[8], dropout=0.0).eval()
    return save(clf, tmp_path_factory.mktemp("fuzz") / "mlp", meta={"dataset": "digits"})


def _try_load(d: Path) -> None:
    try:
        model = load(d)
    except CheckpointError as e:
        assert str(e)
        return
    # what loads is sane: finite bounds in order, a working forward of the right width
    lo, hi = model.bounds
    assert math.isfinite(lo) and math.isfinite(hi) and lo < hi
    out = model(torch.full((1, *model.input_shape), (lo + hi) / 2))
    assert out.shape == (1, model.num_classes)


@FUZZ
@given(
    raw=st.binary(max_size=400)
    | st.integers(1, 100_000).map(lambda k: b'{"format": "advx-checkpoint", "a": ' + b"[" * k)
    | st.integers(1, 100_000).map(lambda k: b"[" * k + b"]" * k)
)
def test_any_model_json_bytes_give_a_checkpoint_error(checkpoint, tmp_path, raw: bytes):
    d = tmp_path / "c"
    if not d.exists():
        shutil.copytree(checkpoint, d)
    (d / "model.json").write_bytes(raw)
    _try_load(d)


_FIELDS = ["format", "format_version", "kind", "arch", "arch_kwargs", "input_shape",
           "num_classes", "class_names", "bounds", "normalisation", "files", "seed"]  # fmt: skip


@FUZZ
@given(
    field=st.sampled_from(_FIELDS),
    sub=st.none() | st.text(max_size=8),
    value=json_values,
    resign=st.booleans(),
)
def test_any_model_json_field_gives_a_model_or_a_checkpoint_error(
    checkpoint, tmp_path, field: str, sub: str | None, value: Any, resign: bool
):
    d = tmp_path / "c"
    if not d.exists():
        shutil.copytree(checkpoint, d)
    info = json.loads((checkpoint / "model.json").read_text())
    if sub is not None and isinstance(info.get(field), dict):
        info[field][sub] = value
    else:
        info[field] = value
    if resign:  # a forger who re-computes the hash: the deeper checks must hold
        info[ckpt.INFO_HASH_KEY] = ckpt.info_digest(info)
    (d / "model.json").write_text(json.dumps(info))
    _try_load(d)
