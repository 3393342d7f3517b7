"""Adaptive suites: FAB/Square run only where the gradient attacks may be wrong.

A model with a quantising front end (``round``: zero input gradients everywhere) must
escalate every survivor, and Square must then break what APGD could not move on; a model
with honest gradients escalates few; budgets, the eps-ball, determinism and resumption
hold as for any suite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from advx.attacks import create
from advx.attacks.losses import dlr_loss
from advx.errors import ConfigError
from advx.evaluate import Suite, SuiteAttack, escalation, evaluate
from advx.evaluate.escalation import SIGNS
from advx.evaluate.records import read_records
from advx.evaluate.suites import SUITES
from advx.models.adapter import Classifier
from advx.targets import WhiteBox
from tests._single_thread import single_thread  # noqa: F401  (autouse)

EPS = 0.2
SIGN_NAMES = tuple(SIGNS)


def suite(escalate: tuple[str, ...] = SIGN_NAMES) -> Suite:
    """The standard suite's shape with short budgets (seconds on digits)."""
    return Suite(
        "small-adaptive",
        (
            SuiteAttack("apgd-ce", {"steps": 10}),
            SuiteAttack("apgd-t", {"steps": 10, "n_target_classes": 3}),
            SuiteAttack("fab", {"steps": 10}, escalate=escalate),
            SuiteAttack("square", {"steps": 300, "p_init": 0.8}, escalate=escalate),
        ),
    )


