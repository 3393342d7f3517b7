"""The training loop: accuracy floors on digits, reproducibility, the adversary and
multi-process hooks, early stop, and interruption safety."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from advx.data import ImageDataset
from advx.data import load as load_data
from advx.errors import ConfigError, InputError
from advx.models import Classifier, build, load, read_info
from advx.training import (
    StepInfo,
    StopTraining,
    TrainBatch,
    TrainConfig,
    World,
    clean_loss,
    default_config,
    evaluate,
    fit,
    select_training,
    train,
)
from tests._single_thread import single_thread  # noqa: F401  (autouse)

Digits = tuple[ImageDataset, ImageDataset]  # (train, test)


@pytest.fixture(scope="module")
def digits() -> Digits:
    return load_data("digits", "train"), load_data("digits", "test")


def _state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------- accuracy floors
@pytest.mark.parametrize(("arch", "floor"), [("mlp", 0.97), ("linear", 0.95)])
def test_digits_reaches_its_floor_with_registry_defaults(
    arch: str, floor: float, digits: Digits, tmp_path: Path
) -> None:
    tr, te = digits
    res = train(arch, tr, test=te, out=tmp_path / arch)
    assert res.test_accuracy >= floor, res.test_accuracy
    assert res.history.epochs[-1]["accuracy"] > res.history.epochs[0]["accuracy"]
    info = read_info(tmp_path / arch)
    assert info["test_accuracy"] == pytest.approx(res.test_accuracy, abs=1e-6)
    assert info["training"]["epochs"] == default_config(arch, "digits").epochs
    assert info["seed"] == 0 and info["training"]["n_train"] == len(tr)
    # the saved model is the trained one
    assert evaluate(load(tmp_path / arch), te) == res.test_accuracy


def test_sklearn_trains_through_the_same_entry_point(digits: Digits, tmp_path: Path) -> None:
    tr, te = digits
    cfg = default_config("logreg", "digits", max_train=600, seed=2)
    res = train("logreg", tr, test=te, config=cfg, out=tmp_path / "lr")
    assert res.test_accuracy >= 0.9
    info = read_info(tmp_path / "lr")
    assert info["training"]["n_train"] == 600 and "epochs" not in info["training"]
    assert evaluate(load(tmp_path / "lr"), te) == res.test_accuracy


# ------------------------------------------------------------------ reproducibility
def _quick(arch: str, tr: ImageDataset, seed: int, **kw: Any) -> Classifier:
    cfg = TrainConfig(epochs=2, lr=3e-3, seed=seed, limit=400)
    model: Classifier = train(arch, tr, config=cfg, **kw).model
    return model


def test_same_seed_gives_identical_weights(digits: Digits) -> None:
    tr, _ = digits
    torch.manual_seed(123)  # the global generator must not matter
    a = _state(_quick("mlp", tr, seed=7))  # mlp has dropout: its masks must be seeded too
    torch.manual_seed(456)
    b = _state(_quick("mlp", tr, seed=7))
    c = _state(_quick("mlp", tr, seed=8))
    assert _same(a, b)
    assert not _same(a, c)


def test_training_leaves_the_global_generator_alone(digits: Digits) -> None:
    tr, _ = digits
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    _quick("cnn", tr, seed=1)
    assert torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------- adversary hook
def _fresh(tr: ImageDataset) -> Classifier:
    torch.manual_seed(0)
    model: Classifier = build("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[32])
    return model


CFG = TrainConfig(epochs=2, lr=3e-3, batch_size=64, seed=0)


def test_identity_adversary_and_clean_loss_hook_equal_plain_training(digits: Digits) -> None:
    tr, _ = digits
    data = tr.head(300)
    plain = _fresh(tr)
    fit(plain, data, config=CFG)
    calls: list[tuple[int, bool]] = []

    def identity(model: Classifier, x: Tensor, y: Tensor, g: torch.Generator) -> Tensor:
        calls.append((len(x), isinstance(g, torch.Generator) and model.training))
        return x.clone()

    replaced = _fresh(tr)
    fit(replaced, data, config=CFG, adversary=identity)

    class CleanHook:
        def loss(self, batch: TrainBatch) -> tuple[Tensor, Tensor]:
            assert batch.model is hooked and 0 <= batch.progress < 1
            return clean_loss(batch)

    hooked = _fresh(tr)
    fit(hooked, data, config=CFG, adversary=CleanHook())
    assert _same(_state(plain), _state(replaced))
    assert _same(_state(plain), _state(hooked))
    assert len(calls) == 2 * 5 and all(ok for _, ok in calls)  # 300 / 64 -> 5 steps/epoch


def test_adversarial_batches_are_what_the_model_trains_on(digits: Digits) -> None:
    """Replacing every batch by its negative image is a different training set: the
    model must fit the negatives, not the originals."""
    tr, te = digits

    def negate(model: Classifier, x: Tensor, y: Tensor, g: torch.Generator) -> Tensor:
        return 1.0 - x

    model = _fresh(tr)
    fit(model, tr, config=TrainConfig(epochs=15, lr=1e-2, seed=0), adversary=negate)
    assert evaluate(model, (1.0 - te.x, te.y)) > 0.85
    assert evaluate(model, te) < 0.3


def test_a_gradient_adversary_plugs_in(digits: Digits) -> None:
    """An FGSM adversary (Goodfellow et al. 2015) written against the hook: the trained
    model resists FGSM better than a clean-trained one."""
    tr, te = digits
    eps = 0.15

    def fgsm(model: Classifier, x: Tensor, y: Tensor, g: torch.Generator) -> Tensor:
        with model.frozen_eval():
            x = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), x)
        return (x + eps * grad.sign()).clamp(0, 1).detach()

    cfg = TrainConfig(epochs=20, lr=1e-2, seed=0)
    clean, robust = _fresh(tr), _fresh(tr)
    fit(clean, tr, config=cfg)
    fit(robust, tr, config=cfg, adversary=fgsm)

    def fgsm_acc(m: Classifier) -> float:
        return evaluate(m, (fgsm(m, te.x, te.y, torch.Generator()), te.y))

    assert fgsm_acc(robust) > fgsm_acc(clean) + 0.2


def test_bad_adversaries_are_input_errors(digits: Digits) -> None:
    tr, _ = digits
    with pytest.raises(InputError, match="shaped like its input"):
        fit(_fresh(tr), tr.head(64), config=CFG, adversary=lambda m, x, y, g: x[:1])
    with pytest.raises(InputError, match="adversary must be"):
        fit(_fresh(tr), tr.head(64), config=CFG, adversary=42)  # type: ignore[arg-type]


# ----------------------------------------------------------------- world / early stop
def test_world_shards_partition_the_order() -> None:
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    shards = [World(rank=r, world_size=3).shard(order) for r in range(3)]
    assert {len(s) for s in shards} == {4}  # padded to 12 = 3 x 4
    assert set(torch.cat(shards).tolist()) == set(order.tolist())
    assert torch.equal(World().shard(order), order)
    assert World(rank=0, world_size=2).is_main and not World(rank=1, world_size=2).is_main
    with pytest.raises(ConfigError):
        World(rank=2, world_size=2)


def test_a_rank_trains_on_its_shard_only(digits: Digits) -> None:
    tr, _ = digits
    data = tr.head(256)
    seen: list[Tensor] = []

    class Spy:
        def loss(self, batch: TrainBatch) -> tuple[Tensor, Tensor]:
            seen.append(batch.x.flatten(1)[:, :].sum(1))
            return clean_loss(batch)

    hist = fit(_fresh(tr), data, config=TrainConfig(epochs=1, batch_size=32), world=World(1, 4),
               adversary=Spy())  # fmt: skip
    assert hist.epochs[0]["images"] == 64 and len(seen) == 2


def test_stop_training_ends_fit_cleanly(digits: Digits) -> None:
    tr, _ = digits
    steps: list[StepInfo] = []

    def stop_at_three(s: StepInfo) -> None:
        steps.append(s)
        if len(steps) == 3:
            raise StopTraining("enough")

    model = _fresh(tr)
    hist = fit(model, tr, config=TrainConfig(epochs=3, batch_size=100), on_step=stop_at_three)
    assert hist.stopped == "enough" and len(steps) == 3 and len(hist.epochs) == 1
    assert hist.epochs[0]["images"] == 300 and not model.training


def test_interrupt_writes_nothing(digits: Digits, tmp_path: Path) -> None:
    tr, te = digits
    out = tmp_path / "model"

    def interrupt(s: StepInfo) -> None:
        if s.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train("mlp", tr, test=te, out=out, on_step=interrupt)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- config
def test_config_defaults_overrides_and_validation() -> None:
    assert default_config("cnn", "digits").epochs == 10
    assert default_config("cnn", "fashion-mnist").epochs == 3
    assert default_config("cnn", "digits", epochs=4, lr=None).epochs == 4
    assert default_config("svm", "fashion-mnist").max_train == 5000
    with pytest.raises(ConfigError, match="unknown training setting"):
        default_config("cnn", momentum=0.9)
    for bad in ({"epochs": 0}, {"lr": -1.0}, {"lr": float("nan")}, {"optimizer": "lbfgs"},
                {"batch_size": 2.5}, {"seed": -1}):  # fmt: skip
        with pytest.raises(ConfigError):
            TrainConfig(**bad)


def test_select_training_limits_then_subsamples(digits: Digits) -> None:
    tr, _ = digits
    sub = select_training(tr, TrainConfig(limit=500, max_train=100, seed=3))
    again = select_training(tr, TrainConfig(limit=500, max_train=100, seed=3))
    assert len(sub) == 100 and torch.equal(sub.x, again.x)
    first = tr.head(500).x.flatten(1)
    assert all(bool((first == row).all(1).any()) for row in sub.x.flatten(1))


def test_evaluate_restores_the_model_mode(digits: Digits) -> None:
    _, te = digits
    model = _fresh(te).train()
    evaluate(model, te)
    assert model.training
