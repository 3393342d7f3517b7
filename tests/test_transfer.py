"""Transfer matrices and the crafting routes for non-neural sources."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest
import torch

from advx.attacks import create
from advx.errors import InputError
from advx.evaluate import crafting
from advx.evaluate.records import derive_seed
from advx.evaluate.transfer import (
    TransferResult,
    make_source,
    papernot_check,
    transfer_matrix,
)
from advx.targets import WhiteBox
from tests._single_thread import single_thread  # noqa: F401  (autouse)


@pytest.fixture(scope="module")
def sk(digits_data):
    """Raw scikit-learn models fitted on the flattened digits."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC
    from sklearn.tree import DecisionTreeClassifier

    xtr, ytr, _, _ = digits_data
    X, Y = xtr.reshape(len(xtr), -1).numpy(), ytr.numpy()
    return {
        "lr": LogisticRegression(max_iter=1000).fit(X, Y),
        "svm": make_pipeline(StandardScaler(), LinearSVC(C=0.1, max_iter=5000)).fit(X, Y),
        "dt": DecisionTreeClassifier(random_state=0).fit(X, Y),
        "small-dt": DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, Y),
        "knn": KNeighborsClassifier(3).fit(X, Y),
        "rf": RandomForestClassifier(20, random_state=0).fit(X, Y),
    }


@pytest.fixture(scope="module")
def test_set(digits_data):
    _, _, x, y = digits_data
    return x[:150], y[:150]


def test_linear_copy_is_exact(sk, test_set):
    x, _ = test_set
    flat = x.reshape(len(x), -1).numpy()
    for name in ("lr", "svm"):
        clf = crafting.linear_module(sk[name], input_shape=(1, 8, 8))
        with torch.no_grad():
            z = clf(x).double().numpy()
        np.testing.assert_allclose(z, sk[name].decision_function(flat), rtol=1e-4, atol=1e-4)
        assert (z.argmax(1) == sk[name].predict(flat)).all()


def _box_distance_bruteforce(tree, x: np.ndarray, y: int) -> float:
    """Smallest linf distance from x to a leaf of another class (pure python)."""
    t = tree.tree_
    best = math.inf

    def walk(node: int, lo: dict[int, float], hi: dict[int, float]) -> None:
        nonlocal best
        if t.children_left[node] == -1:
            if int(np.argmax(t.value[node][0])) == y:
                return
            d = 0.0
            for f in set(lo) | set(hi):
                a, b = max(lo.get(f, -math.inf), -1e-4), min(hi.get(f, math.inf), 1.0)
                if a + 1e-4 > b:
                    return
                d = max(d, a + 1e-4 - x[f], x[f] - b, 0.0)
            best = min(best, d)
            return
        f, th = int(t.feature[node]), float(t.threshold[node])
        walk(int(t.children_left[node]), lo, {**hi, f: min(hi.get(f, math.inf), th)})
        walk(int(t.children_right[node]), {**lo, f: max(lo.get(f, -math.inf), th)}, hi)

    walk(0, {}, {})
    return best


def test_tree_craft_finds_the_nearest_other_leaf(sk, test_set):
    x, y = test_set
    tree = sk["small-dt"]
    flat = x.reshape(len(x), -1).numpy()
    correct = tree.predict(flat) == y.numpy()
    xs, ys = x[correct][:40], y[correct][:40]
    adv = crafting.tree_craft(tree, xs, ys, eps=1.0)  # unbounded: every example flips
    pred = tree.predict(adv.reshape(len(adv), -1).numpy())
    assert (pred != ys.numpy()).all()
    dist = (adv - xs).flatten(1).abs().amax(1)
    for i in range(len(xs)):  # exact: the distance of the nearest box of another class
        want = _box_distance_bruteforce(tree, xs[i].flatten().double().numpy(), int(ys[i]))
        assert float(dist[i]) == pytest.approx(want, abs=1e-5)
    # with a budget, examples whose nearest leaf is farther stay unchanged
    eps = float(dist.median())
    bounded = crafting.tree_craft(tree, xs, ys, eps=eps)
    moved = (bounded != xs).flatten(1).any(1)
    assert torch.equal(moved, dist <= eps + 1e-9)
    assert float((bounded - xs).abs().max()) <= eps + 1e-6


def test_knn_craft_beats_random_noise(sk, test_set):
    x, y = test_set
    knn = sk["knn"]
    flat = x.reshape(len(x), -1).numpy()
    ok = torch.from_numpy(knn.predict(flat) == y.numpy())
    xs, ys = x[ok], y[ok]
    adv = crafting.knn_craft(knn, xs, ys, eps=0.25)
    assert float((adv - xs).abs().max()) <= 0.25 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    fooled = (knn.predict(adv.reshape(len(adv), -1).numpy()) != ys.numpy()).mean()
    g = torch.Generator().manual_seed(0)
    noise = (xs + 0.25 * (torch.randint(0, 2, xs.shape, generator=g) * 2 - 1)).clamp(0, 1)
    by_noise = (knn.predict(noise.reshape(len(noise), -1).numpy()) != ys.numpy()).mean()
    assert fooled > by_noise + 0.2


