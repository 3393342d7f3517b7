"""The two dataset values (:class:`ImageDataset`, :class:`TextDataset`), their validation,
and :func:`batches`, the one way to iterate over them.

Both datasets are frozen: ``subset``/``head`` return new datasets that share storage where
torch indexing allows. Construction validates the invariants (shapes, dtypes, finite
values inside the declared bounds, labels in range) and raises :class:`DataError` naming
the dataset, so a bad file is reported where it is read, not three modules later.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import torch
from torch import Tensor

from advx.errors import DataError, InputError

Index = Union[int, slice, Sequence[int], Tensor]
"""What ``subset`` accepts: a slice, a sequence of positions, an integer tensor of
positions, or a boolean mask of length ``N``."""


def validate_images(
    x: Tensor,
    y: Tensor,
    *,
    bounds: tuple[float, float],
    num_classes: int,
    source: str,
) -> None:
    """Check a batch of images and labels; raise :class:`DataError` naming ``source``.

    Args:
        x: images ``(N, C, H, W)``, a floating-point tensor.
        y: labels ``(N,)``, an integer tensor.
        bounds: ``(lo, hi)``; every pixel must lie in ``[lo, hi]``.
        num_classes: labels must lie in ``[0, num_classes)``.
        source: the file or dataset name quoted in the error message.

    Raises:
        DataError: wrong shape or dtype, mismatched lengths, NaN/inf, values outside
            ``bounds``, labels out of range. The message names ``source`` and the problem.

    Example:
        >>> validate_images(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]),
        ...                 bounds=(0.0, 1.0), num_classes=2, source="toy")
    """
    lo, hi = float(bounds[0]), float(bounds[1])
    if not lo < hi:
        raise DataError(f"{source}: bounds must satisfy lo < hi, got {bounds}")
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise DataError(f"{source}: x and y must be torch tensors, got {type(x)} and {type(y)}")
    if x.dim() != 4:
        raise DataError(
            f"{source}: images must have shape (N, C, H, W), got {tuple(x.shape)}; "
            "add a channel axis for grayscale images (x.unsqueeze(1))"
        )
    if not x.is_floating_point():
        raise DataError(f"{source}: images must be floating point, got {x.dtype}")
    if y.dim() != 1 or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise DataError(
            f"{source}: labels must be an integer tensor of shape (N,), got {y.dtype} "
            f"{tuple(y.shape)}"
        )
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{source}: {x.shape[0]} images but {y.shape[0]} labels")
    if num_classes < 1:
        raise DataError(f"{source}: num_classes must be >= 1, got {num_classes}")
    if x.numel():
        xmin_t, xmax_t = torch.aminmax(x)  # one pass; NaN propagates into both
        xmin, xmax = float(xmin_t), float(xmax_t)
        if not (math.isfinite(xmin) and math.isfinite(xmax)):
            finite = torch.isfinite(x)
            bad = int((~finite.flatten(1).all(dim=1)).nonzero()[0])
            raise DataError(
                f"{source}: {int((~finite).sum())} NaN/inf values (first in example {bad}); "
                "clean or drop those examples"
            )
        if xmin < lo or xmax > hi:
            outside = (x < lo) | (x > hi)
            first = int(outside.flatten(1).any(dim=1).nonzero()[0])
            raise DataError(
                f"{source}: values outside the declared bounds [{lo:g}, {hi:g}]: "
                f"min {xmin:g}, max {xmax:g}, {int(outside.sum())} values "
                f"(first in example {first}); rescale the data or declare its real bounds"
            )
    if y.numel():
        ymin, ymax = int(y.min()), int(y.max())
        if ymin < 0 or ymax >= num_classes:
            bad_label = ymin if ymin < 0 else ymax
            first = int(((y < 0) | (y >= num_classes)).nonzero()[0])
            raise DataError(
                f"{source}: label {bad_label} (example {first}) is out of range for "
                f"{num_classes} classes; labels must be 0..{num_classes - 1}"
            )


def _positions(idx: Index, n: int) -> Tensor | slice:
    """Normalise a subset index to a slice or an int64 tensor of positions in ``[0, n)``."""
    if isinstance(idx, slice):
        return idx
    if isinstance(idx, int):
        idx = [idx]
    t = idx if isinstance(idx, Tensor) else torch.as_tensor(list(idx), dtype=torch.int64)
    if t.dtype == torch.bool:
        if t.shape != (n,):
            raise InputError(f"a boolean mask must have shape ({n},), got {tuple(t.shape)}")
        return t.nonzero().flatten()
    if t.is_floating_point() or t.dim() != 1:
        raise InputError(
            f"subset index must be 1-D integer positions, got {t.dtype} {tuple(t.shape)}"
        )
    t = t.to(torch.int64)
    if t.numel() and (int(t.min()) < -n or int(t.max()) >= n):
        raise InputError(f"subset index out of range for a dataset of {n} examples")
    return t


def _check_head(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"head(n) needs a non-negative integer, got {n!r}")
    return n


@dataclass(frozen=True, eq=False)  # tensors have no boolean ==; identity equality
class ImageDataset:
    """Images with labels, ready for a :class:`~advx.models.adapter.Classifier`.

    Attributes:
        name: where the data came from (dataset name or file path); quoted in errors.
        x: images ``(N, C, H, W)`` float32, every value in ``bounds``.
        y: labels ``(N,)`` int64 in ``[0, num_classes)``.
        class_names: one human-readable name per class; ``num_classes`` is its length.
        bounds: the valid input domain ``(lo, hi)``; default ``(0.0, 1.0)``.

    Construction validates all of the above (see :func:`validate_images`) and raises
    :class:`~advx.errors.DataError` naming ``name``.

    Example:
        >>> ds = ImageDataset("toy", torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1]),
        ...                   ("cat", "dog"))
        >>> ds.input_shape, ds.num_classes, len(ds.head(3))
        ((1, 8, 8), 2, 3)
    """

    name: str
    x: Tensor
    y: Tensor
    class_names: tuple[str, ...]
    bounds: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        object.__setattr__(self, "bounds", (float(self.bounds[0]), float(self.bounds[1])))
        if isinstance(self.x, Tensor) and self.x.dtype != torch.float32:
            raise DataError(f"{self.name}: images must be float32, got {self.x.dtype}")
        if isinstance(self.y, Tensor) and self.y.dtype != torch.int64:
            raise DataError(f"{self.name}: labels must be int64, got {self.y.dtype}")
        validate_images(
            self.x,
            self.y,
            bounds=self.bounds,
            num_classes=len(self.class_names),
            source=self.name,
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, ``(C, H, W)``."""
        return tuple(int(s) for s in self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(class_names)``)."""
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, idx: Index) -> ImageDataset:
        """The examples at ``idx`` (slice, positions, integer tensor or boolean mask)."""
        pos = _positions(idx, len(self))
        return ImageDataset(self.name, self.x[pos], self.y[pos], self.class_names, self.bounds)

    def head(self, n: int) -> ImageDataset:
        """The first ``n`` examples (all of them if ``n >= len(self)``)."""
        return self.subset(slice(0, _check_head(n)))

    def class_counts(self) -> list[int]:
        """Number of examples per class, indexed by class id."""
        return [int(c) for c in torch.bincount(self.y, minlength=self.num_classes)]


@dataclass(frozen=True, eq=False)
class TextDataset:
    """Texts with labels (e.g. tweet sentiment).

    Attributes:
        name: where the data came from (dataset name or file path); quoted in errors.
        texts: the raw texts, one per example (tokenise with :mod:`advx.data.text`).
        y: labels ``(N,)`` int64 in ``[0, num_classes)``.
        class_names: one human-readable name per class.

    Example:
        >>> ds = TextDataset("toy", ("so good", "awful"), torch.tensor([1, 0]),
        ...                  ("negative", "positive"))
        >>> ds.num_classes, ds.subset([1]).texts
        (2, ('awful',))
    """

    name: str
    texts: tuple[str, ...]
    y: Tensor
    class_names: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Free-form provenance (e.g. how many rows were dropped while cleaning)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "texts", tuple(self.texts))
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        bad = next((i for i, t in enumerate(self.texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise DataError(f"{self.name}: text {bad} is {type(self.texts[bad]).__name__}, not str")
        y = self.y
        if not isinstance(y, Tensor) or y.dtype != torch.int64 or y.dim() != 1:
            raise DataError(f"{self.name}: labels must be an int64 tensor of shape (N,)")
        if y.shape[0] != len(self.texts):
            raise DataError(f"{self.name}: {len(self.texts)} texts but {y.shape[0]} labels")
        k = len(self.class_names)
        if k < 1:
            raise DataError(f"{self.name}: at least one class name is needed")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
            first = int(((y < 0) | (y >= k)).nonzero()[0])
            raise DataError(
                f"{self.name}: label {int(y[first])} (example {first}) is out of range for "
                f"{k} classes; labels must be 0..{k - 1}"
            )

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(class_names)``)."""
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: Index) -> TextDataset:
        """The examples at ``idx`` (slice, positions, integer tensor or boolean mask)."""
        pos = _positions(idx, len(self))
        if isinstance(pos, slice):
            texts = self.texts[pos]
        else:
            texts = tuple(self.texts[int(i)] for i in pos)
        return TextDataset(self.name, texts, self.y[pos], self.class_names, dict(self.meta))

    def head(self, n: int) -> TextDataset:
        """The first ``n`` examples (all of them if ``n >= len(self)``)."""
        return self.subset(slice(0, _check_head(n)))

    def class_counts(self) -> list[int]:
        """Number of examples per class, indexed by class id."""
        return [int(c) for c in torch.bincount(self.y, minlength=self.num_classes)]


