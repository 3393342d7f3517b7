"""The helpers the library keeps one of: the unseeded-run seed, the default step-size
rule, atomic file and directory writes, and the per-example broadcast view."""

from __future__ import annotations

import torch
from torch import nn

from advx.attacks import create
from advx.attacks.rng import draw_seed
from advx.models.adapter import Classifier
from advx.targets import WhiteBox


def _linear_target() -> tuple[WhiteBox, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(3, 12, generator=g))
        net[1].bias.zero_()
    clf = Classifier(net, input_shape=(12,), num_classes=3).eval()
    x = torch.rand(6, 12, generator=g)
    with torch.no_grad():
        y = clf(x).argmax(1)
    return WhiteBox(clf), x, y


# ------------------------------------------------------------------------- seed=None
def test_unseeded_attack_does_not_reseed_torchs_global_generator() -> None:
    """``seed=None`` draws its seed from the global generator like any unseeded torch op:
    after ``torch.manual_seed`` the run and everything drawn after it are reproducible,
    and the generator has advanced by exactly one draw (it was not reseeded)."""
    target, x, y = _linear_target()
    attack = create("pgd", eps=0.05, steps=3, seed=None, early_stop=False)

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        adv = attack(target, x, y).x_adv
        return adv, torch.rand(4)

    (adv_a, after_a), (adv_b, after_b) = run(), run()
    assert torch.equal(adv_a, adv_b)  # reproducible under torch.manual_seed
    assert torch.equal(after_a, after_b)  # and so is what the program draws next
    torch.manual_seed(0)
    draw_seed()
    assert torch.equal(after_a, torch.rand(4))  # one draw, no reseed
    seeded = create("pgd", eps=0.05, steps=3, seed=draw_seed(), early_stop=False)
    assert not torch.equal(seeded(target, x, y).x_adv, x)


def test_draw_seed_is_a_valid_attack_seed_and_varies() -> None:
    torch.manual_seed(1)
    seeds = {draw_seed() for _ in range(20)}
    assert len(seeds) == 20
    assert all(0 <= s < 2**63 for s in seeds)
