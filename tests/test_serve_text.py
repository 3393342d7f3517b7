"""`advx serve` for text models: BYTES tensors (JSON strings and the binary extension's
length-prefixed UTF-8), text attacks through HttpTextTarget under the same budgets and
query counts as in-process, clear 4xx answers to malformed texts, and the CLI serving a
text checkpoint as a text model."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import torch
from starlette.testclient import TestClient

from advx.serve import protocol
from advx.serve.client import HttpStatusError
from advx.serve.server import create_app
from advx.text import recipes
from advx.text.adapters import HttpTextTarget
from advx.text.target import TextTarget
from tests._text_helpers import trained_bow

TEXTS = [
    "i love this so much, best day ever",
    "this is awful and i hate it",
    "what a wonderful surprise from my friends",
    "worst service, never again",
]
URL = "http://testserver"
INFER = "/v2/models/tweets/infer"


@pytest.fixture(scope="module")
def bow() -> Any:
    clf, _ = trained_bow()
    return clf


@pytest.fixture(scope="module")
def bow_path() -> Any:
    return trained_bow()[1]


@pytest.fixture()
def client(bow: Any) -> Iterator[TestClient]:
    app = create_app(bow, name="tweets", max_rows=3)
    with TestClient(app, raise_server_exceptions=False) as tc:
        yield tc


def _bytes_body(texts: Sequence[object], **tensor: Any) -> dict[str, Any]:
    t = {"name": "input", "shape": [len(texts)], "datatype": "BYTES", "data": texts}
    return {"inputs": [{**t, **tensor}]}


def _binary(blob: bytes, shape: list[int], outputs: Any = None) -> tuple[bytes, dict[str, str]]:
    """A binary-extension request whose BYTES input is ``blob`` as is."""
    head: dict[str, Any] = {
        "inputs": [
            {
                "name": "input",
                "shape": shape,
                "datatype": "BYTES",
                "parameters": {"binary_data_size": len(blob)},
            }
        ]
    }
    if outputs:
        head["outputs"] = outputs
    text = json.dumps(head).encode()
    headers = {"content-type": protocol.BINARY_CONTENT_TYPE, protocol.HEADER_LENGTH: str(len(text))}
    return text + blob, headers


def _labels(bow: Any, texts: list[str]) -> list[int]:
    return [int(v) for v in bow.scores(texts).argmax(1)]


# ----------------------------------------------------------------------------- protocol
def test_bytes_tensors_round_trip_in_json_and_binary():
    texts = np.array(["héllo wörld 🙂", "", "a\x00b", "plain"], dtype=object)
    for binary in (False, True):
        body, headers = protocol.encode_request(texts, binary=binary)
        raw = headers.get(protocol.HEADER_LENGTH)
        req = protocol.decode_request(body, int(raw) if raw else None)
        (t,) = req.inputs
        assert protocol.datatype_of(t.array) == "BYTES" and t.array.shape == (4,)
        assert t.array.tolist() == texts.tolist()
    # the binary layout is the KServe V2 one: 4-byte little-endian length, then UTF-8
    body, headers = protocol.encode_request(np.array(["ab", "é"], dtype=object), binary=True)
    assert (
        body[int(headers[protocol.HEADER_LENGTH]) :]
        == b"\x02\x00\x00\x00ab\x02\x00\x00\x00\xc3\xa9"
    )
    # nested JSON strings follow the shape row-major
    nested = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "BYTES", "data": [["a", "b"], ["c", "d"]]}]}  # fmt: skip
    (t,) = protocol.decode_request(json.dumps(nested).encode()).inputs
    assert t.array.tolist() == [["a", "b"], ["c", "d"]]


@pytest.mark.parametrize(
    ("blob", "shape", "match"),
    [
        (b"\x05\x00\x00\x00ab", [1], "says 5 bytes but only 2"),
        (b"\x01\x00", [1], "4-byte length runs past the end"),
        (b"\x01\x00\x00\x00a\x01\x00\x00\x00b", [1], "more than the 1 elements"),
        (b"\x01\x00\x00\x00a", [2], "has 1 elements but shape \\[2\\] needs 2"),
        (b"\x02\x00\x00\x00\xc3\x28", [1], "not valid UTF-8"),
    ],
)
def test_malformed_binary_bytes_are_protocol_errors(blob, shape, match):
    body, headers = _binary(blob, shape)
    with pytest.raises(protocol.ProtocolError, match=match):
        protocol.decode_request(body, int(headers[protocol.HEADER_LENGTH]))


# ----------------------------------------------------------------------------- server
def test_text_model_metadata_and_inference_match_the_model(bow, client):
    meta = client.get("/v2/models/tweets").json()
    assert meta["inputs"] == [{"name": "input", "datatype": "BYTES", "shape": [-1]}]
    p = meta["parameters"]
    assert p["num_classes"] == 2 and p["class_names"] == ["negative", "positive"]
    assert p["max_rows"] == 3 and p["labels_only"] is False and "dataset" not in p
    r = client.post(INFER, json=_bytes_body(TEXTS[:3]))
    assert r.status_code == 200, r.text
    out = protocol.decode_response(r.content)
    want = bow.scores(TEXTS[:3]).numpy()
    np.testing.assert_allclose(out["predict_proba"], want, rtol=1e-5, atol=1e-6)
    assert out["predict"].dtype == np.int64 and out["predict"].tolist() == _labels(bow, TEXTS[:3])
    assert r.json()["parameters"]["queries_used"] == 3


def test_binary_and_json_bytes_decode_the_same(client):
    texts = ["héllo wörld 🙂 love it", "awful, just awful", ""]
    j = client.post(INFER, json=_bytes_body(texts))
    body, headers = protocol.encode_request(
        np.array(texts, dtype=object), outputs=["predict_proba", "predict"], binary=True
    )
    b = client.post(INFER, content=body, headers=headers)
    assert j.status_code == b.status_code == 200
    from_json = protocol.decode_response(j.content)
    from_bin = protocol.decode_response(b.content, int(b.headers[protocol.HEADER_LENGTH]))
    for name in ("predict_proba", "predict"):
        np.testing.assert_array_equal(from_json[name], from_bin[name])


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        (_bytes_body(["ok", 3]), 400, "strings only"),
        (_bytes_body(["ok", None]), 400, "strings only"),
        (_bytes_body(["a", "b"], shape=[3]), 400, "needs 3"),
        (_bytes_body(["a", "b"], shape=[1, 2]), 400, "must be \\[N\\]"),
        (_bytes_body([]), 400, "empty batch"),
        (_bytes_body(["a", "b", "c", "d"]), 413, "over the limit of 3 rows"),
        (_bytes_body(["a"], data="a"), 400, "list of strings"),
        (
            {"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [0, 1]}]},
            400,
            "text model.*BYTES",
        ),
        (_bytes_body(["a"], name="text"), 400, "unknown input"),
    ],
)
def test_malformed_texts_get_clear_4xx(client, body, status, match):
    r = client.post(INFER, json=body)
    assert r.status_code == status, r.text
    assert re.search(match, r.json()["error"])


def test_malformed_binary_texts_and_lone_surrogates_get_400(client):
    for blob, shape in [
        (b"\x09\x00\x00\x00ab", [1]),
        (b"\x01\x00", [1]),
        (b"\x02\x00\x00\x00\xff\xfe", [1]),
    ]:
        body, headers = _binary(blob, shape)
        r = client.post(INFER, content=body, headers=headers)
        assert r.status_code == 400, r.text
    raw = b'{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","data":["\\ud800"]}]}'
    r = client.post(INFER, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "UTF-8" in r.json()["error"]
    assert client.app.state.service.used.get("", 0) == 0  # nothing was charged


def test_labels_only_text_server_answers_predict_only(bow):
    app = create_app(bow, name="tweets", labels_only=True)
    with TestClient(app) as tc:
        meta = tc.get("/v2/models/tweets").json()
        assert [o["name"] for o in meta["outputs"]] == ["predict"]
        r = tc.post(INFER, json=_bytes_body(TEXTS))
        out = protocol.decode_response(r.content)
        assert list(out) == ["predict"] and out["predict"].tolist() == _labels(bow, TEXTS)
        r = tc.post(INFER, json={**_bytes_body(TEXTS), "outputs": [{"name": "predict_proba"}]})
        assert r.status_code == 403
        target = HttpTextTarget(URL, "tweets", outputs="auto", http_client=tc, retries=0)
        assert target.labels(TEXTS).tolist() == _labels(bow, TEXTS)


# ------------------------------------------------------------------- attacks over HTTP
def test_a_text_recipe_over_http_matches_in_process_and_counts_rows(bow):
    attack = recipes.create("deepwordbug", max_queries=25, seed=3)
    y = _labels(bow, TEXTS)
    local_target = bow.as_scores()
    local = attack(local_target, TEXTS, y)
    # the attack's batches reach the model whole on both sides (a bag-of-embeddings
    # model's float sums differ in the last bit between batch compositions, and the
    # attack's near-ties follow them)
    app = create_app(bow, name="tweets", max_rows=256, chunk_rows=256)
    with TestClient(app) as tc:
        remote_target = HttpTextTarget(URL, "tweets", http_client=tc, retries=0, batch_size=256)
        assert isinstance(remote_target, TextTarget)
        remote = attack(remote_target, TEXTS, y)
        served_rows = app.state.service.used[""]
    key = [(r.adversarial, r.queries, r.status) for r in local]
    assert [(r.adversarial, r.queries, r.status) for r in remote] == key
    assert all(r.queries <= 25 for r in remote)
    assert any(r.adversarial != t for r, t in zip(remote, TEXTS, strict=True))  # it did attack
    # every row the server evaluated is one the attack counted, and the same as in-process
    assert served_rows == remote_target.queries == local_target.queries


def test_the_server_budget_stops_a_text_attack_with_429(bow):
    app = create_app(bow, name="tweets", max_queries=10)
    with TestClient(app) as tc:
        target = HttpTextTarget(URL, "tweets", http_client=tc, retries=0)
        target.scores(TEXTS * 2)  # 8 of 10 rows
        with pytest.raises(HttpStatusError) as e:
            recipes.create("deepwordbug", max_queries=50)(target, TEXTS, _labels(bow, TEXTS))
        assert e.value.status_code == 429
        assert app.state.service.used[""] <= 10
        r = tc.post(INFER, json=_bytes_body(TEXTS[:3]))
        assert r.status_code == 429 and "budget" in r.json()["error"]


def test_image_models_still_refuse_bytes(digits_mlp):
    app = create_app(digits_mlp, name="digits")
    with TestClient(app) as tc:
        r = tc.post("/v2/models/digits/infer", json=_bytes_body(["a"]))
        assert r.status_code == 400 and "FP32" in r.json()["error"]


# ----------------------------------------------------------------------------- CLI
def test_the_cli_serves_a_text_checkpoint_as_a_text_model(bow, bow_path):
    from advx.cli._targets import open_target, target_info
    from advx.cli.serve import _text_model
    from advx.targets import WhiteBox

    loaded = open_target(str(bow_path), name="tweets")
    info = target_info(str(bow_path))
    served = _text_model(loaded, info)
    assert isinstance(loaded, WhiteBox)
    assert served is loaded.model  # the zoo classifier, not the WhiteBox over token ids
    app = create_app(served, name="tweets", dataset=info.get("dataset"), max_rows=3)
    with TestClient(app) as tc:
        meta = tc.get("/v2/models/tweets").json()
        assert meta["inputs"][0]["datatype"] == "BYTES"
        assert meta["parameters"]["dataset"] == "tweets-binary"
        target = HttpTextTarget(URL, "tweets", http_client=tc, retries=0)
        assert target.batch_size == 3  # the server's max_rows: 4 texts go as 3 + 1
        assert torch.allclose(target.scores(TEXTS), bow.scores(TEXTS), atol=1e-6)
        assert app.state.service.used[""] == target.queries == 4
    # an image checkpoint stays a tensor model
    assert _text_model("not a WhiteBox", {"arch": "mlp"}) == "not a WhiteBox"
    # a Python user who hands create_app the WhiteBox still gets a text server
    app = create_app(loaded, name="tweets")
    with TestClient(app) as tc:
        assert tc.get("/v2/models/tweets").json()["inputs"][0]["datatype"] == "BYTES"
