"""Trained models shared by the tests, cached on disk under .cache/test-models.

They use a minimal local training loop of their own, independent of advx.training, so a
bug in advx's training cannot hide behind the fixtures; the fixture names in conftest.py
are the stable interface.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from advx.models.adapter import Classifier

CACHE = Path(
    os.environ.get(
        "ADVX_TEST_CACHE", Path(__file__).resolve().parents[1] / ".cache" / "test-models"
    )
)


def digits_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    y = torch.tensor(d.target, dtype=torch.int64)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(y), generator=g)
    tr, te = perm[:1400], perm[1400:]
    return x[tr], y[tr], x[te], y[te]


def fmnist(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST ``split`` ("train" or "test") as (N, 1, 28, 28) in [0, 1], labels."""
    from advx.data import load

    d = load("fashion-mnist", split=split)
    return d.x, d.y


def _net(arch: str, shape: tuple[int, ...], classes: int) -> nn.Module:
    c, h, w = shape
    if arch == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, classes))
    if arch == "mlp":
        return nn.Sequential(
            nn.Flatten(), nn.Linear(c * h * w, 128), nn.ReLU(), nn.Linear(128, classes)
        )
    if arch == "cnn":
        return nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), 128), nn.ReLU(), nn.Linear(128, classes),
        )  # fmt: skip
    raise ValueError(arch)


def trained(name: str, arch: str, data: str, epochs: int) -> Classifier:
    """A trained Classifier, cached by (name, arch, data, epochs)."""
    from safetensors.torch import load_file, save_file

    if data == "digits":
        xtr, ytr, _, _ = digits_split()
        names = tuple(str(i) for i in range(10))
    else:
        xtr, ytr = fmnist("train")
        from advx.data.fashion_mnist import CLASS_NAMES

        names = CLASS_NAMES
    shape = tuple(xtr.shape[1:])
    torch.manual_seed(0)
    clf = Classifier(_net(arch, shape, 10), input_shape=shape, num_classes=10, class_names=names)
    path = CACHE / f"{name}-{arch}-{data}-{epochs}.safetensors"
    if path.exists():
        clf.load_state_dict(load_file(str(path)))
        return clf.eval()
    # Training happens once per clean checkout; use every core even inside modules that
    # pin torch to one thread for their small models (tests/_single_thread.py).
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        _fit(clf, xtr, ytr, arch, epochs)
    finally:
        torch.set_num_threads(threads)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(clf.state_dict(), str(tmp))
    os.replace(tmp, path)
    return clf


def _fit(clf: Classifier, xtr: torch.Tensor, ytr: torch.Tensor, arch: str, epochs: int) -> None:
    """Adam, batch 128, seeded: the fixtures' training loop (leaves ``clf`` in eval mode)."""
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(clf.parameters(), lr=1e-3 if arch == "cnn" else 3e-3)
    clf.train()
    for _ in range(epochs):
        perm = torch.randperm(len(ytr), generator=g)
        for i in range(0, len(ytr), 128):
            b = perm[i : i + 128]
            loss = nn.functional.cross_entropy(clf(xtr[b]), ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    clf.eval()
