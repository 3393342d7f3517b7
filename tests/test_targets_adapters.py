"""Adapters (torch, scikit-learn, ONNX), access rules and the query cache."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from advx.adapters import (
    CachedTarget,
    TorchLabelBox,
    TorchScoreBox,
    as_target,
    export_onnx,
    onnx_target,
    sklearn_target,
    torch_target,
)
from advx.attacks import create
from advx.errors import AccessError, InputError, QueryBudgetExceeded
from advx.models.adapter import Classifier
from advx.targets import Access, LabelBox, Oracle, ScoreBox, WhiteBox


@pytest.fixture(scope="module")
def digits_lr(digits_data):
    """Logistic regression on flattened digits and 40 test images."""
    from sklearn.linear_model import LogisticRegression

    xtr, ytr, xte, yte = digits_data
    est = LogisticRegression(max_iter=300).fit(xtr.reshape(len(xtr), -1).numpy(), ytr.numpy())
    return est, xte[:40], yte[:40]


class Counting:
    """A score function that records the rows it evaluated."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        self.fn = fn
        self.rows = 0
        self.calls = 0

    def __call__(self, x: Tensor) -> Tensor:
        self.rows += x.shape[0]
        self.calls += 1
        return self.fn(x)


# ------------------------------------------------------------------------------ torch
def test_torch_boxes_agree_with_whitebox(digits_mlp, digits_data):
    x = digits_data[2][:32]
    white = WhiteBox(digits_mlp)
    scores = ScoreBox.from_torch(digits_mlp)
    labels = LabelBox.from_torch(digits_mlp)
    assert isinstance(scores, TorchScoreBox) and isinstance(labels, TorchLabelBox)
    assert scores.access == Access.SCORES and labels.access == Access.LABELS
    assert scores.input_shape == (1, 8, 8) and scores.num_classes == 10
    assert torch.equal(scores.scores(x), white.scores(x))
    assert torch.equal(labels.labels(x), digits_mlp(x).argmax(1))
    assert not scores.scores(x).requires_grad
    with pytest.raises(AccessError, match="gradients"):
        scores.logits(x)
    with pytest.raises(AccessError, match="scores"):
        labels.scores(x)


def test_torch_box_attacks_in_eval_mode_and_restores(digits_data):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 10))
    clf = Classifier(net, input_shape=(1, 8, 8), num_classes=10)
    clf.train()
    x, y = digits_data[2][:8], digits_data[3][:8]
    box = torch_target(clf)
    with box.attacking():
        assert not clf.training  # dropout off: scores deterministic during an attack
        assert torch.equal(box.scores(x), box.scores(x))
    assert clf.training
    create("square", eps=0.05, max_queries=20, steps=20)(box, x, y)
    assert clf.training and all(p.requires_grad for p in clf.parameters())


def test_plain_module_needs_metadata():
    with pytest.raises(InputError, match="input_shape"):
        ScoreBox.from_torch(nn.Linear(4, 2))
    box = ScoreBox.from_torch(nn.Linear(4, 2), input_shape=(4,), num_classes=2, bounds=(-1, 1))
    assert box.bounds == (-1.0, 1.0)
    assert torch.allclose(box.scores(torch.zeros(3, 4)).sum(1), torch.ones(3))


# ------------------------------------------------------------------------ access rules
def test_stronger_usable_as_weaker_never_the_reverse(digits_mlp, digits_data):
    x, y = digits_data[2][:8], digits_data[3][:8]
    white = WhiteBox(digits_mlp)
    as_scores, as_labels = white.as_scores(), white.as_labels()
    assert torch.equal(as_scores.scores(x), white.scores(x))
    assert torch.equal(as_labels.labels(x), white.labels(x))
    with pytest.raises(AccessError):
        as_scores.logits(x)
    with pytest.raises(AccessError):
        as_labels.scores(x)
    # score attack on a white box: allowed; gradient attack on a score box: refused
    r = create("square", eps=0.1, max_queries=30, steps=30)(white, x, y)
    assert int(r.queries.max()) <= 30
    box = ScoreBox.from_torch(digits_mlp)
    with pytest.raises(AccessError, match="needs gradients"):
        create("pgd", eps=0.1, steps=2)(box, x, y)
    lab = LabelBox.from_torch(digits_mlp)
    with pytest.raises(AccessError, match="needs scores"):
        create("square", eps=0.1)(lab, x, y)
    with pytest.raises(AccessError):
        lab.as_scores()
    with pytest.raises(AccessError):
        box.as_scores().logits(x)
    # as_target weakens on request, refuses to strengthen
    assert as_target(white, outputs="labels").access == Access.LABELS
    with pytest.raises(AccessError):
        as_target(lab, outputs="scores")


