"""Detectors, the rejecting classifier and adaptive attacks (advx.defenses)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from advx.attacks import AttackResult, create
from advx.defenses.adaptive import AdaptivePGD, evaluate_detector, evasion_loss
from advx.defenses.detectors import create_detector, load_detector, train_detector
from advx.defenses.mahalanobis import MahalanobisDetector
from advx.defenses.rejecting import RejectingClassifier, defended_accuracy
from advx.defenses.squeezing import FeatureSqueezing, bit_depth, median_filter
from advx.errors import CheckpointError, ConfigError, InputError
from advx.models.adapter import Classifier
from tests._single_thread import single_thread  # noqa: F401  (autouse)


# ------------------------------------------------------------------------- squeezers
def test_bit_depth_levels_and_gradients():
    x = torch.rand(1000, generator=torch.Generator().manual_seed(0))
    q = bit_depth(x, 3)
    assert torch.allclose(q, torch.round(x * 7) / 7)
    assert float((q - x).abs().max()) <= 1 / 14 + 1e-6
    # other bounds: 2 bits on [-1, 1] gives the four levels -1, -1/3, 1/3, 1
    levels = bit_depth(torch.linspace(-1, 1, 101), 2, (-1.0, 1.0)).unique()
    assert torch.allclose(levels, torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0]))
    xr = x.clone().requires_grad_(True)
    (g_exact,) = torch.autograd.grad(bit_depth(xr, 3).sum(), xr)
    (g_bpda,) = torch.autograd.grad(bit_depth(xr, 3, straight_through=True).sum(), xr)
    assert torch.equal(g_exact, torch.zeros_like(x)) and torch.equal(g_bpda, torch.ones_like(x))
    assert torch.equal(bit_depth(x, 3, straight_through=True), q)


def test_median_filter_matches_scipy_for_odd_windows():
    from scipy import ndimage

    x = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(1))
    ours = median_filter(x, 3).numpy()
    for n in range(2):
        for c in range(3):
            ref = ndimage.median_filter(x[n, c].numpy(), size=3, mode="mirror")
            np.testing.assert_allclose(ours[n, c], ref)


def test_median_filter_even_window_matches_loop_reference():
    x = torch.rand(1, 1, 5, 6, generator=torch.Generator().manual_seed(2))
    a = np.pad(x[0, 0].numpy(), ((0, 1), (0, 1)), mode="reflect")
    ref = np.empty((5, 6), dtype=np.float32)
    for i in range(5):
        for j in range(6):
            ref[i, j] = np.sort(a[i : i + 2, j : j + 2].ravel())[1]  # lower middle of 4
    np.testing.assert_allclose(median_filter(x, 2)[0, 0].numpy(), ref)


def test_bad_squeezers_are_config_errors(digits_cnn):
    for spec in ("bits:0", "bits:x", "median:9", "blur:2"):
        with pytest.raises(ConfigError):
            FeatureSqueezing(digits_cnn, squeezers=[spec])
    with pytest.raises(ConfigError, match="unknown detector"):
        create_detector("nope", digits_cnn)
    with pytest.raises(ConfigError, match="no setting"):
        create_detector("squeeze", digits_cnn, layer="input")


# ----------------------------------------------------------------------- calibration
def test_calibration_sets_the_false_positive_rate(digits_cnn, digits_data):
    _, _, x, _ = digits_data
    det = FeatureSqueezing(digits_cnn, squeezers=["bits:2"])
    with pytest.raises(InputError, match="not calibrated"):
        det.flag(x)
    with pytest.raises(InputError, match="at least 20"):
        det.calibrate(x[:10], fpr=0.05)
    with pytest.raises(InputError, match="fpr"):
        det.calibrate(x, fpr=1.5)
    thr = det.calibrate(x, fpr=0.05)
    s = det.score(x)
    n = len(x)
    flagged = int((s > thr).sum())
    assert flagged <= math.floor(0.05 * n) and flagged >= math.floor(0.05 * n) - 3  # ties only
    assert bool((s == thr).any())  # the threshold is a clean score
    assert det.calibration["measured_fpr"] == pytest.approx(flagged / n)


# ----------------------------------------------------------------------- mahalanobis
def test_mahalanobis_matches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    clf = Classifier(
        nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), input_shape=(1, 2, 2), num_classes=3
    )
    centres = torch.tensor([[0.2, 0.2, 0.2, 0.2], [0.8, 0.2, 0.5, 0.5], [0.5, 0.8, 0.2, 0.8]])
    y = torch.arange(3).repeat_interleave(200)
    x = (centres[y] + 0.05 * torch.randn(600, 4, generator=g)).clamp(0, 1).view(-1, 1, 2, 2)
    det = MahalanobisDetector(clf, layer="input", ridge=1e-3)
    det.fit(x, y)
    f = x.view(600, 4).double().numpy()
    mu = np.stack([f[y.numpy() == k].mean(0) for k in range(3)])
    centred = f - mu[y.numpy()]
    cov = centred.T @ centred / 600
    cov += 1e-3 * np.diag(cov).mean() * np.eye(4)
    prec = np.linalg.inv(cov)
    np.testing.assert_allclose(det.means.numpy(), mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(det.precision.numpy(), prec, rtol=1e-4)
    probe = torch.rand(7, 1, 2, 2, generator=g)
    p = probe.view(7, 4).double().numpy()
    ref = np.min([[(q - m) @ prec @ (q - m) for m in mu] for q in p], axis=1)
    np.testing.assert_allclose(det.score(probe).numpy(), ref, rtol=1e-4)
    det.calibrate(x, fpr=0.1)  # its cost: no trained weights, 3 means + a 4x4 precision
    cost = RejectingClassifier(clf, det).cost(x[:8], repeats=1)
    assert cost["detector_parameters"] == 0 and cost["detector_buffers"] == 3 * 4 + 4 * 4
    with pytest.raises(InputError, match="every class"):
        det.fit(x[y != 2], y[y != 2])


# ---------------------------------------------------------------------- persistence
@pytest.mark.parametrize(
    ("kind", "settings"),
    [("squeeze", {"squeezers": ["bits:2"]}), ("mahalanobis", {}), ("binary", {"epochs": 2})],
)
def test_detector_save_load_round_trip(
    kind, settings, digits_cnn, digits_mlp, digits_data, tmp_path
):
    xtr, ytr, xte, _ = digits_data
    det = train_detector(digits_cnn, xtr[:300], ytr[:300], kind=kind, eps=0.1, seed=1, **settings)
    det.save(tmp_path / "det")
    meta = json.loads((tmp_path / "det" / "detector.json").read_text())
    assert meta["kind"] == kind and meta["threshold"] == det.threshold
    back = load_detector(tmp_path / "det", digits_cnn)
    assert type(back) is type(det) and back.settings() == det.settings()
    assert torch.equal(back.score(xte[:50]), det.score(xte[:50]))
    with pytest.raises(CheckpointError, match="weights differ"):
        load_detector(tmp_path / "det", digits_mlp)
    assert load_detector(tmp_path / "det", digits_mlp, strict=False).threshold == det.threshold
    (tmp_path / "det" / "detector.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        load_detector(tmp_path / "det", digits_cnn)
    (tmp_path / "det" / "detector.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="JSON"):
        load_detector(tmp_path / "det", digits_cnn)
    with pytest.raises(CheckpointError, match="no detector.json"):
        load_detector(tmp_path / "nothing", digits_cnn)


# ------------------------------------------------------------------- the defended system
def test_rejecting_classifier_is_a_target_with_a_reject_label(digits_cnn, digits_data):
    xtr, _, xte, yte = digits_data
    det = FeatureSqueezing(digits_cnn, squeezers=["bits:2"])
    with pytest.raises(InputError, match="not calibrated"):
        RejectingClassifier(digits_cnn, det)
    det.calibrate(xtr, fpr=0.2)
    system = RejectingClassifier(digits_cnn, det)
    assert system.num_classes == 11 and system.reject_label == 10
    assert system.class_names[-1] == "rejected"
    x = xte[:200]
    labels = system.labels(x)
    flagged = det.flag(x)
    assert torch.equal(labels == 10, flagged)
    assert torch.equal(labels[~flagged], digits_cnn(x[~flagged]).argmax(1))
    with torch.no_grad():
        assert torch.equal(system.logits(x).argmax(1), labels)
    # any attack can be pointed at it; its answers live in 0..C
    r = create("pgd", eps=0.2, steps=5)(system, x[:50], yte[:50])
    assert isinstance(r, AttackResult) and int(r.pred_adv.max()) <= 10
    cost = system.cost(x[:64], repeats=2)
    assert cost["detector_parameters"] == cost["detector_buffers"] == 0
    assert cost["model_parameters"] == sum(p.numel() for p in digits_cnn.parameters())
    assert cost["defended_ms_per_batch"] > 0 and cost["latency_ratio"] > 0
    other = FeatureSqueezing(Classifier(nn.Flatten(), input_shape=(1, 8, 8), num_classes=64))
    other.calibrate(xtr, fpr=0.2)
    with pytest.raises(InputError, match="different model"):
        RejectingClassifier(digits_cnn, other)


def test_defended_accuracy_counts_rejections_by_context():
    pred, y = torch.tensor([0, 1, 3, 3, 2]), torch.tensor([0, 2, 1, 2, 2])
    assert defended_accuracy(pred, y, 3, adversarial=True) == pytest.approx(4 / 5)
    assert defended_accuracy(pred, y, 3, adversarial=False) == pytest.approx(2 / 5)


def test_evasion_loss_closed_form():
    # C = 3 classes + reject; example 0 fooled by 2 (capped at kappa), example 1 detected
    logits = torch.tensor([[0.0, 3.0, 1.0, 3.5], [2.0, 1.0, 0.0, 2.0 + 0.7]])
    y = torch.tensor([0, 0])
    loss = evasion_loss(kappa=1.0, weight=2.0)(logits, y, None)
    # ex0: margin 3 -> capped 1; over = 3.5 - 3 = 0.5 -> 2 * relu(1.5) = 3 -> 1 - 3 = -2
    # ex1: margin 1 - 2 = -1; over = 0.7 -> 2 * 1.7 = 3.4 -> -4.4
    assert torch.allclose(loss, torch.tensor([-2.0, -4.4]))
    with pytest.raises(InputError):
        evasion_loss(weight=0.0)


def test_bpda_twin_has_the_same_scores_and_a_gradient(digits_cnn, digits_data):
    _, _, x, _ = digits_data
    det = FeatureSqueezing(digits_cnn, squeezers=["bits:1"])
    det.calibrate(x, fpr=0.1)
    twin = det.bpda()
    assert torch.equal(twin.score(x), det.score(x)) and twin.threshold == det.threshold
    xr = x[:20].clone().requires_grad_(True)
    with det.frozen():
        (g_exact,) = torch.autograd.grad(det(xr)[1].sum(), xr)
        (g_twin,) = torch.autograd.grad(twin(xr)[1].sum(), xr)
    assert not torch.allclose(g_exact, g_twin)


# ------------------------------------------------------- detection vs adaptive attacks
def test_binary_detector_catches_pgd_and_the_adaptive_attack_walks_past(digits_cnn, digits_data):
    xtr, ytr, xte, yte = digits_data
    det = train_detector(
        digits_cnn, xtr[:800], ytr[:800], kind="binary", eps=0.1, fpr=0.05, seed=0, epochs=8
    )
    rep = evaluate_detector(
        digits_cnn, det, xte[:250], yte[:250], eps=0.1, steps=20, adaptive_steps=30, seed=0
    )
    assert rep.clean_false_positive_rate <= 0.1  # calibrated at 5% on held-out training data
    assert rep.non_adaptive.fooled_model > 0.2  # PGD does fool the bare model
    assert rep.non_adaptive.detection_rate >= 0.8
    assert rep.adaptive is not None and rep.adaptive.fooled_model > 0.2
    assert rep.adaptive.detection_rate <= rep.non_adaptive.detection_rate / 2
    assert rep.adaptive.defended_accuracy < rep.non_adaptive.defended_accuracy - 0.1
    assert rep.to_json()["adaptive"]["detection_rate"] == rep.adaptive.detection_rate


def test_adaptive_pgd_attack_class_runs_through_the_engine(digits_cnn, digits_data):
    xtr, ytr, xte, yte = digits_data
    det = train_detector(digits_cnn, xtr[:600], ytr[:600], kind="mahalanobis")
    system = RejectingClassifier(digits_cnn, det.bpda())
    r = AdaptivePGD(eps=0.2, steps=30)(system, xte[:60], yte[:60])
    assert isinstance(r, AttackResult)
    assert float(r.distance.max()) <= 0.2 + 1e-6
    fooled_and_accepted = (r.pred_adv != yte[:60]) & (r.pred_adv != system.reject_label)
    assert float(fooled_and_accepted.float().mean()) > 0.3
    with pytest.raises(InputError):
        AdaptivePGD(eps=0.1, steps=0)
