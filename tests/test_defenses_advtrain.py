"""Adversarial training (advx.defenses.adversarial_training) and DDP training."""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from advx.attacks.pgd import pgd
from advx.attacks.rng import ExampleRng
from advx.data import load
from advx.defenses.adversarial_training import (
    FGSMRSTraining,
    FGSMTraining,
    OverfitGuard,
    TRADESTraining,
    adversarial_train,
    adversaries,
    create_adversary,
    register_adversary,
)
from advx.errors import ConfigError
from advx.models import read_info
from advx.models.adapter import Classifier
from advx.training import StopTraining, TrainBatch, default_config, fit, train
from tests._single_thread import single_thread  # noqa: F401  (autouse)

EPS = 0.1


def _pgd_accuracy(model: Classifier, x: Tensor, y: Tensor, eps: float = EPS) -> float:
    with model.frozen_eval():
        g = torch.Generator().manual_seed(0)
        xa = pgd(model, x, y, eps=eps, step_size=2.5 * eps / 20, steps=20, generator=g)
        return float((model(xa).argmax(1) == y).float().mean())


def _batch(model: Classifier, x: Tensor, y: Tensor, seed: int = 0) -> TrainBatch:
    return TrainBatch(
        x=x, y=y, model=model, forward=model, generator=torch.Generator().manual_seed(seed),
        epoch=0, step=0, progress=0.0,
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained_pair(tmp_path_factory):
    """(standard MLP, FGSM-RS MLP, checkpoint dir of the latter), digits, same config."""
    config = default_config("mlp", "digits", epochs=20)
    std = train("mlp", "digits", config=config).model
    out = tmp_path_factory.mktemp("adv") / "mlp-fgsm-rs"
    res = adversarial_train(
        "mlp", "digits", adversary=create_adversary("fgsm-rs", eps=EPS), config=config, out=out
    )
    return std, res, out


# ---------------------------------------------------------------------------- registry
def test_registry_names_settings_and_errors():
    assert {"fgsm", "fgsm-rs", "pgd", "trades"} <= set(adversaries())
    adv = create_adversary("trades", eps=0.1, steps=None, beta=3.0)  # None = default
    assert isinstance(adv, TRADESTraining) and adv.steps == 10 and adv.beta == 3.0
    assert adv.recipe() == {
        "adv": "trades", "eps": 0.1, "steps": 10, "step_size": 0.025, "beta": 3.0, "norm": "linf"
    }  # fmt: skip
    assert create_adversary("fgsm-rs", eps=0.08).recipe()["step_size"] == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="unknown adversary"):
        create_adversary("nope", eps=0.1)
    with pytest.raises(ConfigError, match="not steps"):
        create_adversary("fgsm", eps=0.1, steps=3)
    with pytest.raises(ConfigError, match="eps"):
        create_adversary("pgd")
    for bad in ({"eps": -1.0}, {"eps": 0.1, "steps": 0}, {"eps": 0.1, "step_size": 0.0}):
        with pytest.raises(ConfigError):
            create_adversary("pgd", **bad)
    with pytest.raises(ConfigError, match="registered twice"):
        register_adversary("pgd", "again", lambda **k: None, settings=())


# ------------------------------------------------------------------- inner maximisation
def test_fgsm_rs_is_one_signed_step_from_a_uniform_start(digits_mlp, digits_data):
    _, _, x, y = digits_data
    x, y = x[:64], y[:64]
    adv = FGSMRSTraining(eps=EPS)
    with digits_mlp.frozen_eval():
        got = adv.craft(digits_mlp, x, y, torch.Generator().manual_seed(5))
        # reference written out: uniform start (drawn per example, as every attack draws
        # it: advx.attacks.rng), one step of 1.25 eps, project, clip
        rng = ExampleRng.coerce(torch.Generator().manual_seed(5), x.shape[0])
        x0 = (x + rng.uniform(-EPS, EPS, x.shape[1:])).clamp(0, 1)
        x0.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(digits_mlp(x0), y, reduction="sum"), x0)
        step = x0.detach() + 1.25 * EPS * grad.sign()
        ref = (x + (step - x).clamp(-EPS, EPS)).clamp(0, 1)
    assert torch.allclose(got, ref, atol=1e-6)
    assert float((got - x).abs().max()) <= EPS + 1e-6


def test_fgsm_loss_is_the_mixed_objective(digits_mlp, digits_data):
    _, _, x, y = digits_data
    x, y = x[:32], y[:32]
    adv = FGSMTraining(eps=EPS, alpha=0.5)
    loss, logits = adv.loss(_batch(digits_mlp, x, y))
    with digits_mlp.frozen_eval():
        xr = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(digits_mlp(xr), y, reduction="sum"), xr)
    x_adv = (x + EPS * g.sign()).clamp(0, 1)
    ref = 0.5 * F.cross_entropy(digits_mlp(x), y) + 0.5 * F.cross_entropy(digits_mlp(x_adv), y)
    assert torch.allclose(loss, ref, atol=1e-6)
    assert torch.allclose(logits, digits_mlp(x_adv), atol=1e-6)


