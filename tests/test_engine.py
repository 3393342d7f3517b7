"""The attack base's invariants, checked on FGSM/PGD (more attacks: test_attacks_*.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advx.attacks import AttackResult, Status, SweepResult, create
from advx.errors import AccessError, InputError
from advx.models.adapter import Classifier
from advx.targets import LabelBox, WhiteBox


@pytest.fixture()
def tiny():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 4)
    )
    clf = Classifier(net, input_shape=(1, 4, 4), num_classes=4)
    x = torch.rand(32, 1, 4, 4)
    y = clf.eval()(x).argmax(1)
    y[:4] = (y[:4] + 1) % 4  # four misclassified examples must be skipped
    return clf, x, y


def test_eps_zero_is_exact_noop(tiny):
    clf, x, y = tiny
    for slug in ("fgsm", "pgd", "bim"):
        r = create(slug, eps=0.0)(WhiteBox(clf), x, y)
        assert torch.equal(r.x_adv, x)
        assert int(r.queries.sum()) == 0


def test_skipped_and_status(tiny):
    clf, x, y = tiny
    r = create("pgd", eps=0.5, steps=10)(WhiteBox(clf), x, y)
    assert (r.status[:4] == Status.SKIPPED).all()
    assert torch.equal(r.x_adv[:4], x[:4])
    assert ((r.status == Status.SUCCEEDED) == ((r.pred_adv != y) & (r.pred_clean == y))).all()


def test_mode_and_requires_grad_restored(tiny):
    clf, x, y = tiny
    clf.train()
    clf.net[0].eval()  # a mixed state must come back exactly
    clf.net[1].weight.requires_grad_(False)
    before = [(m.training) for m in clf.modules()]
    grads = [p.requires_grad for p in clf.parameters()]
    create("pgd", eps=0.1, steps=3)(WhiteBox(clf), x, y)
    assert [m.training for m in clf.modules()] == before
    assert [p.requires_grad for p in clf.parameters()] == grads
    assert all(p.grad is None for p in clf.parameters())


def test_sweep_returns_matrix(tiny):
    clf, x, y = tiny
    r = create("fgsm", eps=[0.0, 0.1, 0.5])(WhiteBox(clf), x, y)
    assert isinstance(r, SweepResult)
    m = r.success_matrix()
    assert m.shape == (3, 32) and not m[0].any()


def test_save_load_round_trip(tiny, tmp_path):
    clf, x, y = tiny
    r = create("pgd", eps=0.2, steps=5)(WhiteBox(clf), x, y, targets="next")
    assert isinstance(r, AttackResult)
    r.save(tmp_path / "r")
    back = AttackResult.load(tmp_path / "r")
    assert back.targets is not None and r.targets is not None
    assert torch.equal(back.x_adv, r.x_adv) and torch.equal(back.targets, r.targets)
    assert back.threat == r.threat and back.config == r.config


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda x, y: (x * float("nan"), y), "NaN"),
        (lambda x, y: (x + 2.0, y), "outside the model's bounds"),
        (lambda x, y: (x[0], y), "shape of one example"),
        (lambda x, y: (x.view(32, 16), y), "must have shape"),
        (lambda x, y: (x, y + 10), "labels must be in"),
        (lambda x, y: (x, y.float()), "integers"),
        (lambda x, y: (x.numpy(), y), "torch.Tensor"),
    ],
)
def test_bad_inputs_raise_typed_errors(tiny, mutate, match):
    clf, x, y = tiny
    bx, by = mutate(x, y)
    with pytest.raises(InputError, match=match):
        create("fgsm", eps=0.1)(WhiteBox(clf), bx, by)


def test_bad_settings_raise(tiny):
    clf, x, y = tiny
    with pytest.raises(InputError, match="eps must be"):
        create("fgsm", eps=-0.1)
    with pytest.raises(InputError, match="steps"):
        create("pgd", eps=0.1, steps=0)
    with pytest.raises(InputError, match="different class"):
        create("fgsm", eps=0.1)(WhiteBox(clf), x, y, targets=y)


def test_gradient_attack_refuses_label_only_target(tiny):
    clf, x, y = tiny
    box = LabelBox(lambda t: clf(t).argmax(1), input_shape=(1, 4, 4), num_classes=4)
    with pytest.raises(AccessError, match="gradients"):
        create("pgd", eps=0.1)(box, x, y)
    with pytest.raises(AccessError):
        WhiteBox(clf).as_labels().scores(x)


def test_queries_match_what_the_target_saw(tiny):
    clf, x, y = tiny
    t = WhiteBox(clf)
    r = create("pgd", eps=0.3, steps=7)(t, x, y)
    assert t.queries == int(r.queries.sum()) + r.overhead_queries
    attacked = r.attacked
    assert (r.queries[attacked] >= 1).all() and (r.queries[attacked] <= 7).all()


def test_seeded_runs_are_bitwise_reproducible(tiny):
    clf, x, y = tiny
    a = create("pgd", eps=0.1, steps=5, seed=3)(WhiteBox(clf), x, y)
    b = create("pgd", eps=0.1, steps=5, seed=3)(WhiteBox(clf), x, y)
    c = create("pgd", eps=0.1, steps=5, seed=4)(WhiteBox(clf), x, y)
    assert torch.equal(a.x_adv, b.x_adv) and not torch.equal(a.x_adv, c.x_adv)