Batchable = Union[ImageDataset, TextDataset, tuple[Tensor, Tensor], Sequence[Tensor]]


def batches(
    data: Batchable,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[Any, Tensor]]:
    """Iterate over ``data`` in mini-batches of ``batch_size`` (the last may be smaller).

    Args:
        data: an :class:`ImageDataset` (yields ``x (B, C, H, W)``, ``y (B,)``), a
            :class:`TextDataset` (yields ``texts: list[str]``, ``y (B,)``), or a pair of
            tensors ``(x, y)`` with the same first dimension.
        batch_size: examples per batch, ``>= 1``.
        shuffle: visit the examples in a random order (drawn from ``generator``).
        generator: the random source for ``shuffle``; pass a seeded
            ``torch.Generator`` for a reproducible order.

    Example:
        >>> ds = ImageDataset("toy", torch.rand(5, 1, 2, 2), torch.zeros(5, dtype=torch.int64), ("a",))
        >>> [len(y) for _, y in batches(ds, 2)]
        [2, 2, 1]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(data, TextDataset):
        texts = data.texts
        for sel in _batch_positions(len(data), batch_size, shuffle, generator):
            if isinstance(sel, slice):
                yield list(texts[sel]), data.y[sel]
            else:
                yield [texts[int(i)] for i in sel], data.y[sel]
        return
    if isinstance(data, ImageDataset):
        x, y = data.x, data.y
    else:
        if len(data) != 2 or not all(isinstance(t, Tensor) for t in data):
            raise InputError(
                "batches() takes an ImageDataset, a TextDataset or a pair of tensors (x, y)"
            )
        x, y = data[0], data[1]
        if x.shape[0] != y.shape[0]:
            raise InputError(f"x has {x.shape[0]} examples but y has {y.shape[0]}")
    for sel in _batch_positions(int(y.shape[0]), batch_size, shuffle, generator):
        yield x[sel], y[sel]


def _batch_positions(
    n: int, batch_size: int, shuffle: bool, generator: torch.Generator | None
) -> Iterator[Tensor | slice]:
    """Slices over ``range(n)`` in order, or chunks of a random permutation."""
    order = torch.randperm(n, generator=generator) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            yield slice(start, start + batch_size)
        else:
            yield order[start : start + batch_size]
