"""Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017, arXiv:1708.07747): 70 000 grayscale
28×28 images of clothing in 10 balanced classes, 60 000 for training and 10 000 for test.

Where the files are looked for, in order:

1. ``$ADVX_DATA_DIR/fashion-mnist/`` if that directory exists (it then *must* be complete:
   a half-filled override is an error, not a silent fall-back);
2. ``/usr/share/datasets/fashion-mnist/``, installed by the Debian package
   ``dataset-fashion-mnist``.

Each directory holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each gzipped (``.gz``) or raw.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from advx.data.core import ImageDataset
from advx.data.idx import read_idx
from advx.errors import DataError, DataNotFoundError, InputError

NAME = "fashion-mnist"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_STEMS = {"train": "train", "test": "t10k"}
_FILES = tuple(
    f"{stem}-{kind}"
    for stem in _STEMS.values()
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
)
INSTALL_HINT = (
    "install it with `apt-get install dataset-fashion-mnist` (files go to "
    f"{SYSTEM_DIR}), or set ADVX_DATA_DIR to a directory containing fashion-mnist/ with "
    + ", ".join(_FILES)
    + " (each raw or .gz)"
)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        p = directory / name
        if p.is_file():
            return p
    return None


def locate() -> dict[str, Path]:
    """The four Fashion-MNIST files, keyed ``train-images``, ``train-labels``,
    ``test-images``, ``test-labels``.

    Raises:
        DataNotFoundError: no complete directory was found; the message says what to
            install or which ``ADVX_DATA_DIR`` layout to provide.
    """
    override = os.environ.get("ADVX_DATA_DIR")
    candidates: list[Path] = []
    if override:
        d = Path(override).expanduser() / NAME
        if d.is_dir():
            candidates = [d]  # an explicit override is never silently bypassed
    if not candidates:
        candidates = [SYSTEM_DIR]
    for d in candidates:
        found: dict[str, Path] = {}
        missing: list[str] = []
        for split, stem in _STEMS.items():
            for kind, suffix in (("images", "images-idx3-ubyte"), ("labels", "labels-idx1-ubyte")):
                p = _find(d, f"{stem}-{suffix}")
                if p is None:
                    missing.append(f"{stem}-{suffix}[.gz]")
                else:
                    found[f"{split}-{kind}"] = p
        if not missing:
            return found
        if d.is_dir():
            raise DataNotFoundError(
                f"Fashion-MNIST directory {d} is incomplete: missing {', '.join(missing)}; "
                + INSTALL_HINT
            )
    where = " or ".join(str(d) for d in candidates)
    raise DataNotFoundError(f"Fashion-MNIST not found in {where}; " + INSTALL_HINT)


def load(split: str, *, limit: int | None = None) -> ImageDataset:
    """Load one split of Fashion-MNIST as float32 images in ``[0, 1]``.

    Args:
        split: ``"train"`` (60 000 images) or ``"test"`` (10 000 images).
        limit: keep only the first ``limit`` images of the split (file order).

    Returns:
        :class:`ImageDataset` with ``x (N, 1, 28, 28)``, ``y (N,)`` and the ten class names.

    Raises:
        DataNotFoundError: the files are not installed.
        DataError: a file is corrupt (magic number, length, shape, labels), naming it.
    """
    if split not in _STEMS:
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    files = locate()
    img_path, lab_path = files[f"{split}-images"], files[f"{split}-labels"]
    images = read_idx(img_path, ndim=3)  # (N, 28, 28) uint8
    labels = read_idx(lab_path, ndim=1)  # (N,) uint8
    if images.shape[1:] != (28, 28):
        raise DataError(
            f"{img_path}: Fashion-MNIST images must be 28x28, the header declares "
            f"{images.shape[1]}x{images.shape[2]}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{img_path} holds {images.shape[0]} images but {lab_path} holds "
            f"{labels.shape[0]} labels; the two files do not belong together"
        )
    if labels.size and int(labels.max()) >= len(CLASS_NAMES):
        first = int(np.argmax(labels >= len(CLASS_NAMES)))
        raise DataError(
            f"{lab_path}: label {int(labels[first])} at position {first} is out of range "
            f"for the {len(CLASS_NAMES)} Fashion-MNIST classes (0..9); the file is corrupt"
        )
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    with warnings.catch_warnings():
        # the arrays view the read-only decompressed bytes; .to() copies before any write
        warnings.filterwarnings("ignore", message=".*not writable.*")
        x = torch.from_numpy(images).to(torch.float32).div_(255.0).unsqueeze(1)  # (N, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))
    return ImageDataset(NAME, x, y, CLASS_NAMES)
