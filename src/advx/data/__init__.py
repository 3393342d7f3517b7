"""Datasets and loaders: built-in Fashion-MNIST, digits and tweet sentiment, plus your
own images (folder per class or ``.npz``) and texts (CSV).

Everything is returned as one of two frozen values: :class:`ImageDataset` (float32
images ``(N, C, H, W)`` in ``[0, 1]``, int64 labels) or :class:`TextDataset` (texts and
labels). Bad data raises :class:`~advx.errors.DataError` naming the file and the problem;
a missing dataset raises :class:`~advx.errors.DataNotFoundError` saying what to install.

Example:
    >>> from advx.data import load, batches
    >>> ds = load("digits", split="train")
    >>> ds.input_shape, ds.num_classes, len(ds)
    ((1, 8, 8), 10, 1400)
    >>> x, y = next(batches(ds, 32))
    >>> x.shape
    torch.Size([32, 1, 8, 8])

Tokenizer and vocabulary for the text datasets: :mod:`advx.data.text`.
"""

from __future__ import annotations

from advx.data.core import ImageDataset, TextDataset, batches, validate_images
from advx.data.files import load_image_folder, load_npz, load_text_csv
from advx.data.registry import DATASETS, SPLITS, DatasetInfo, dataset_status, load

__all__ = [
    "DATASETS",
    "SPLITS",
    "DatasetInfo",
    "ImageDataset",
    "TextDataset",
    "batches",
    "dataset_status",
    "load",
    "load_image_folder",
    "load_npz",
    "load_text_csv",
    "validate_images",
]
