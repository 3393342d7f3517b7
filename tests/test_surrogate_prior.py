"""surrogate-square: a surrogate's transfer candidate refined by Square, over HTTP too.

The target is the digits CNN fixture (trained on the digits training split); the
surrogate is a different network trained on *other* images (test images not attacked
here) with their true labels: it never sees the target's weights or training labels.
"""

from __future__ import annotations

import pytest
import torch
from starlette.testclient import TestClient
from torch import nn

from advx.adapters import HttpTarget
from advx.attacks import create
from advx.attacks.substitute import substitute_net
from advx.errors import InputError
from advx.models.adapter import Classifier
from advx.serve.server import create_app
from advx.targets import WhiteBox
from tests._single_thread import single_thread  # noqa: F401  (autouse)

EPS = 0.3


@pytest.fixture(scope="module")
def setup(digits_cnn, digits_data):
    """(target model, surrogate, x, y): 100 correctly classified test digits to attack;
    the surrogate is trained on the rest of the test split only."""
    _, _, xte, yte = digits_data
    x_att, y_att, x_sur, y_sur = xte[:120], yte[:120], xte[120:], yte[120:]
    torch.manual_seed(0)
    sur = Classifier(substitute_net("mlp", (1, 8, 8), 10), input_shape=(1, 8, 8), num_classes=10)
    opt = torch.optim.Adam(sur.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    sur.train()
    for _ in range(20):
        for b in torch.randperm(len(y_sur), generator=g).split(32):
            loss = nn.functional.cross_entropy(sur(x_sur[b]), y_sur[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    sur.eval()
    with torch.no_grad():
        ok = digits_cnn(x_att).argmax(1) == y_att
    return digits_cnn, sur, x_att[ok][:100], y_att[ok][:100]


def test_over_http_high_success_in_few_queries(setup):
    model, sur, x, y = setup
    app = create_app(model, name="digits")
    with TestClient(app) as tc:
        remote = HttpTarget("http://testserver", "digits", http_client=tc)
        r = create("surrogate-square", surrogate=sur, eps=EPS, max_queries=300, seed=0)(
            remote, x, y
        )
    success = float((r.pred_adv != y).float().mean())
    assert success >= 0.95
    assert float(r.queries.float().median()) <= 20
    assert float((r.x_adv - x).abs().max()) <= EPS + 1e-6
    # the prior does the work: plain Square from stripes needs more queries
    sq = create("square", eps=EPS, max_queries=300, seed=0)(WhiteBox(model).as_scores(), x, y)
    assert float(r.queries.float().mean()) < float(sq.queries.float().mean())


def test_budget_eps_ball_bounds_and_determinism(setup):
    model, sur, x, y = setup
    target = WhiteBox(model).as_scores()
    attack = create("surrogate-square", surrogate=sur, eps=EPS, max_queries=5, seed=3)
    a, b = attack(target, x, y), attack(target, x, y)
    assert int(a.queries.max()) <= 5
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.queries, b.queries)
    assert float((a.x_adv - x).abs().max()) <= EPS + 1e-6
    assert float(a.x_adv.min()) >= 0.0 and float(a.x_adv.max()) <= 1.0
    # examples fooled by the transfer candidate cost exactly one query
    first = a.queries == 1
    assert bool((a.pred_adv[first] != y[first]).all())


def test_eps_zero_noop_and_bad_settings(setup):
    model, sur, x, y = setup
    r = create("surrogate-square", surrogate=sur, eps=0.0)(WhiteBox(model).as_scores(), x, y)
    assert torch.equal(r.x_adv, x) and int(r.queries.sum()) == 0
    with pytest.raises(InputError, match="surrogate"):
        create("surrogate-square", surrogate=42, eps=0.1)
    with pytest.raises(InputError, match="p_init"):
        create("surrogate-square", surrogate=sur, eps=0.1, p_init=0.0)
    with pytest.raises(InputError, match="steps"):
        create("surrogate-square", surrogate=sur, eps=0.1, prior_steps=0)
