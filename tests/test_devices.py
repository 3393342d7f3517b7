"""Attacks follow the input's dtype and the model's device; mixed precision keeps dtypes.

On CPU the dtype half runs everywhere (float64 models and inputs expose every tensor an
attack creates in the wrong dtype). The ``cuda`` tests run where a CUDA device exists
(``scripts/gpu-check.sh``); they are skipped elsewhere.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from advx.attacks import AttackResult, attack_dataset, create
from advx.attacks.rng import ExampleRng
from advx.models.adapter import Classifier
from advx.targets import WhiteBox

# every attack with random choices or its own tensors, in a cheap setting
CASES = [
    ("fgsm", {"eps": 0.2}, "gradients"),
    ("pgd", {"eps": 0.2, "steps": 3}, "gradients"),
    ("pgd", {"eps": 1.5, "norm": "l2", "steps": 3}, "gradients"),
    ("pgd", {"eps": 4.0, "norm": "l1", "steps": 3}, "gradients"),
    ("apgd-ce", {"eps": 0.2, "steps": 4}, "gradients"),
    ("apgd-t", {"eps": 0.2, "steps": 4, "n_target_classes": 2}, "gradients"),
    ("mi-fgsm", {"eps": 0.2, "steps": 3, "diversity_prob": 0.5}, "gradients"),
    ("cw-l2", {"steps": 5, "binary_search_steps": 1}, "gradients"),
    ("deepfool", {"max_iter": 5}, "gradients"),
    ("fab", {"steps": 3, "restarts": 2}, "gradients"),
    ("square", {"eps": 0.2, "max_queries": 20}, "scores"),
    ("square", {"eps": 1.5, "norm": "l2", "max_queries": 20}, "scores"),
    ("simba", {"eps": 2.0, "max_queries": 30}, "scores"),
    ("simba-pixel", {"eps": 2.0, "max_queries": 30}, "scores"),
    ("nes-pgd", {"eps": 0.2, "settings": {"steps": 2}, "samples": 10}, "scores"),
    ("hopskipjump", {"max_queries": 200, "steps": 2}, "labels"),
    ("rays", {"eps": 0.3, "max_queries": 50}, "labels"),
]


def _view(target: WhiteBox, access: str):
    return {"gradients": target, "scores": target.as_scores(), "labels": target.as_labels()}[access]


@pytest.fixture(scope="module")
def cnn64(digits_cnn):
    return copy.deepcopy(digits_cnn).double()


@pytest.mark.parametrize(("slug", "settings", "access"), CASES, ids=lambda v: str(v)[:24])
def test_float64_model_and_inputs_stay_float64(cnn64, digits_data, slug, settings, access):
    x, y = digits_data[2][:12].double(), digits_data[3][:12]
    try:
        atk = create(slug, **settings)
    except TypeError as e:  # a setting this attack lacks in this tree
        pytest.skip(str(e))
    r = atk(_view(WhiteBox(cnn64), access), x, y)
    assert r.x_adv.dtype == torch.float64 and r.x_adv.device == x.device
    assert float(r.x_adv.min()) >= 0.0 and float(r.x_adv.max()) <= 1.0
    if atk.eps is not None:
        assert float(r.distance.max()) <= float(atk.eps) + 1e-6  # distances are float32
    again = atk(_view(WhiteBox(cnn64), access), x, y)
    assert torch.equal(again.x_adv, r.x_adv)  # the seed reproduces it in float64 too


def test_float32_inputs_on_a_float64_model_come_back_float32(cnn64, digits_data):
    x, y = digits_data[2][:12], digits_data[3][:12]
    r = create("pgd", eps=0.2, steps=3)(WhiteBox(cnn64), x, y)
    assert r.x_adv.dtype == torch.float32 and float((r.x_adv - x).abs().max()) <= 0.2 + 1e-6


def test_half_precision_draws(digits_data):
    x = digits_data[2][:8].half()
    from advx.attacks._steps import random_start

    for norm in ("linf", "l2", "l1"):
        z = random_start(x, 0.3, norm, (0.0, 1.0), ExampleRng(0, torch.arange(8)))
        assert z.dtype == torch.float16 and torch.isfinite(z).all()


def test_amp_is_a_no_op_off_the_gpu(digits_cnn, digits_data):
    x, y = digits_data[2][:16], digits_data[3][:16]
    atk = create("pgd", eps=0.2, steps=3)
    plain = atk(WhiteBox(digits_cnn), x, y)
    amp = atk(WhiteBox(digits_cnn, amp=True), x, y)
    assert torch.equal(plain.x_adv, amp.x_adv)


def test_targets_report_their_device(digits_cnn):
    assert WhiteBox(digits_cnn).device == torch.device("cpu")
    assert WhiteBox(digits_cnn).as_scores().device == torch.device("cpu")
    from advx.targets import ScoreBox

    box = ScoreBox(lambda x: torch.full((len(x), 2), 0.5), input_shape=(3,), num_classes=2)
    assert box.device is None  # takes inputs wherever they are


def test_rng_is_device_agnostic_in_its_integers():
    a = ExampleRng(7, torch.arange(5))
    assert a.device == torch.device("cpu") and a.bits((4,)).dtype == torch.int64
    assert torch.equal(
        ExampleRng(7, torch.arange(5)).bits((4,)), ExampleRng(7, [0, 1, 2, 3, 4]).bits((4,))
    )


# ------------------------------------------------------------------------------ CUDA
@pytest.mark.cuda
@pytest.mark.parametrize(("slug", "settings", "access"), CASES, ids=lambda v: str(v)[:24])
def test_attacks_run_on_cuda_and_return_on_the_input_device(
    digits_cnn, digits_data, slug, settings, access
):
    model = copy.deepcopy(digits_cnn).cuda()
    x, y = digits_data[2][:12], digits_data[3][:12]
    atk = create(slug, **settings)
    r = atk(_view(WhiteBox(model), access), x, y)  # CPU data, CUDA model
    assert r.x_adv.device.type == "cpu" and r.queries.device.type == "cpu"
    rc = atk(_view(WhiteBox(model), access), x.cuda(), y.cuda())  # all on the GPU
    assert rc.x_adv.device.type == "cuda" and rc.x_adv.dtype == torch.float32
    assert float(rc.x_adv.min()) >= 0.0 and float(rc.x_adv.max()) <= 1.0


@pytest.mark.cuda
def test_rng_gives_the_same_integers_on_cuda():
    cpu = ExampleRng(3, torch.arange(64)).bits((100,))
    gpu = ExampleRng(3, torch.arange(64), device="cuda").bits((100,))
    assert gpu.device.type == "cuda" and torch.equal(cpu, gpu.cpu())


@pytest.mark.cuda
def test_amp_keeps_the_input_dtype_and_still_attacks(digits_cnn, digits_data):
    model = copy.deepcopy(digits_cnn).cuda()
    x, y = digits_data[2][:64].cuda(), digits_data[3][:64].cuda()
    atk = create("pgd", eps=0.2, steps=5)
    r = atk(WhiteBox(model, amp=True), x, y)
    assert r.x_adv.dtype == torch.float32 and float((r.x_adv - x).abs().max()) <= 0.2 + 1e-6
    plain = atk(WhiteBox(model), x, y)
    assert abs(float(r.succeeded.float().mean()) - float(plain.succeeded.float().mean())) < 0.1


@pytest.mark.cuda
def test_attack_dataset_moves_batches_and_keeps_results_on_cpu(digits_cnn, digits_data):
    model = copy.deepcopy(digits_cnn).cuda()
    x, y = digits_data[2][:50], digits_data[3][:50]
    atk = create("pgd", eps=0.2, steps=3)
    r = attack_dataset(atk, WhiteBox(model), (x, y), batch_size=16, progress=False)
    assert isinstance(r, AttackResult)
    assert r.x_adv.device.type == "cpu" and len(r) == 50
    whole = atk(WhiteBox(model), x, y)
    assert torch.equal(r.status, whole.status)


def test_classifier_device_follows_its_parameters():
    clf = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), input_shape=(1, 2, 2),
                     num_classes=2)  # fmt: skip
    assert WhiteBox(clf).device == torch.device("cpu")


@pytest.mark.cuda
def test_evaluate_on_cuda_agrees_with_the_cpu(digits_cnn, digits_data):
    from advx.evaluate import evaluate

    x, y = digits_data[2][:48], digits_data[3][:48]
    cpu = evaluate(WhiteBox(digits_cnn), (x, y), eps=0.1, suite="quick", probe=0)
    model = copy.deepcopy(digits_cnn).cuda()
    gpu = evaluate(WhiteBox(model), (x.cuda(), y.cuda()), eps=0.1, suite="quick", probe=0)
    # the same seeded attacks; GPU kernels round differently, so allow one example
    assert abs(gpu.robust_accuracy[0.1] - cpu.robust_accuracy[0.1]) <= 1 / 48 + 1e-9
    assert gpu.clean_accuracy == cpu.clean_accuracy


@pytest.mark.cuda
def test_square_on_cuda_follows_the_cpu_run(digits_cnn, digits_data):
    x, y = digits_data[2][:32], digits_data[3][:32]
    atk = create("square", eps=0.2, max_queries=200, seed=5)
    cpu = atk(WhiteBox(digits_cnn).as_scores(), x, y)
    model = copy.deepcopy(digits_cnn).cuda()
    gpu = atk(WhiteBox(model).as_scores(), x.cuda(), y.cuda())
    assert int(gpu.queries.max()) <= 200
    assert float((gpu.x_adv - x.cuda()).abs().max()) <= 0.2 + 1e-6
    # per-example random streams are device-agnostic: the runs take the same squares and
    # differ only where a float rounding flips an accept decision
    same = (gpu.status.cpu() == cpu.status).float().mean()
    assert float(same) >= 0.9


@pytest.mark.cuda
def test_training_on_cuda_writes_a_cpu_checkpoint(tmp_path):
    from advx import models, training

    cfg = training.default_config("mlp", "digits", epochs=2)
    res = training.train("mlp", "digits", config=cfg, out=tmp_path / "m", device="cuda")
    assert res.test_accuracy > 0.8
    back = models.load(tmp_path / "m")
    assert next(back.parameters()).device.type == "cpu"


def test_full_precision_turns_amp_off_for_the_verdict_and_restores_it(digits_cnn):
    from advx.targets import full_precision

    white = WhiteBox(digits_cnn, amp=True)
    for view in (white, white.as_scores(), white.as_labels()):
        with full_precision(view):
            assert white.amp is False
        assert white.amp is True
    plain = WhiteBox(digits_cnn)
    with full_precision(plain):
        assert plain.amp is False
    assert plain.amp is False
