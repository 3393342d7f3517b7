"""The helpers the library keeps one of: the unseeded-run seed, the default step-size
rule, atomic file and directory writes, and the per-example broadcast view."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from advx.attacks import create, get
from advx.attacks._steps import BOUNDARY_RULE, step_size_for
from advx.attacks.mifgsm import MIFGSM
from advx.attacks.pgd import PGD, pgd
from advx.attacks.rng import ExampleRng, draw_seed
from advx.defenses.adaptive import AdaptivePGD
from advx.errors import InputError
from advx.io import atomic_dir, atomic_write_text
from advx.models.adapter import Classifier
from advx.targets import WhiteBox


def _linear_target() -> tuple[WhiteBox, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    linear = nn.Linear(12, 3)
    net = nn.Sequential(nn.Flatten(), linear)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(3, 12, generator=g))
        linear.bias.zero_()
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


def test_distilled_substitute_leaves_the_global_generator_alone() -> None:
    """``distill`` seeded its substitute with ``torch.manual_seed(seed)``, reseeding the
    caller's global generator; now it trains through ``fit`` and restores it."""
    from advx.evaluate.crafting import distill

    target, x, _ = _linear_target()
    teacher = target.model
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    sub, agree = distill(lambda z: teacher(z).argmax(1), x, num_classes=3, hidden=8, epochs=2)
    assert torch.equal(torch.rand(4), expected)
    again, agree2 = distill(lambda z: teacher(z).argmax(1), x, num_classes=3, hidden=8, epochs=2)
    same = zip(sub.state_dict().values(), again.state_dict().values(), strict=True)
    assert agree == agree2 and all(torch.equal(a, b) for a, b in same)  # seeded
    assert not sub.training


def test_draw_seed_is_a_valid_attack_seed_and_varies() -> None:
    torch.manual_seed(1)
    seeds = {draw_seed() for _ in range(20)}
    assert len(seeds) == 20
    assert all(0 <= s < 2**63 for s in seeds)


# ------------------------------------------------------------------------ step sizes
@pytest.mark.parametrize(
    ("slug", "rule"), [("pgd", 2.5), ("bim", 1.0), ("mi-fgsm", 1.0), ("adaptive-pgd", 2.5)]
)
def test_default_step_is_the_documented_rule(slug: str, rule: float) -> None:
    """Each attack's default step is its documented rule (``2.5 * eps / steps`` for the
    PGD family, ``eps / steps`` for BIM and MI-FGSM) as the model computes it (float32),
    and ``step_size`` / ``rel_step_size`` override it."""
    cls = AdaptivePGD if slug == "adaptive-pgd" else get(slug).cls
    assert issubclass(cls, (PGD, MIFGSM, AdaptivePGD))  # the attacks with a step rule
    for eps in (1 / 255, 4 / 255, 8 / 255, 0.03, 0.1, 0.3, 1.5):
        for steps in (1, 5, 7, 10, 20, 40, 100):
            atk = cls(eps=eps, steps=steps)
            got = torch.tensor(atk.step_for(eps), dtype=torch.float32)
            assert got == torch.tensor(rule * eps / steps, dtype=torch.float32), (eps, steps)
    assert cls(eps=0.1, steps=10, step_size=0.07).step_for(0.1) == 0.07
    assert cls(eps=0.1, steps=10, rel_step_size=0.5).step_for(0.2) == pytest.approx(0.1)


def test_step_size_for_and_its_validation() -> None:
    assert step_size_for(0.1, 10) == pytest.approx(0.025)
    assert step_size_for(0.1, 10, rule=BOUNDARY_RULE) == pytest.approx(0.01)
    assert step_size_for(0.1, 10, rel_step_size=0.5) == pytest.approx(0.05)
    assert step_size_for(0.1, 10, step_size=0.02) == 0.02
    with pytest.raises(InputError, match="not both"):
        create("pgd", eps=0.1, step_size=0.01, rel_step_size=0.1)
    with pytest.raises(InputError, match="steps must be >= 1"):
        create("mi-fgsm", eps=0.1, steps=0)


def test_pgd_default_step_runs_the_rule_bitwise() -> None:
    """The class with its default step and the plain function with ``2.5 * eps / steps``
    give bitwise-equal examples (the rule lives in one place; results did not move)."""
    target, x, y = _linear_target()
    eps, steps = 8 / 255, 10
    r = create("pgd", eps=eps, steps=steps, seed=5, early_stop=False)(target, x, y)
    ref = pgd(
        target.model, x, y, eps=eps, step_size=2.5 * eps / steps, steps=steps,
        generator=ExampleRng(5, torch.arange(len(x))),
    )  # fmt: skip
    assert torch.equal(r.x_adv, ref)


# --------------------------------------------------------------------- atomic writes
@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path: Path, umask_027: None) -> None:
    dest = tmp_path / "ckpt"
    with atomic_dir(dest) as tmp:
        atomic_write_text(tmp / "a.json", "1")
        assert not dest.exists()  # nothing is visible before the directory is complete
    assert _mode(dest) == 0o750 and (dest / "a.json").read_text() == "1"
    with atomic_dir(dest) as tmp:  # an existing directory is replaced as a whole
        atomic_write_text(tmp / "b.json", "2")
    assert sorted(p.name for p in dest.iterdir()) == ["b.json"]
    with pytest.raises(RuntimeError), atomic_dir(dest) as tmp:
        atomic_write_text(tmp / "c.json", "half")
        raise RuntimeError
    assert sorted(p.name for p in dest.iterdir()) == ["b.json"]  # untouched by the failure
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no staging left behind


def test_saved_examples_and_figures_follow_the_umask(tmp_path: Path, umask_027: None) -> None:
    """``save_examples`` wrote through safetensors alone (mode 0600, whatever the umask)."""
    from advx.report.figures import adversarial_figure, save_examples

    target, x, y = _linear_target()
    x = x.view(6, 1, 3, 4)
    clf = target.model
    assert isinstance(clf, Classifier) and isinstance(clf.net, nn.Sequential)
    net = nn.Sequential(nn.Flatten(), clf.net[1])
    img = WhiteBox(Classifier(net, input_shape=(1, 3, 4), num_classes=3).eval())
    res = create("fgsm", eps=0.3)(img, x, y)
    out = save_examples(x, res, tmp_path / "run", k=2)
    assert _mode(out) == 0o640
    fig = adversarial_figure(x, res, None, k=2, path=tmp_path / "run" / "g.png")
    assert _mode(fig) == 0o640 and fig.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["examples.safetensors", "g.png"]