# ---------------------------------------------------------------------------- sklearn
def test_sklearn_scores_and_labels_agree_with_estimator(digits_lr):
    est, x, _ = digits_lr
    flat = x.reshape(len(x), -1).numpy()
    box = sklearn_target(est, input_shape=(1, 8, 8))
    assert isinstance(box, ScoreBox) and box.input_shape == (1, 8, 8) and box.num_classes == 10
    np.testing.assert_allclose(box.scores(x).numpy(), est.predict_proba(flat), rtol=1e-6, atol=1e-7)
    lab = sklearn_target(est, outputs="labels", input_shape=(1, 8, 8))
    assert isinstance(lab, LabelBox)
    assert lab.labels(x).tolist() == est.predict(flat).tolist()
    flat_box = sklearn_target(est)  # default shape: n_features_in_
    assert flat_box.input_shape == (64,)
    with pytest.raises(InputError, match="expects 64 features"):
        sklearn_target(est, input_shape=(1, 7, 7))


def test_sklearn_string_classes_map_to_indices(digits_data):
    from sklearn.tree import DecisionTreeClassifier

    xtr, ytr, xte, _ = digits_data
    names = np.array(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )
    est = DecisionTreeClassifier(max_depth=6, random_state=0)
    est.fit(xtr.reshape(len(xtr), -1).numpy(), names[ytr.numpy()])
    box = sklearn_target(est, outputs="labels", input_shape=(1, 8, 8))
    pred = est.predict(xte[:30].reshape(30, -1).numpy())
    idx = box.labels(xte[:30])
    assert [box.class_names[i] for i in idx.tolist()] == pred.tolist()
    assert box.class_names == tuple(sorted(names))  # classes_ order, as predict_proba columns


def test_sklearn_without_predict_proba_is_labels_only(digits_data):
    from sklearn.svm import LinearSVC

    xtr, ytr, xte, _ = digits_data
    est = LinearSVC(dual=False).fit(xtr.reshape(len(xtr), -1).numpy(), ytr.numpy())
    assert isinstance(sklearn_target(est), LabelBox)
    with pytest.raises(AccessError, match="predict_proba"):
        sklearn_target(est, outputs="scores")
    with pytest.raises(InputError, match="not fitted"):
        from sklearn.linear_model import LogisticRegression

        sklearn_target(LogisticRegression(), input_shape=(4,))


def test_sklearn_score_attack_runs_under_budget(digits_lr):
    est, x, y = digits_lr
    box = sklearn_target(est, input_shape=(1, 8, 8))
    r = create("square", eps=0.3, max_queries=50, steps=50, seed=1)(box, x, y)
    assert int(r.queries.max()) <= 50
    # success is judged by the estimator itself on the returned images
    pred = est.predict(r.x_adv.reshape(len(x), -1).numpy())
    assert torch.equal(torch.as_tensor(pred), r.pred_adv)
    assert (pred != y.numpy()).sum() > (
        est.predict(x.reshape(len(x), -1).numpy()) != y.numpy()
    ).sum()


# ------------------------------------------------------------------------------- onnx
@pytest.fixture(scope="module")
def onnx_file(digits_cnn, tmp_path_factory):
    return export_onnx(digits_cnn, tmp_path_factory.mktemp("onnx") / "digits-cnn.onnx")


def test_onnx_agrees_with_torch(digits_cnn, digits_data, onnx_file):
    import onnxruntime as ort

    x = digits_data[2][:50]
    box = onnx_target(onnx_file)
    # everything discovered from the file's advx.* metadata
    assert box.input_shape == (1, 8, 8) and box.num_classes == 10
    assert box.bounds == (0.0, 1.0) and box.class_names == digits_cnn.class_names
    ref = WhiteBox(digits_cnn).scores(x)
    np.testing.assert_allclose(box.scores(x).numpy(), ref.numpy(), atol=1e-5)
    assert torch.equal(box.labels(x), ref.argmax(1))
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    lab = onnx_target(session, outputs="labels")
    assert isinstance(lab, LabelBox) and torch.equal(lab.labels(x), ref.argmax(1))
    # dynamic batch: one row and an odd batch both work
    assert box.scores(x[:1]).shape == (1, 10) and box.scores(x[:7]).shape == (7, 10)


def test_onnx_bad_inputs(tmp_path, onnx_file):
    with pytest.raises(InputError, match="no ONNX file"):
        onnx_target(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputError, match="cannot load"):
        onnx_target(bad)
    with pytest.raises(InputError, match="output_kind"):
        onnx_target(onnx_file, output_kind="logprobs")
    with pytest.raises(InputError, match="Classifier"):
        export_onnx(nn.Linear(2, 2), tmp_path / "x.onnx")


# ------------------------------------------------------------------------------ cache
def _softmax_box() -> tuple[ScoreBox, Counting]:
    fn = Counting(lambda x: x.flatten(1).softmax(1))
    return ScoreBox(fn, input_shape=(4,), num_classes=4), fn