def test_matrix_cells_by_hand(digits_mlp, digits_cnn, sk, test_set):
    x, y = test_set
    res = transfer_matrix(
        {"mlp": digits_mlp, "cnn": digits_cnn},
        {"mlp": digits_mlp, "lr": sk["lr"], "dt": sk["dt"]},
        (x, y), eps=0.15, attack="fgsm", batch_size=150,
    )  # fmt: skip
    assert res.sources == ("mlp", "cnn") and res.targets == ("mlp", "lr", "dt")
    with torch.no_grad():
        ok_mlp = digits_mlp(x).argmax(1) == y
        ok_cnn = digits_cnn(x).argmax(1) == y
    ok_dt = torch.from_numpy(sk["dt"].predict(x.reshape(len(x), -1).numpy()) == y.numpy())
    idx = ok_cnn.nonzero().flatten()
    adv = x.clone()
    adv[idx] = create("fgsm", eps=0.15, seed=derive_seed(0, 0, 1))(
        WhiteBox(digits_cnn), x[idx], y[idx]
    ).x_adv
    pred_dt = torch.from_numpy(sk["dt"].predict(adv.reshape(len(adv), -1).numpy()))
    both = ok_cnn & ok_dt
    assert res.eligible[1][2] == int(both.sum())
    assert res.fooled[1][2] == int((both & (pred_dt != y)).sum())
    # the diagonal is the white-box success rate
    assert res.rate("mlp", "mlp") == pytest.approx(res.source_success[0])
    assert res.clean_accuracy["mlp"] == pytest.approx(float(ok_mlp.float().mean()))
    for fr, er in zip(res.fooled, res.eligible, strict=True):
        assert all(0 <= f <= e for f, e in zip(fr, er, strict=True))


def test_routes_and_rejection(sk, digits_data, test_set):
    xtr, _, _, _ = digits_data
    x, y = test_set
    kw: dict[str, Any] = dict(eps=0.2, attack="fgsm", input_shape=(1, 8, 8))
    assert make_source(sk["lr"], name="lr", **kw).route.startswith("linear")
    assert make_source(sk["svm"], name="svm", **kw).route.startswith("linear")
    assert make_source(sk["dt"], name="dt", **kw).route.startswith("decision-tree")
    assert make_source(sk["knn"], name="knn", **kw).route.startswith("kNN")
    with pytest.raises(InputError, match="substitute"):
        make_source(sk["rf"], name="rf", **kw)
    sub = make_source(sk["rf"], name="rf", substitute_data=xtr, **kw)
    assert sub.route.startswith("substitute")
    res = transfer_matrix({"rf": sub}, {"rf": sk["rf"]}, (x, y), eps=0.2)
    rf_rf = res.matrix[0][0]
    assert rf_rf is not None and rf_rf > 0.3  # distilled gradients do transfer to the forest


def test_ensemble_and_mi_fgsm_diversity(digits_mlp, digits_linear, sk, test_set):
    x, y = test_set
    res = transfer_matrix(
        {"mlp": digits_mlp, "linear": digits_linear}, {"lr": sk["lr"], "knn": sk["knn"]},
        (x, y), eps=0.15, attack="mi-fgsm", settings={"steps": 5, "diversity_prob": 0.5},
        ensemble=True,
    )  # fmt: skip
    assert res.sources == ("ensemble(mlp+linear)",)
    assert res.config["settings"] == {"steps": 5, "diversity_prob": 0.5}
    assert res.source_success[0] is not None and res.source_success[0] > 0.5


def test_result_round_trip(tmp_path):
    res = TransferResult(
        sources=("a",), targets=("a", "b"), fooled=((3, 1),), eligible=((4, 0),),
        source_success=(0.75,), clean_accuracy={"a": 0.9, "b": 0.8}, routes={"a": "white-box"},
        config={"attack": "pgd", "eps": 0.1, "norm": "linf", "n": 5, "settings": {}}, seconds=1.0,
    )  # fmt: skip
    assert res.matrix == [[0.75, None]]
    back = TransferResult.load(res.save(tmp_path))
    assert back == res


