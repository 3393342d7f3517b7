"""Red flags: each check fires on a model built to trigger it, and none on an honest one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advx.evaluate import Suite, SuiteAttack, evaluate
from advx.evaluate.flags import FLAG_INFO, triggered
from advx.models.adapter import Classifier
from advx.targets import WhiteBox
from tests._single_thread import single_thread  # noqa: F401  (autouse)


def _fired(rep) -> set[str]:
    return set(triggered(rep.flags))


@pytest.fixture(scope="module")
def data(digits_data):
    _, _, x, y = digits_data
    return x[:120], y[:120]


def _wrap(digits_mlp, *layers: nn.Module, after: bool = True) -> Classifier:
    """The trained digits MLP with extra layers before (or after) it."""
    net = (
        nn.Sequential(digits_mlp.net, *layers) if after else nn.Sequential(*layers, digits_mlp.net)
    )
    return Classifier(net, input_shape=(1, 8, 8), num_classes=10).eval()


class AlwaysDropout(nn.Module):
    """Dropout that stays on in eval mode (a "randomised defense")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.dropout(x, 0.3, training=True)


class Quantize(nn.Module):
    """Rounds inputs to 4 grey levels: zero gradient almost everywhere (masking)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 3) / 3


class Trap(nn.Module):
    """Two classes read from the mean pixel ``s``: class 1 (wrong) only in the band
    ``0.56 < s < 0.64``; a local bump of the loss at ``s = 0.52`` traps small steps.

    On constant 0.5 images: FGSM at eps=0.1 lands in the band, at eps=0.3 overshoots it
    (robust accuracy rises with eps); PGD with big steps jumps over the bump into the
    band while PGD with small steps stalls on it (more steps, less success).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1).mean(dim=1)
        band = torch.sigmoid((s - 0.56) / 2e-4) - torch.sigmoid((s - 0.64) / 2e-4)
        z1 = -5 + 3 * torch.exp(-((s - 0.52) ** 2) / (2 * 0.012**2)) + 10 * band
        return torch.stack([torch.zeros_like(z1), z1], dim=1)


def test_honest_model_raises_no_flag(digits_mlp, data):
    x, y = data
    rep = evaluate(WhiteBox(digits_mlp), (x, y), eps=[0.05, 0.1], suite="quick", probe=100)
    assert _fired(rep) == set()
    assert [f["id"] for f in rep.flags] == list(FLAG_INFO)
    assert all(f["triggered"] is False for f in rep.flags)  # every check ran


def test_randomised_model(digits_mlp, data):
    x, y = data
    clf = _wrap(digits_mlp, AlwaysDropout(), after=False)
    rep = evaluate(WhiteBox(clf), (x, y), eps=0.1, suite="quick", probe=50)
    assert "randomised" in _fired(rep)


def test_softmax_output(digits_mlp, data):
    x, y = data
    clf = _wrap(digits_mlp, nn.Softmax(dim=1))
    rep = evaluate(WhiteBox(clf), (x, y), eps=0.1, suite="quick", probe=50)
    assert "probabilities" in _fired(rep)
    assert "randomised" not in _fired(rep)


def test_gradient_masking_by_quantisation(digits_mlp, data):
    x, y = data
    clf = _wrap(digits_mlp, Quantize(), after=False)
    rep = evaluate(WhiteBox(clf), (x, y), eps=0.2, suite="quick", probe=100)
    fired = _fired(rep)
    assert {"zero-gradients", "unbounded-fails", "black-box-beats-white-box"} <= fired
    assert "randomised" not in fired and "probabilities" not in fired


def test_trap_model_eps_and_steps(tmp_path):
    clf = Classifier(Trap(), input_shape=(1, 8, 8), num_classes=2).eval()
    x = torch.full((40, 1, 8, 8), 0.5)
    y = torch.zeros(40, dtype=torch.int64)
    fgsm_only = Suite("fgsm-only", (SuiteAttack("fgsm"),))
    rep = evaluate(WhiteBox(clf), (x, y), eps=[0.1, 0.3], suite=fgsm_only, probe=40)
    assert rep.robust_accuracy[0.1] == 0.0 and rep.robust_accuracy[0.3] == 1.0
    fired = _fired(rep)
    assert {"eps-not-monotone", "more-steps-worse"} <= fired
    steps = next(f for f in rep.flags if f["id"] == "more-steps-worse")["values"]
    assert steps["robust_long"] > steps["robust_short"]
