"""Shared fixtures. Trained models are cached on disk (see tests/_models.py)."""

from __future__ import annotations

import pytest
import torch

from tests import _models


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``cuda``-marked tests where no CUDA device exists."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def digits_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_test, y_test) of sklearn digits, (N, 1, 8, 8) in [0, 1]."""
    return _models.digits_split()


@pytest.fixture(scope="session")
def digits_mlp():
    """An MLP Classifier trained on digits (test accuracy ~97%)."""
    return _models.trained("fixture", "mlp", "digits", 30)


@pytest.fixture(scope="session")
def digits_linear():
    """Softmax regression on digits."""
    return _models.trained("fixture", "linear", "digits", 30)


@pytest.fixture(scope="session")
def digits_cnn():
    """A small CNN trained on digits."""
    return _models.trained("fixture", "cnn", "digits", 30)


@pytest.fixture(scope="session")
def fmnist_test() -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST test split (10000, 1, 28, 28) in [0, 1] and labels."""
    return _models.fmnist("test")


@pytest.fixture(scope="session")
def fmnist_cnn():
    """The demo CNN: trained on Fashion-MNIST for 2 epochs (~90% test accuracy)."""
    return _models.trained("fixture", "cnn", "fmnist", 2)


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory):
    """``advx demo --quick`` run once per session (about a minute): ``(out_dir, output)``.
    Shared by the demo test and the report tests, which only read what it wrote."""
    from typer.testing import CliRunner

    from advx.cli import app

    out = tmp_path_factory.mktemp("quick-demo")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second thread only spins on a shared machine
    try:
        res = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert res.exit_code == 0, res.output
    return out, res.output
