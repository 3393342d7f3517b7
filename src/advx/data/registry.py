"""The built-in datasets by name, :func:`load` (names *or* paths), and
:func:`dataset_status` for ``advx env``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union, overload

import advx.data.digits as digits
import advx.data.fashion_mnist as fashion_mnist
import advx.data.photos as photos
import advx.data.tweets as tweets
from advx.data.core import ImageDataset, TextDataset
from advx.data.files import IMAGE_SUFFIXES, load_image_folder, load_npz, load_text_csv
from advx.errors import AdvxError, ConfigError, DataError, DataNotFoundError, InputError

Dataset = Union[ImageDataset, TextDataset]
SPLITS: tuple[str, ...] = ("train", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """What a built-in dataset is, for listings and ``advx env``.

    Attributes:
        name: registry name (``load(name)``).
        kind: ``"image"`` or ``"text"``.
        description: one line for humans.
        class_names: the classes, in label order.
        input_shape: ``(C, H, W)`` of one image; ``None`` for text.
        sizes: examples per split, ``{"train": n, "test": m}`` (after cleaning for text).
        install: how to get the data when it is missing.
    """

    name: str
    kind: Literal["image", "text"]
    description: str
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...] | None
    sizes: dict[str, int]
    install: str

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)


def _tweets_loader(binary: bool) -> Callable[..., Dataset]:
    def load_tweets(split: str, *, limit: int | None = None, seed: int | None = None) -> Dataset:
        return tweets.load(split, binary=binary, limit=limit, seed=seed)

    return load_tweets


def _fmnist_loader(split: str, *, limit: int | None = None, seed: int | None = None) -> Dataset:
    if seed is not None:
        raise InputError(
            "fashion-mnist has a fixed official train/test split; `seed` does not apply to it"
        )
    return fashion_mnist.load(split, limit=limit)


def _fmnist_where() -> str:
    files = fashion_mnist.locate()
    return str(files["train-images"].parent)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name=fashion_mnist.NAME,
            kind="image",
            description="Fashion-MNIST: 28x28 grayscale clothing images, 10 classes "
            "(Xiao et al. 2017)",
            class_names=fashion_mnist.CLASS_NAMES,
            input_shape=(1, 28, 28),
            sizes={"train": 60000, "test": 10000},
            install=fashion_mnist.INSTALL_HINT,
        ),
        DatasetInfo(
            name=digits.NAME,
            kind="image",
            description="scikit-learn 8x8 handwritten digits, 10 classes, seeded split "
            "(always available; for fast tests)",
            class_names=digits.CLASS_NAMES,
            input_shape=(1, 8, 8),
            sizes={"train": digits.N_TRAIN, "test": 1797 - digits.N_TRAIN},
            install="part of scikit-learn: `pip install scikit-learn`",
        ),
        DatasetInfo(
            name=photos.NAME,
            kind="image",
            description="7 real photos bundled with scikit-image/scikit-learn, 224x224 RGB, "
            "human ImageNet-1k labels (evaluation only: both splits are the same photos)",
            class_names=photos.class_names(),
            input_shape=(3, photos.DEFAULT_SIZE, photos.DEFAULT_SIZE),
            sizes={"train": len(photos.PHOTOS), "test": len(photos.PHOTOS)},
            install=photos.INSTALL_HINT,
        ),
        DatasetInfo(
            name=tweets.NAME,
            kind="text",
            description="human-labelled tweet sentiment (negative/neutral/positive), "
            "encoding repaired, de-duplicated, seeded stratified split",
            class_names=tweets.CLASS_NAMES,
            input_shape=None,
            sizes={"train": 29719, "test": 7429},
            install=tweets.INSTALL_HINT,
        ),
        DatasetInfo(
            name=tweets.BINARY_NAME,
            kind="text",
            description="the tweets without the neutral class (negative/positive)",
            class_names=tweets.BINARY_CLASS_NAMES,
            input_shape=None,
            sizes={"train": 18192, "test": 4547},
            install=tweets.INSTALL_HINT,
        ),
    )
}


# how each built-in dataset is loaded and located (kept out of DatasetInfo, which is data)
_LOADERS: dict[str, Callable[..., Dataset]] = {
    fashion_mnist.NAME: _fmnist_loader,
    digits.NAME: digits.load,
    photos.NAME: photos.load_split,
    tweets.NAME: _tweets_loader(False),
    tweets.BINARY_NAME: _tweets_loader(True),
}
_WHERE: dict[str, Callable[[], str]] = {
    fashion_mnist.NAME: _fmnist_where,
    digits.NAME: digits.where,
    photos.NAME: photos.where,
    tweets.NAME: lambda: str(tweets.locate()),
    tweets.BINARY_NAME: lambda: str(tweets.locate()),
}


def _looks_like_path(name: str) -> bool:
    p = Path(name)
    return os.sep in name or "/" in name or p.suffix.lower() in {".npz", ".csv"} or p.exists()


@overload
def load(
    name: Literal["fashion-mnist", "digits"],
    split: str = ...,
    *,
    limit: int | None = ...,
    seed: int | None = ...,
) -> ImageDataset: ...


@overload
def load(
    name: Literal["tweets", "tweets-binary"],
    split: str = ...,
    *,
    limit: int | None = ...,
    seed: int | None = ...,
) -> TextDataset: ...


@overload
def load(
    name: str | Path,
    split: str = ...,
    *,
    limit: int | None = ...,
    seed: int | None = ...,
) -> Dataset: ...


def load(
    name: str | Path,
    split: str = "train",
    *,
    limit: int | None = None,
    seed: int | None = None,
) -> Dataset:
    """Load a built-in dataset by name, or your own data by path.

    Args:
        name: ``"fashion-mnist"``, ``"digits"``, ``"tweets"``, ``"tweets-binary"`` (see
            :data:`DATASETS`), or a path to a ``.npz`` file (arrays ``x``/``y``), a
            ``.csv`` file (columns ``text``/``label``) or a folder of images with one
            sub-folder per class.
        split: ``"train"`` or ``"test"``. For a path: a ``.npz`` holding
            ``x_<split>``/``y_<split>`` and a folder holding ``<split>/`` sub-folders are
            read at that split; otherwise the whole file or folder is returned.
        limit: keep only the first ``limit`` examples of the split (no reshuffle).
        seed: seed of the random split for ``digits`` and the tweets; default fixed (0),
            so train/test never change between runs. Not accepted for ``fashion-mnist``
            (official split) or paths.

    Returns:
        :class:`ImageDataset` (images in ``[0, 1]``) or :class:`TextDataset`.

    Raises:
        ConfigError: unknown dataset name.
        InputError: bad ``split``, ``limit`` or ``seed``.
        DataNotFoundError: the dataset is not installed or the path does not exist; the
            message says what to install or provide.
        DataError: the data is corrupt; the message names the file and the problem.

    Example:
        >>> ds = load("digits", "test", limit=100)
        >>> ds.x.shape, ds.num_classes
        (torch.Size([100, 1, 8, 8]), 10)
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InputError(f"limit must be a non-negative integer or None, got {limit!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InputError(f"seed must be an integer or None, got {seed!r}")
    key = str(name)
    if key in DATASETS:
        return _LOADERS[key](split, limit=limit, seed=seed)
    if not isinstance(name, Path) and not _looks_like_path(key):
        raise ConfigError(
            f"unknown dataset {key!r}; choose one of {', '.join(DATASETS)}, or give a path "
            "to a .npz file, a .csv file or an image folder"
        )
    if seed is not None:
        raise InputError("`seed` only applies to the built-in random splits, not to a path")
    ds = _load_path(Path(key).expanduser(), split)
    return ds.head(limit) if limit is not None else ds


def _load_path(p: Path, split: str) -> Dataset:
    if not p.exists():
        raise DataNotFoundError(f"{p}: no such file or folder")
    if p.is_dir():
        sub = p / split
        has_splits = sub.is_dir() and any(d.is_dir() for d in sub.iterdir())
        return load_image_folder(sub if has_splits else p)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        import numpy as np

        try:
            with np.load(p, allow_pickle=False) as archive:
                has_split = f"x_{split}" in archive.files and f"y_{split}" in archive.files
        except (OSError, ValueError, EOFError) as e:
            raise DataError(f"{p}: not a readable .npz archive ({e})") from e
        return load_npz(p, split=split if has_split else None)
    if suffix == ".csv":
        return load_text_csv(p)
    if suffix in IMAGE_SUFFIXES:
        raise InputError(
            f"{p} is a single image; give the folder that holds one sub-folder per class"
        )
    raise InputError(f"{p}: unsupported file type {suffix or '(none)'}; use .npz, .csv or a folder")


def dataset_status() -> list[tuple[str, bool, str]]:
    """For each built-in dataset: ``(name, found, where it was found or why not)``.

    Never raises for a missing or broken dataset (that is what it reports); it only
    locates files, it does not parse them.

    Example:
        >>> dict((n, ok) for n, ok, _ in dataset_status())["digits"]
        True
    """
    out: list[tuple[str, bool, str]] = []
    for name, info in DATASETS.items():
        try:
            out.append((name, True, _WHERE[name]()))
        except AdvxError as e:
            out.append((name, False, str(e)))
        except ImportError as e:
            out.append((name, False, f"{e}; {info.install}"))
    return out
