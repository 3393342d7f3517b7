"""What an evaluation reads: a length and contiguous batches of ``(x, y)``.

:func:`~advx.evaluate.runner.evaluate` and :func:`~advx.evaluate.transfer.transfer_matrix`
read their data one batch at a time through :class:`EvalData`, so memory stays flat in
the number of examples. :func:`as_data` turns what a user has (tensors, an advx dataset,
a map-style dataset of ``(x, y)`` items) into one.

Example:
    >>> import torch
    >>> ds = as_data((torch.zeros(5, 3), torch.tensor([0, 1, 0, 1, 0])))
    >>> len(ds), ds.batch(1, 3)[1].tolist()
    (5, [1, 0])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from advx.errors import InputError


class EvalData(Protocol):
    """What :func:`~advx.evaluate.runner.evaluate` reads: a length and contiguous batches."""

    def __len__(self) -> int: ...

    def batch(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """Examples ``start:stop`` as ``(x (B, ...), y (B,))``."""
        ...


@dataclass(frozen=True)
class TensorData:
    """In-memory data: ``x`` ``(N, ...)`` and labels ``y`` ``(N,)``."""

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.x, Tensor) or not isinstance(self.y, Tensor):
            raise InputError("data must be torch tensors (x, y); use torch.as_tensor")
        if self.x.shape[0] != self.y.shape[0]:
            raise InputError(f"x has {self.x.shape[0]} examples but y has {self.y.shape[0]} labels")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def batch(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """Examples ``start:stop``."""
        return self.x[start:stop], self.y[start:stop]


def as_data(data: Any) -> EvalData:
    """Accept ``(x, y)`` tensors, an object with ``batch(start, stop)``, or a map-style
    dataset whose items are ``(x, y)`` pairs."""
    if isinstance(data, tuple) and len(data) == 2:
        return TensorData(torch.as_tensor(data[0]), torch.as_tensor(data[1]))
    if hasattr(data, "batch") and hasattr(data, "__len__"):
        return data  # type: ignore[no-any-return]
    if isinstance(getattr(data, "x", None), Tensor) and isinstance(
        getattr(data, "y", None), Tensor
    ):
        return TensorData(data.x, data.y)  # e.g. advx.data.ImageDataset
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return _ItemData(data)
    raise InputError(
        "data must be (x, y) tensors, an object with batch(start, stop), or a dataset of "
        f"(x, y) items; got {type(data).__name__}"
    )


@dataclass(frozen=True)
class _ItemData:
    ds: Any

    def __len__(self) -> int:
        return len(self.ds)

    def batch(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        items = [self.ds[i] for i in range(start, stop)]
        x = torch.stack([torch.as_tensor(a) for a, _ in items])
        y = torch.as_tensor([int(b) for _, b in items], dtype=torch.int64)
        return x, y


def gather(ds: EvalData, indices: list[int]) -> tuple[Tensor, Tensor]:
    """The examples at ``indices`` (in that order), read one at a time."""
    xs, ys = [], []
    for i in indices:
        x, y = ds.batch(i, i + 1)
        xs.append(torch.as_tensor(x))
        ys.append(torch.as_tensor(y).long())
    return torch.cat(xs), torch.cat(ys)
