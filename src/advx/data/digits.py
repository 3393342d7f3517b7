"""scikit-learn's bundled 8×8 handwritten digits (the UCI "Optical Recognition of
Handwritten Digits" test set, Alpaydin & Kaynak 1998): 1797 images, 10 classes, always
available offline. Small enough that a test can train a model on it in a second.

The split is a seeded random permutation: the first 1400 permuted examples are ``train``,
the remaining 397 ``test``. The default seed (0) keeps it identical across runs and
machines (``torch.randperm`` on the CPU generator is deterministic).
"""

from __future__ import annotations

from pathlib import Path

import torch

from advx.data.core import ImageDataset
from advx.errors import DataNotFoundError, InputError

NAME = "digits"
CLASS_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))
DEFAULT_SEED = 0
N_TRAIN = 1400


def load(split: str, *, limit: int | None = None, seed: int | None = None) -> ImageDataset:
    """Load one split of the digits as float32 images in ``[0, 1]``.

    Args:
        split: ``"train"`` (1400 images) or ``"test"`` (397 images).
        limit: keep only the first ``limit`` examples of the split.
        seed: seed of the split permutation; default ``0`` (change it only to study
            split variance; models trained on one seed are not comparable to another).

    Returns:
        :class:`ImageDataset` with ``x (N, 1, 8, 8)`` (pixel counts 0..16 divided by 16)
        and ``y (N,)``.
    """
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    from sklearn.datasets import load_digits  # lazy: sklearn import is slow

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0  # (1797, 1, 8, 8)
    y = torch.tensor(d.target, dtype=torch.int64)
    g = torch.Generator().manual_seed(DEFAULT_SEED if seed is None else int(seed))
    perm = torch.randperm(len(y), generator=g)
    idx = perm[:N_TRAIN] if split == "train" else perm[N_TRAIN:]
    if limit is not None:
        idx = idx[:limit]
    return ImageDataset(NAME, x[idx].contiguous(), y[idx].contiguous(), CLASS_NAMES)


def where() -> str:
    """The bundled file the digits are read from (for ``advx env``), found without
    importing scikit-learn (which takes seconds).

    Raises:
        DataNotFoundError: scikit-learn or its bundled digits file is missing.
    """
    from importlib import metadata, util

    spec = util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataNotFoundError("scikit-learn is not installed; `pip install scikit-learn`")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise DataNotFoundError(f"{path} is missing; reinstall scikit-learn")
    return f"{path} (scikit-learn {metadata.version('scikit-learn')})"
