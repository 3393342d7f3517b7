"""Shared fixtures. Trained models are cached on disk (see tests/_models.py)."""

from __future__ import annotations

import pytest
import torch

from tests import _models


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` run only where CUDA exists (the same tests, on the GPU)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is False)")
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
