"""Square's tiled positions: each example's tour covers every pixel before a tile comes
back, tours are per-example streams (batch-independent), the budget and the eps-ball hold,
and the paper's uniform positions stay available."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from advx.attacks import create
from advx.attacks.rng import ExampleRng
from advx.attacks.square import _Tiles, square
from advx.errors import InputError
from advx.targets import WhiteBox


@pytest.mark.parametrize(("h", "w", "s"), [(28, 28, 1), (28, 28, 3), (8, 8, 5), (28, 20, 6)])
def test_a_tour_covers_every_pixel_before_a_tile_repeats(h, w, s):
    n = 4
    tiles = _Tiles(n, h, w, torch.device("cpu"))
    g = ExampleRng(0, torch.arange(n))
    steps = math.ceil(h / s) * math.ceil(w / s)
    cover = torch.zeros(n, h, w)
    firsts = []
    for _ in range(steps):
        win = tiles.window(s, torch.arange(n), g)
        assert win.shape == (n, 1, h, w)
        assert (win.flatten(1).sum(1) == s * s).all()  # a whole s x s square, inside
        cover += win[:, 0]
        firsts.append(win)
    assert (cover >= 1).all()  # every pixel of every example, within one tour
    # the next tour is a fresh order, not a replay of the first
    again = torch.stack([tiles.window(s, torch.arange(n), g) for _ in range(steps)])
    assert not torch.equal(again, torch.stack(firsts))


def test_tours_are_per_example_streams():
    """An example's positions depend on its own index and history only, not on which other
    examples are active in the batch (the early stop removes rows at different times)."""
    h = w = 12
    full = _Tiles(6, h, w, torch.device("cpu"))
    g_full = ExampleRng(3, torch.arange(10, 16))
    part = _Tiles(2, h, w, torch.device("cpu"))
    g_part = ExampleRng(3, torch.tensor([12, 15]))
    for it, s in enumerate([4, 4, 4, 2, 2, 1, 1, 1]):
        active = torch.arange(6) if it % 2 else torch.tensor([0, 2, 3, 5])
        a = full.window(s, active, g_full)
        b = part.window(s, torch.tensor([0, 1]), g_part)
        pick = [int((active == 2).nonzero()), int((active == 5).nonzero())]
        assert torch.equal(a[pick], b)


@pytest.fixture(scope="module")
def digits(digits_data, digits_mlp):
    _, _, x, y = digits_data
    return digits_mlp, x[:24], y[:24]


def _scores(clf: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """The bare score function ``square`` takes: x -> probabilities."""

    def f(t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return clf(t).softmax(1)

    return f


def test_square_results_do_not_depend_on_the_batch(digits):
    clf, x, y = digits
    box = _scores(clf)
    kw: dict[str, Any] = {"eps": 0.15, "steps": 80, "positions": "tiles"}
    whole = square(box, x, y, generator=ExampleRng(5, torch.arange(24)), **kw)
    halves = [
        square(
            box,
            x[i : i + 12],
            y[i : i + 12],
            generator=ExampleRng(5, torch.arange(i, i + 12)),
            **kw,
        )
        for i in (0, 12)
    ]
    assert torch.equal(whole, torch.cat(halves))


@pytest.mark.parametrize("positions", ["tiles", "uniform", None])
def test_budget_and_ball_hold_for_both_positions(digits, positions):
    clf, x, y = digits
    target = WhiteBox(clf).as_scores()
    r = create("square", eps=0.1, max_queries=40, positions=positions, seed=0)(target, x, y)
    assert target.queries == int(r.queries.sum()) + r.overhead_queries
    assert int(r.queries.max()) <= 40
    assert float(r.distance.max()) <= 0.1 + 1e-6
    assert float(r.x_adv.min()) >= 0.0 and float(r.x_adv.max()) <= 1.0


def test_positions_choice_matters_and_default_follows_the_budget(digits):
    clf, x, y = digits
    box = _scores(clf)
    kw: dict[str, Any] = {"eps": 0.05, "steps": 60, "early_stop": False}
    tiles = square(box, x, y, positions="tiles", generator=0, **kw)
    uniform = square(box, x, y, positions="uniform", generator=0, **kw)
    default = square(box, x, y, generator=0, **kw)
    assert not torch.equal(tiles, uniform)
    assert torch.equal(default, tiles)  # a 60-query run: tiles
    long: dict[str, Any] = {"eps": 0.3, "steps": 5000}  # fooled within a few queries: stops early
    # the paper's budgets keep uniform positions: the first steps match uniform's
    a = square(box, x[:4], y[:4], positions="uniform", generator=1, **long)
    b = square(box, x[:4], y[:4], generator=1, **long)
    assert torch.equal(a, b)


def test_bad_positions_raise():
    with pytest.raises(InputError, match="positions"):
        create("square", eps=0.1, positions="spiral")