class _Quantise(nn.Module):
    """Rounds inputs to 4 grey levels before the network: the gradient of ``round`` is 0,
    so every input gradient is exactly zero (gradient shattering, Athalye et al. 2018)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(torch.round(x * 3) / 3)
        return out


@pytest.fixture(scope="module")
def data(digits_data):
    _, _, x, y = digits_data
    return x[:60], y[:60]


@pytest.fixture(scope="module")
def masked(digits_cnn):
    return Classifier(_Quantise(digits_cnn), input_shape=(1, 8, 8), num_classes=10).eval()


def _records(run_dir: Path) -> list[dict[str, Any]]:
    return [r for r in read_records(run_dir / "results.jsonl") if r["type"] == "attack"]


def test_masked_model_escalates_and_square_finds_what_apgd_missed(masked, data, tmp_path):
    x, y = data
    rep = evaluate(
        WhiteBox(masked), (x, y), eps=EPS, suite=suite(), batch_size=30, probe=0,
        run_dir=tmp_path / "r",
    )  # fmt: skip
    recs = _records(tmp_path / "r")
    sq = [r for r in recs if r["attack"] == "square"]
    for r in sq:  # every survivor of the gradient attacks escalated, for zero gradients
        esc = r["escalation"]
        assert sorted(esc["reasons"]["zero-gradient"]) == sorted(r["idx"])
        assert len(r["idx"]) == esc["candidates"]
        assert esc["reasons"]["masked-model"]
    broken_by_square = sum(len(r["idx"]) - sum(r["robust"]) for r in sq)
    assert broken_by_square >= 5  # APGD could not move; Square could
    after_gradient = rep.per_attack["apgd-t"][EPS]
    assert rep.robust_accuracy[EPS] < after_gradient
    d = rep.details["square"][EPS]["escalation"]
    assert d["escalated"] == d["candidates"] and d["reasons"]["zero-gradient"] == d["candidates"]
    for r in sq:
        assert max(r["queries"]) <= 300  # Square's budget


def test_honest_model_matches_the_full_suite_and_escalates_less(digits_cnn, data, tmp_path):
    x, y = data
    target, eps = WhiteBox(digits_cnn), 0.05  # leaves survivors on this model
    adaptive = evaluate(target, (x, y), eps=eps, suite=suite(), batch_size=30, probe=0)
    full = evaluate(target, (x, y), eps=eps, suite=suite(()), batch_size=30, probe=0)
    assert adaptive.robust_accuracy[eps] <= full.robust_accuracy[eps] + 1 / 60
    esc = adaptive.details["square"][eps]["escalation"]
    assert esc["candidates"] >= 5
    assert esc["reasons"]["zero-gradient"] == 0 and esc["reasons"]["masked-model"] == 0
    assert adaptive.details["square"][eps]["attacked"] < full.details["square"][eps]["attacked"]


def test_deterministic_eps_ball_and_resume_inside_a_batch(masked, data, tmp_path):
    x, y = data
    kw: dict[str, Any] = dict(eps=EPS, suite=suite(), batch_size=30, probe=0, save_examples=True)
    a = evaluate(WhiteBox(masked), (x, y), run_dir=tmp_path / "a", **kw)
    b = evaluate(WhiteBox(masked), (x, y), **{**kw, "save_examples": False})
    assert a.robust_accuracy == b.robust_accuracy
    for f in (tmp_path / "a" / "examples").glob("*.safetensors"):
        t = load_file(str(f))
        assert float((t["x_adv"] - t["x"]).abs().max()) <= EPS + 1e-6
    # a run killed after the gradient steps of the last batch: drop its later records
    lines = (tmp_path / "a" / "results.jsonl").read_text().splitlines()
    keep = [
        ln for ln in lines
        if not (json.loads(ln).get("batch") == 1 and (json.loads(ln)["type"] == "batch_done"
                or json.loads(ln).get("attack") in ("fab", "square")))
        and json.loads(ln)["type"] != "probe"
    ]  # fmt: skip
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "run.json").write_text((tmp_path / "a" / "run.json").read_text())
    (tmp_path / "c" / "results.jsonl").write_text("\n".join(keep) + "\n")
    c = evaluate(WhiteBox(masked), (x, y), run_dir=tmp_path / "c", resume=True, **kw)
    assert c.robust_accuracy == a.robust_accuracy
    ra = [r for r in _records(tmp_path / "a") if r["attack"] == "square"]
    rc = [r for r in _records(tmp_path / "c") if r["attack"] == "square"]
    key = lambda r: r["batch"]  # noqa: E731
    for p, q in zip(sorted(ra, key=key), sorted(rc, key=key), strict=True):
        assert p["idx"] == q["idx"] and p["robust"] == q["robust"]
        assert p["escalation"] == q["escalation"]


def test_suites_and_escalate_validation():
    std, full = SUITES["standard"], SUITES["standard-full"]
    # standard = standard-full plus an escalated APGD-T with restarts after APGD-T
    assert [a.slug for a in std.attacks] == ["apgd-ce", "apgd-t", "apgd-t", "fab", "square"]
    assert [a.slug for a in full.attacks] == ["apgd-ce", "apgd-t", "fab", "square"]
    assert not any(a.escalate for a in full.attacks)
    assert [bool(a.escalate) for a in std.attacks] == [False, False, True, True, True]
    assert std.attacks[2].settings["restarts"] > 1
    # a longer run than the first APGD-T: its budget-aware schedule explores longer
    assert std.attacks[2].settings["steps"] > std.attacks[1].settings["steps"]
    assert "near-boundary" in std.attacks[2].escalate and "near-boundary" in std.attacks[3].escalate
    with pytest.raises(ConfigError, match="escalate"):
        SuiteAttack("square", escalate=("gut-feeling",))
    s = Suite.from_dict({"attacks": [{"attack": "square", "escalate": ["zero-gradient"]}]})
    assert s.attacks[0].escalate == ("zero-gradient",)
    assert Suite.from_dict(s.to_dict()) == s


def test_score_only_target_runs_adaptive_steps_on_every_survivor(digits_cnn, data):
    """Escalation signs need gradients: on a score-only target the gradient steps are
    skipped and the adaptive Square step attacks every correctly classified example."""
    x, y = data
    rep = evaluate(
        WhiteBox(digits_cnn).as_scores(), (x, y), eps=EPS, suite=suite(), batch_size=60,
        probe=0,
    )  # fmt: skip
    correct = round(rep.clean_accuracy * 60)
    assert rep.details["square"][EPS]["attacked"] == correct
    assert "escalation" not in rep.details["square"][EPS]


def _two_class_linear() -> WhiteBox:
    """logits = (x_0, x_1, 0) on inputs of 4 features: the margin of class 0 is
    ``x_0 - max(x_1, 0)``, known in closed form."""
    net = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        net.weight.zero_()
        net.weight[0, 0] = net.weight[1, 1] = 1.0
    return WhiteBox(Classifier(net, input_shape=(4,), num_classes=3).eval())


def test_near_boundary_sign_fires_only_where_the_best_point_kept_little_margin():
    """Clean margin 0.6; best points at margin 0.03 (5% of it: a new random start may
    cross) and 0.4 (67%: far from the boundary)."""
    target = _two_class_linear()
    x = torch.tensor([[0.8, 0.2, 0.5, 0.5]] * 2)
    y = torch.zeros(2, dtype=torch.long)
    best = torch.tensor([[0.53, 0.5, 0.5, 0.5], [0.7, 0.3, 0.5, 0.5]])
    assert torch.allclose(escalation.logit_margin(target, best, y), torch.tensor([0.03, 0.4]))
    found = escalation.signs(
        target, x, y, best, eps=0.3, norm="linf", generator=torch.Generator().manual_seed(0)
    )
    assert set(found) == set(SIGNS)
    assert found["near-boundary"].tolist() == [True, False]


def test_apgd_t_returns_the_round_that_came_closest(digits_mlp, data):
    """An example no target round fools returns the round with the highest targeted DLR
    loss, not the last round's point (towards the least likely class): its loss towards
    some target is at least what the first round alone reached."""
    x, y = data
    target, eps = WhiteBox(digits_mlp), 0.04
    nine = create("apgd-t", eps=eps, steps=10, seed=3)(target, x, y)
    one = create("apgd-t", eps=eps, steps=10, seed=3, n_target_classes=1)(target, x, y)
    with torch.no_grad():
        clean = digits_mlp(x)
        order = clean.scatter(1, y.view(-1, 1), float("-inf")).argsort(1, descending=True)
        first = dlr_loss(digits_mlp(one.x_adv), y, order[:, 0])
        z = digits_mlp(nine.x_adv)
        reached = torch.stack([dlr_loss(z, y, order[:, r]) for r in range(9)], 1).amax(1)
    left = (nine.pred_adv == y) & (one.pred_adv == y)
    assert int(left.sum()) >= 10  # enough robust examples at this eps to mean something
    assert bool((reached[left] >= first[left] - 1e-5).all())


def test_near_boundary_survivors_get_apgd_t_restarts(digits_cnn, data, tmp_path):
    """The escalated APGD-T step attacks exactly the survivors flagged near-boundary or
    unconverged, and its records say which and why; new random starts break some of
    them (at eps 0.1 the digits CNN leaves 37 survivors, 5 of them near the boundary)."""
    x, y = data
    eps = 0.1
    restart = Suite(
        "with-restarts",
        (
            SuiteAttack("apgd-ce", {"steps": 10}),
            SuiteAttack("apgd-t", {"steps": 10, "n_target_classes": 3}),
            SuiteAttack(
                "apgd-t",
                {"steps": 10, "n_target_classes": 3, "restarts": 3},
                escalate=("near-boundary", "unconverged"),
            ),
        ),
    )
    rep = evaluate(
        WhiteBox(digits_cnn), (x, y), eps=eps, suite=restart, batch_size=60, probe=0,
        run_dir=tmp_path / "r",
    )  # fmt: skip
    (esc,) = [r for r in _records(tmp_path / "r") if r["step"] == 2]
    reasons = esc["escalation"]["reasons"]
    assert sorted(esc["idx"]) == sorted(set(reasons["near-boundary"]) | set(reasons["unconverged"]))
    assert reasons["near-boundary"]  # the digits CNN leaves some survivors close to it
    assert esc["escalation"]["candidates"] > len(esc["idx"])  # not every survivor
    after = [v[eps] for v in rep.per_attack.values()]
    assert after[2] < after[1]  # the restarts broke some of the flagged survivors
