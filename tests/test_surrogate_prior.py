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
from advx.attacks.surrogate_prior import SurrogateRecipe, train_surrogate
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


# ------------------------------------------------------------------ surrogate-search
@pytest.fixture(scope="module")
def ensemble(setup, digits_data):
    """Two surrogates of different architectures, trained by :func:`train_surrogate`
    (one with a little FGSM-RS adversarial training) on the test digits not attacked."""
    _, _, xte, yte = digits_data
    x_sur, y_sur = xte[120:], yte[120:]
    recipes = [
        SurrogateRecipe(name="mlp", arch="mlp", epochs=15, lr=3e-3, shift=1),
        SurrogateRecipe(name="cnn-at", arch="cnn", epochs=15, lr=3e-3, shift=1, adv_eps=0.1),
    ]
    return [train_surrogate(r, x_sur, y_sur, num_classes=10) for r in recipes]


def test_search_over_http_equals_in_process(setup, ensemble):
    model, _, x, y = setup
    attack = create("surrogate-search", surrogates=ensemble, eps=EPS, max_queries=200, seed=0)
    app = create_app(model, name="digits")
    with TestClient(app) as tc:
        remote = HttpTarget("http://testserver", "digits", http_client=tc)
        r = attack(remote, x, y)
    local = attack(WhiteBox(model).as_scores(), x, y)
    assert torch.equal(r.x_adv, local.x_adv) and torch.equal(r.queries, local.queries)
    assert float((r.pred_adv != y).float().mean()) >= 0.95
    assert float(r.queries.float().median()) <= 20
    assert float((r.x_adv - x).abs().max()) <= EPS + 1e-6


def test_search_budget_ball_determinism_and_first_query(setup, ensemble):
    model, _, x, y = setup
    target = WhiteBox(model).as_scores()
    for budget in (1, 3, 60):  # inside the transfer check, the search, and Square
        attack = create(
            "surrogate-search", surrogates=ensemble, eps=EPS, max_queries=budget, search=5,
            seed=1,
        )  # fmt: skip
        a, b = attack(target, x, y), attack(target, x, y)
        assert int(a.queries.max()) <= budget
        assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.queries, b.queries)
        assert float((a.x_adv - x).abs().max()) <= EPS + 1e-6
        assert float(a.x_adv.min()) >= 0.0 and float(a.x_adv.max()) <= 1.0
        # an example fooled by the transfer candidate costs exactly one query
        first = a.queries == 1
        if budget > 1:
            assert bool((a.pred_adv[first] != y[first]).all())
        # a fooled example stops: no query after the one that fooled it
        fooled = a.pred_adv != y
        assert bool((a.queries[~fooled] == budget).all())


def test_search_aims_at_more_classes_than_exist(setup, ensemble):
    """``classes`` beyond the wrong classes there are cycles through those (never the
    true class), and the budget and the ball still hold."""
    model, _, x, y = setup
    target = WhiteBox(model).as_scores()
    attack = create(
        "surrogate-search", surrogates=ensemble, eps=0.05, max_queries=12, search=11,
        classes=50, seed=0,
    )  # fmt: skip
    r = attack(target, x, y)
    assert int(r.queries.max()) <= 12
    assert float((r.x_adv - x).abs().max()) <= 0.05 + 1e-6


def test_search_feedback_beats_transfer_alone(setup, ensemble):
    """The search queries fool examples the first transfer candidate does not."""
    model, _, x, y = setup
    target = WhiteBox(model).as_scores()
    one = create("surrogate-search", surrogates=ensemble, eps=0.15, max_queries=1, seed=0)
    more = create(
        "surrogate-search", surrogates=ensemble, eps=0.15, max_queries=30, search=29, seed=0
    )  # fmt: skip
    r1, r2 = one(target, x, y), more(target, x, y)
    s1 = float((r1.pred_adv != y).float().mean())
    s2 = float((r2.pred_adv != y).float().mean())
    assert s2 > s1
    assert torch.equal(r1.pred_adv != y, (r2.pred_adv != y) & (r2.queries == 1))


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_train_surrogate_cached_and_reproducible(digits_data, tmp_path):
    _, _, xte, yte = digits_data
    x, y = xte[120:400], yte[120:400]
    recipe = SurrogateRecipe(name="s", arch="mlp", epochs=2, adv_eps=0.05)
    a = train_surrogate(recipe, x, y, cache=tmp_path, num_classes=10)
    b = train_surrogate(recipe, x, y, num_classes=10)  # no cache: trained again
    assert _same(a, b)
    stamp = (tmp_path / "s" / "model.safetensors").stat().st_mtime_ns
    c = train_surrogate(recipe, x, y, cache=tmp_path, num_classes=10)  # read back
    assert (tmp_path / "s" / "model.safetensors").stat().st_mtime_ns == stamp
    assert _same(a, c)
    other = SurrogateRecipe(name="s", arch="mlp", epochs=2, adv_eps=0.05, seed=1)
    d = train_surrogate(other, x, y, cache=tmp_path, num_classes=10)  # recipe changed
    assert not _same(a, d)
    # the cached surrogate is an advx checkpoint: the attack takes its directory
    attack = create("surrogate-search", surrogates=[str(tmp_path / "s")], eps=0.1)
    assert len(attack.surrogates) == 1


def test_search_bad_settings(ensemble):
    with pytest.raises(InputError, match="empty"):
        create("surrogate-search", surrogates=[], eps=0.1)
    with pytest.raises(InputError, match="surrogate"):
        create("surrogate-search", surrogates=[42], eps=0.1)
    with pytest.raises(InputError, match="search"):
        create("surrogate-search", surrogates=ensemble, eps=0.1, search=-1)
    with pytest.raises(InputError, match="escalate"):
        create("surrogate-search", surrogates=ensemble, eps=0.1, escalate=0.5)
    with pytest.raises(InputError, match="classes"):
        create("surrogate-search", surrogates=ensemble, eps=0.1, classes=0)
    with pytest.raises(InputError, match="norm"):
        create("surrogate-search", surrogates=ensemble, eps=0.5, norm="l2")


def test_search_targeted_reaches_the_target_class(setup, ensemble):
    """Targeted: the search aims at the given class only; success means that class."""
    model, _, x, y = setup
    target = WhiteBox(model).as_scores()
    attack = create("surrogate-search", surrogates=ensemble, eps=EPS, max_queries=200, seed=0)
    r = attack(target, x, y, targets="next")
    goal = (y + 1) % 10
    hit = r.pred_adv == goal
    assert float(hit.float().mean()) >= 0.8  # measured 0.90, median 1 query
    assert bool((r.succeeded == hit).all())
    assert float((r.x_adv - x).abs().max()) <= EPS + 1e-6
    assert int(r.queries.max()) <= 200