def test_cache_hits_do_not_reevaluate():
    box, fn = _softmax_box()
    cached = CachedTarget(box)
    x = torch.rand(6, 4)
    first = cached.scores(x)
    again = cached.scores(x)
    assert torch.equal(first, again) and torch.equal(first, x.softmax(1))
    assert fn.rows == 6 and box.queries == 6  # the model saw each row once
    assert cached.queries == 12 and cached.hits == 6 and cached.misses == 6
    # repeats inside one batch, mixed with new rows: only the new distinct rows go out
    y = torch.cat([x[:2], x[:2], torch.rand(3, 4)])
    out = cached.scores(y)
    assert torch.equal(out[:2], first[:2]) and torch.equal(out[2:4], first[:2])
    assert fn.rows == 9 and fn.calls == 2
    # labels are cached separately, computed by the target's own labels()
    assert torch.equal(cached.labels(x), x.argmax(1)) and fn.rows == 15


def test_cache_key_is_exact_bytes_and_lru_bounded():
    box, fn = _softmax_box()
    cached = CachedTarget(box, max_entries=2)
    a, b, c = torch.rand(1, 4), torch.rand(1, 4), torch.rand(1, 4)
    cached.scores(a)
    cached.scores(torch.nextafter(a, a + 1))  # one ulp away is another row
    assert fn.rows == 2
    cached.scores(b)
    cached.scores(c)  # evicts the least recently used
    cached.scores(c)
    assert fn.rows == 4
    cached.scores(a)  # a was evicted: evaluated again
    assert fn.rows == 5
    cached.clear()
    cached.scores(c)
    assert fn.rows == 6
    with pytest.raises(InputError):
        CachedTarget(box, max_entries=0)


def test_cache_and_oracle_accounting():
    box, fn = _softmax_box()
    cached = CachedTarget(box)
    x = torch.rand(3, 4)
    oracle = Oracle(cached, 3, max_queries=2)
    view = oracle.view("scores")
    view(x)
    view(x)  # answered from the cache, still charged: budgets follow the attack
    assert oracle.queries.tolist() == [2, 2, 2]
    assert fn.rows == 3
    with pytest.raises(QueryBudgetExceeded):
        view(x)


def test_cache_passes_gradients_through(digits_mlp, digits_data):
    x = digits_data[2][:4].clone().requires_grad_(True)
    cached = CachedTarget(WhiteBox(digits_mlp))
    assert cached.access == Access.GRADIENTS
    (g,) = torch.autograd.grad(cached.logits(x).sum(), x)
    assert g.abs().sum() > 0
    r1 = create("pgd", eps=0.1, steps=3)(cached, digits_data[2][:8], digits_data[3][:8])
    r2 = create("pgd", eps=0.1, steps=3)(
        WhiteBox(digits_mlp), digits_data[2][:8], digits_data[3][:8]
    )
    assert torch.equal(r1.x_adv, r2.x_adv)


def test_cached_attack_matches_uncached(digits_mlp, digits_data):
    x, y = digits_data[2][:16], digits_data[3][:16]
    plain = create("square", eps=0.2, max_queries=30, steps=30, seed=3)(
        ScoreBox.from_torch(digits_mlp), x, y
    )
    inner = ScoreBox.from_torch(digits_mlp)
    cached = CachedTarget(inner)
    res = create("square", eps=0.2, max_queries=30, steps=30, seed=3)(cached, x, y)
    assert torch.allclose(res.x_adv, plain.x_adv) and torch.equal(res.queries, plain.queries)
    # the base's final prediction re-asks the points the attack already scored
    assert inner.queries < cached.queries and cached.hits > 0


def test_zoo_sklearn_model_from_skops_checkpoint(digits_data, tmp_path):
    from starlette.testclient import TestClient

    from advx import models
    from advx.adapters import HttpTarget
    from advx.serve.server import create_app

    xtr, ytr, xte, _ = digits_data
    clf = models.build("logreg", input_shape=(1, 8, 8), num_classes=10).fit(xtr[:600], ytr[:600])
    loaded = models.load(models.save(clf, tmp_path / "logreg"))  # skops file, no pickle
    x = xte[:25]
    flat = x.reshape(25, -1).numpy()
    estimator = loaded.estimator
    expected = estimator.predict_proba(flat)
    assert as_target(loaded) is loaded  # the zoo wrapper already is a score target
    for box in (sklearn_target(loaded), sklearn_target(estimator, input_shape=(1, 8, 8))):
        assert box.input_shape == (1, 8, 8) and box.num_classes == 10
        np.testing.assert_allclose(box.scores(x).numpy(), expected, rtol=1e-6, atol=1e-7)
    lab = sklearn_target(loaded, outputs="labels")
    assert lab.labels(x).tolist() == expected.argmax(1).tolist()
    with TestClient(create_app(loaded, name="logreg")) as tc:
        remote = HttpTarget("http://testserver", "logreg", http_client=tc)
        assert torch.equal(remote.scores(x), loaded.scores(x))