def test_trades_maximises_the_kl_and_its_loss_has_the_closed_form(digits_mlp, digits_data):
    _, _, x, y = digits_data
    x, y = x[:64], y[:64]
    adv = TRADESTraining(eps=EPS, beta=6.0, steps=10)
    p = digits_mlp(x).softmax(1).detach()

    def kl(xa: Tensor) -> float:
        with torch.no_grad():
            return float(F.kl_div(digits_mlp(xa).log_softmax(1), p, reduction="batchmean"))

    with digits_mlp.frozen_eval():
        x_adv = adv.craft(digits_mlp, x, y, torch.Generator().manual_seed(1))
        start = adv.__class__(eps=EPS, steps=1, step_size=1e-9).craft(
            digits_mlp, x, y, torch.Generator().manual_seed(1)
        )  # the uniform random start, one negligible step
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6
    assert kl(x_adv) > 2 * kl(start)
    loss, _ = adv.loss(_batch(digits_mlp, x, y, seed=1))
    ref = F.cross_entropy(digits_mlp(x), y) + 6.0 * kl(x_adv)
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)


# --------------------------------------------------------------------------- training
def test_adversarial_training_raises_robust_accuracy(trained_pair, digits_data):
    std, res, _ = trained_pair
    test = load("digits", "test")
    r_std, r_adv = _pgd_accuracy(std, test.x, test.y), _pgd_accuracy(res.model, test.x, test.y)
    assert res.test_accuracy >= 0.93
    assert r_adv >= r_std + 0.12, (r_std, r_adv)


def test_checkpoint_records_the_recipe(trained_pair):
    _, res, out = trained_pair
    info = read_info(out)
    assert info["adversarial"] == {
        "adv": "fgsm-rs", "eps": EPS, "steps": 1, "step_size": 1.25 * EPS, "beta": None,
        "norm": "linf",
    }  # fmt: skip
    assert info["dataset"] == "digits" and info["stopped"] is None
    checks = info["overfit_checks"]
    assert len(checks) == 20 and all(0 <= c["pgd_accuracy"] <= 1 for c in checks)
    assert checks[-1]["pgd_accuracy"] > checks[0]["pgd_accuracy"]


# ------------------------------------------------------------- catastrophic overfitting
def test_guard_stops_on_a_collapse_and_restores_the_best_weights(trained_pair, caplog):
    std, res, _ = trained_pair
    ds = load("digits", "train")
    x, y = ds.x[:300], ds.y[:300]
    model = copy.deepcopy(res.model)
    robust = {k: v.clone() for k, v in model.state_dict().items()}
    guard = OverfitGuard(x, y, eps=EPS, max_drop=0.1)
    first = guard.check(model)
    assert not first["collapsed"]
    model.load_state_dict(std.state_dict())  # the sudden loss of robustness
    with pytest.raises(StopTraining, match="catastrophic overfitting"):
        guard.check(model, epoch=4)
    assert guard.collapsed is not None and guard.collapsed["epoch"] == 5
    assert all(torch.equal(v, robust[k]) for k, v in model.state_dict().items())
    warn = OverfitGuard(x, y, eps=EPS, max_drop=0.1, action="warn")
    warn.check(model)
    model.load_state_dict(std.state_dict())
    with caplog.at_level(logging.WARNING):
        assert warn.check(model)["collapsed"]
    assert "catastrophic overfitting" in caplog.text


def test_guard_ends_fit_early_through_the_loss_hook(trained_pair):
    """A crafted collapse inside the training loop: at epoch 3 the weights turn into the
    standard model's; the guard stops training after that epoch and restores epoch 2's."""
    std, res, _ = trained_pair
    ds = load("digits", "train")
    model = copy.deepcopy(res.model)
    robust = {k: v.clone() for k, v in model.state_dict().items()}

    class Collapse:
        def loss(self, batch):
            if batch.epoch == 2 and batch.step == 0:
                batch.model.load_state_dict(std.state_dict())
            logits = batch.forward(batch.x)
            return 0.0 * F.cross_entropy(logits, batch.y), logits

    guard = OverfitGuard(ds.x[:300], ds.y[:300], eps=EPS, max_drop=0.1)
    config = default_config("mlp", "digits", epochs=6, lr=1e-9, schedule="constant")
    hist = fit(model, (ds.x[300:], ds.y[300:]), config=config, adversary=guard.wrap(Collapse()),
               on_step=guard.on_step)  # fmt: skip
    assert hist.stopped is not None and "catastrophic overfitting at epoch 3" in hist.stopped
    assert len(hist.epochs) == 3 and len(guard.checks) == 3
    assert all(torch.allclose(v, robust[k]) for k, v in model.state_dict().items())


# ---------------------------------------------------------------------------------- DDP
@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(trained_pair, tmp_path):
    """`torchrun --nproc_per_node 2 -m advx train --adv fgsm-rs` (DDP, gloo) with half the
    per-process batch reaches the single-process run's accuracy within noise."""
    _, single, _ = trained_pair
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = Path(shutil.which("torchrun") or "torchrun")
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        str(torchrun), "--nproc_per_node", "2", "-m", "advx", "train", "--data", "digits",
        "--model", "mlp", "--epochs", "20", "--batch-size", "64", "--adv", "fgsm-rs",
        "--eps", str(EPS), "--out", str(out), "--threads", "1", "--json",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1  # rank 0 alone reports (and writes)
    info = read_info(out)
    assert info["training"]["processes"] == 2 and info["adversarial"]["adv"] == "fgsm-rs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]  # no stray partial dirs
    from advx.models import load as load_model

    ddp = load_model(out)
    test = load("digits", "test")
    acc = float((ddp(test.x).argmax(1) == test.y).float().mean())
    assert abs(acc - single.test_accuracy) <= 0.02
    assert (
        abs(_pgd_accuracy(ddp, test.x, test.y) - _pgd_accuracy(single.model, test.x, test.y))
        <= 0.05
    )
