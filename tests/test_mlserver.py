"""A real third-party model server: MLServer 1.7.1 (scikit-learn runtime) attacked over HTTP.

MLServer lives in its own virtual environment, .venv-mlserver, built by
scripts/setup.d/mlserver.sh (run by `make test` through scripts/setup.sh). When it is
missing this test FAILS with the command to run: it never skips silently.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from advx.adapters import HttpTarget, sklearn_target
from advx.attacks import create
from advx.errors import RemoteError
from advx.serve.client import HttpStatusError, OipClient

ROOT = Path(__file__).resolve().parents[1]
MLSERVER_VENV = Path(os.environ.get("MLSERVER_VENV", ROOT / ".venv-mlserver"))

pytestmark = pytest.mark.mlserver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def digits_lr(digits_data):
    from sklearn.linear_model import LogisticRegression

    xtr, ytr, xte, yte = digits_data
    est = LogisticRegression(max_iter=300).fit(xtr.reshape(len(xtr), -1).numpy(), ytr.numpy())
    return est, xte, yte


@pytest.fixture(scope="module")
def mlserver(digits_lr, tmp_path_factory):
    """`mlserver start` on free loopback ports, serving our logistic regression as
    model "digits"; yields the URL and stops the server afterwards."""
    exe = MLSERVER_VENV / "bin" / "mlserver"
    if not exe.exists():
        pytest.fail(
            f"MLServer is not installed at {MLSERVER_VENV}: run `bash scripts/setup.d/mlserver.sh` "
            "(or `make test`, which runs it) to build .venv-mlserver",
            pytrace=False,
        )
    import joblib

    est = digits_lr[0]
    repo = tmp_path_factory.mktemp("mlserver-repo")
    (repo / "digits").mkdir()
    # MLServer's scikit-learn runtime only loads joblib (pickle) files. This one is OUR
    # freshly trained model, written just now by this test: never load an untrusted file
    # this way (advx itself saves scikit-learn models with skops, not pickle).
    joblib.dump(est, repo / "digits" / "model.joblib")
    (repo / "digits" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "digits",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    http_port = _free_port()
    settings = {
        "host": "127.0.0.1",  # loopback only
        "http_port": http_port,
        "grpc_port": _free_port(),
        "metrics_port": _free_port(),
        # MLServer's parallel inference workers crash with current uvloop; inline it.
        "parallel_workers": 0,
    }
    (repo / "settings.json").write_text(json.dumps(settings))
    log = (repo / "mlserver.log").open("wb")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    proc = subprocess.Popen(
        [str(exe), "start", str(repo)], cwd=repo, stdout=log, stderr=subprocess.STDOUT, env=env
    )
    url = f"http://127.0.0.1:{http_port}"
    client = OipClient(url, timeout=5.0, retries=0)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"mlserver exited with {proc.returncode}:\n{_tail(repo)}", pytrace=False
                )
            try:
                if client.ready() and client.model_metadata("digits"):
                    break
            except RemoteError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlserver not ready after 90 s:\n{_tail(repo)}", pytrace=False)
            time.sleep(0.3)
        yield url
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _tail(repo: Path) -> str:
    return (repo / "mlserver.log").read_text(errors="replace")[-3000:]


def _target(url: str, outputs: str) -> HttpTarget:
    # MLServer's metadata declares no shapes: give them, and the flat layout it wants.
    return HttpTarget(
        url,
        "digits",
        outputs=outputs,
        input_shape=(1, 8, 8),
        num_classes=10,
        bounds=(0.0, 1.0),
        wire_shape=(64,),
        batch_size=512,
        timeout=20.0,
    )


def test_mlserver_scores_and_labels_match_the_estimator(mlserver, digits_lr):
    est, xte, _ = digits_lr
    x = xte[:37]
    flat = x.reshape(len(x), -1).numpy()
    scores = _target(mlserver, "scores")
    assert scores.binary is False  # MLServer has no binary tensor extension: JSON
    np.testing.assert_allclose(
        scores.scores(x).numpy(), est.predict_proba(flat), rtol=1e-6, atol=1e-7
    )
    labels = _target(mlserver, "labels")
    assert labels.labels(x).tolist() == est.predict(flat).tolist()
    small = _target(mlserver, "scores")
    small.batch_size = 10
    # Same numbers whatever the request size; not bitwise: the server's BLAS may block a
    # 10-row and a 37-row matrix product differently (last-ulp differences were seen).
    torch.testing.assert_close(small.scores(x), scores.scores(x), rtol=1e-6, atol=1e-7)
    assert small.client.requests >= 1 + 4
    assert small.queries == 37


def test_attacks_over_mlserver_match_in_process(mlserver, digits_lr):
    est, xte, yte = digits_lr
    x, y = xte[:12], yte[:12]
    local = sklearn_target(est, input_shape=(1, 8, 8))
    remote = _target(mlserver, "scores")
    square = create("square", eps=0.3, max_queries=60, steps=60, p_init=0.3, seed=0)
    r_remote = square(remote, x, y)
    r_local = square(local, x, y)
    assert int(r_remote.queries.max()) <= 60
    assert torch.equal(r_remote.queries, r_local.queries)
    assert torch.allclose(r_remote.x_adv, r_local.x_adv, atol=1e-6)
    assert torch.equal(r_remote.status, r_local.status)
    fooled = est.predict(r_remote.x_adv.reshape(len(x), -1).numpy()) != y.numpy()
    assert fooled.sum() > 0  # the attack works on the served model
    # every row the attack and the base asked for went over HTTP exactly once
    assert remote.queries == int(r_remote.queries.sum()) + r_remote.overhead_queries

    # decision-based: labels only (MLServer's `predict` output)
    rays = create("rays", eps=0.3, max_queries=80, seed=0)
    remote_lab = _target(mlserver, "labels")
    r = rays(remote_lab, x, y)
    assert int(r.queries.max()) <= 80
    assert (r.distance <= 0.3 + 1e-6).all()
    assert torch.equal(
        torch.as_tensor(est.predict(r.x_adv.reshape(len(x), -1).numpy())), r.pred_adv
    )


def test_mlserver_errors_are_typed(mlserver):
    t = _target(mlserver, "scores")
    t.output_name = "decision_path"  # not an output MLServer's sklearn runtime allows
    with pytest.raises(HttpStatusError) as e:
        t.scores(torch.rand(2, 1, 8, 8))
    assert e.value.status_code == 400 and t.client.retried == 0  # 4xx: no retry
    with pytest.raises(HttpStatusError) as e:
        HttpTarget(mlserver, "no-such-model", input_shape=(64,), num_classes=10)
    assert e.value.status_code == 404