def test_papernot_check_reads_the_matrix():
    names = ["dnn", "lr", "svm", "dt", "knn"]
    m = {  # rows: sources, columns: targets; shaped like the paper's findings
        "dnn": [0.9, 0.3, 0.5, 0.8, 0.1],
        "lr": [0.4, 0.9, 0.9, 0.8, 0.2],
        "svm": [0.2, 0.4, 1.0, 0.8, 0.1],
        "dt": [0.0, 0.1, 0.1, 0.9, 0.0],
        "knn": [0.2, 0.4, 0.7, 0.8, 0.4],
    }
    fooled = tuple(tuple(round(100 * v) for v in m[s]) for s in names)
    res = TransferResult(
        sources=tuple(names), targets=tuple(names), fooled=fooled,
        eligible=tuple((100,) * 5 for _ in names), source_success=(None,) * 5,
        clean_accuracy={}, routes={}, config={}, seconds=0.0,
    )  # fmt: skip
    checks = {c["id"]: c["holds"] for c in papernot_check(res, {n: n for n in names})}
    assert checks == {
        "dnn-robust-target": True,
        "dt-vulnerable-target": True,
        "lr-strong-source": True,
        "lr-to-svm": True,
        "dt-weak-source": True,
        "knn-robust-target": True,
    }
    # swap the roles of dt and dnn: the tree claims now fail
    swapped = papernot_check(
        res, {"dnn": "dt", "dt": "dnn", "lr": "lr", "svm": "svm", "knn": "knn"}
    )
    got = {c["id"]: c["holds"] for c in swapped}
    assert got["dt-vulnerable-target"] is False and got["dt-weak-source"] is False
    # missing roles give None, not an error
    partial = papernot_check(res, {"dnn": "dnn", "lr": "lr"})
    assert {c["id"]: c["holds"] for c in partial}["knn-robust-target"] is None
    assert list(itertools.islice((c["claim"] for c in partial), 1))


def test_cli_transfer_then_report(tmp_path):
    """Model directories in, matrix out (JSON and transfer.json), then `advx report`."""
    from typer.testing import CliRunner

    from advx.cli import app
    from advx.training import default_config, train

    dirs = {}
    for arch in ("mlp", "logreg", "tree"):
        dirs[arch] = tmp_path / arch
        cfg = default_config(arch, "digits", epochs=3) if arch == "mlp" else None
        train(arch, "digits", config=cfg, out=dirs[arch])
    args = ["transfer", "--attack", "fgsm", "--eps", "0.2", "-n", "80", "--json"]
    for d in dirs.values():
        args += ["-s", str(d), "-t", str(d)]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert body["sources"] == body["targets"] == ["mlp", "logreg", "tree"]
    assert body["routes"]["logreg"].startswith("linear") and body["routes"]["tree"].startswith(
        "decision"
    )
    assert len(body["matrix"]) == 3 and all(len(r) == 3 for r in body["matrix"])
    saved = TransferResult.load(tmp_path / "run")
    assert saved.matrix == body["matrix"]
    res = CliRunner().invoke(app, ["report", str(tmp_path / "run"), "--json"])
    assert res.exit_code == 0, res.output
    assert "Transfer: run" in (tmp_path / "run" / "report.html").read_text()
    # a bad attack name is a one-line error, not a traceback
    res = CliRunner().invoke(app, ["transfer", "-s", str(dirs["mlp"]), "-t", str(dirs["tree"]),
                                   "--eps", "0.1", "--attack", "nope"])  # fmt: skip
    assert res.exit_code == 2 and "unknown attack" in res.stderr


def test_linear_models_transfer_to_each_other(sk, test_set):
    """Papernot et al. (2016): LR samples cross a linear SVM's boundary too."""
    x, y = test_set
    res = transfer_matrix({"lr": sk["lr"]}, {"svm": sk["svm"]}, (x, y), eps=0.2, attack="fgsm")
    lr_svm = res.rate("lr", "svm")
    assert lr_svm is not None and lr_svm > 0.5


def test_http_endpoint_as_target(digits_mlp, sk, test_set):
    """A model served over the Open Inference Protocol is a target like any other: its
    column equals the column of the same model called in process."""
    from starlette.testclient import TestClient

    from advx.adapters import HttpTarget, sklearn_target
    from advx.serve.server import create_app

    x, y = test_set
    app = create_app(sklearn_target(sk["lr"], input_shape=(1, 8, 8)), name="lr")
    with TestClient(app) as tc:
        remote = HttpTarget("http://testserver", "lr", outputs="labels", http_client=tc)
        res = transfer_matrix(
            {"mlp": digits_mlp}, {"lr": sk["lr"], "lr-http": remote}, (x, y), eps=0.15,
            attack="fgsm",
        )  # fmt: skip
    assert res.eligible[0][0] == res.eligible[0][1] > 0
    assert res.fooled[0][0] == res.fooled[0][1]
