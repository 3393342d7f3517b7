"""Per-example random streams: results that do not depend on how the work was cut.

An attack's random choices (random starts, square positions, search directions, random
targets) are drawn from an :class:`ExampleRng`. Row ``i`` of a draw is a pure function
of ``(seed, stream, index[i], k, j)``: the seed, a stream number (so targets and the
attack's own draws never share numbers), the example's *global* index in the data set,
how many draws that example has made so far, and the element's position inside the row.
So the same seed gives bitwise-equal random numbers for an example whatever the batch it
travels in, the number of processes, or where a resumed run restarted, as long as the
algorithm itself treats examples independently (every advx attack does).

The numbers come from a counter-based hash (Wellons' ``lowbias32`` integer mixer applied
to the key), computed with ordinary tensor ops on the inputs' device: no per-row Python
loop and no generator object to move between CPU and CUDA.

Example:
    >>> rng = ExampleRng(0, torch.arange(10, 14))
    >>> a = rng.rand((3,))                        # (4, 3) uniform in [0, 1)
    >>> b = ExampleRng(0, torch.tensor([12])).rand((3,))
    >>> bool((a[2] == b[0]).all())                 # example 12: same numbers, any batch
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

_M32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9
_CHUNK = 1 << 20  # elements hashed at once (bounds the int64 temporaries to ~8 MiB)


def draw_seed() -> int:
    """A seed in ``[0, 2**63 - 1)`` for an unseeded run (``seed=None``), drawn from torch's
    global generator.

    Like any unseeded torch op, this advances the global generator (by one draw) and
    never reseeds it: after ``torch.manual_seed(s)`` an unseeded attack is reproducible,
    and so is everything the program draws after it. (``torch.seed()`` would reseed the
    global generator from the OS, silently undoing the user's ``torch.manual_seed``.)
    """
    return int(torch.randint(2**63 - 1, (), dtype=torch.int64))


def _mix(x: Tensor) -> Tensor:
    """``lowbias32``: a 32-bit integer hash with good avalanche, on int64 tensors whose
    values are in ``[0, 2**32)``. Products may wrap in int64; the mask keeps the exact
    low 32 bits."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def _mix_(x: Tensor) -> Tensor:
    """:func:`_mix` in place (fewer temporaries on large draws)."""
    x.bitwise_xor_(x >> 16).mul_(0x7FEB352D).bitwise_and_(_M32)
    x.bitwise_xor_(x >> 15).mul_(0x846CA68B).bitwise_and_(_M32)
    return x.bitwise_xor_(x >> 16)


def _mix_int(v: int) -> int:
    """:func:`_mix` on a Python int (same numbers)."""
    v &= _M32
    v ^= v >> 16
    v = (v * 0x7FEB352D) & _M32
    v ^= v >> 15
    v = (v * 0x846CA68B) & _M32
    return v ^ (v >> 16)


class ExampleRng:
    """Random numbers keyed by ``(seed, stream, example index)``, one stream per example.

    Args:
        seed: any int (64 bits are used).
        index: global example indices ``(N,)`` of the rows this generator serves (the
            batching path passes each batch's offsets; default ``0..N-1``).
        stream: a small int separating independent uses of one seed.
        device: where draws are made (default: ``index``'s device).

    Every draw method returns a tensor ``(N, *shape)`` (or ``(len(rows), *shape)`` for
    ``rows=``) and advances the per-example counter of the rows that drew, so a row's
    numbers depend only on its own history. :meth:`subset` gives a view on some rows that
    shares those counters (drawing through it advances the parent's).
    """

    def __init__(
        self,
        seed: int,
        index: Tensor | Sequence[int],
        *,
        stream: int = 0,
        device: torch.device | str | None = None,
    ) -> None:
        idx = torch.as_tensor(index, dtype=torch.int64)
        if idx.dim() != 1:
            raise ValueError(f"index must be 1-D, got shape {tuple(idx.shape)}")
        dev = torch.device(device) if device is not None else idx.device
        self.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        self.stream = int(stream)
        self.index = idx.to(dev)
        self.counter = torch.zeros(idx.shape[0], dtype=torch.int64, device=dev)
        self.rows = torch.arange(idx.shape[0], device=dev)
        # the seed and stream folded once into a 32-bit key
        self._key = _mix_int(
            _mix_int(_mix_int(self.seed & _M32) ^ (self.seed >> 32)) ^ _mix_int(self.stream)
        )

    # -- construction ----------------------------------------------------------------
    @classmethod
    def coerce(
        cls,
        generator: ExampleRng | torch.Generator | int | None,
        n: int,
        device: torch.device | str | None = None,
    ) -> ExampleRng:
        """An :class:`ExampleRng` for ``n`` rows from what a caller passed: itself (if it
        has ``n`` rows), a seed, a ``torch.Generator`` (one seed is drawn from it) or None
        (one seed from torch's global generator, so ``torch.manual_seed`` still rules)."""
        if isinstance(generator, ExampleRng):
            if len(generator) != n:
                raise ValueError(f"generator serves {len(generator)} rows, the batch has {n}")
            return generator.to(device) if device is not None else generator
        if isinstance(generator, bool) or not isinstance(generator, (int, torch.Generator)):
            if generator is not None:
                raise TypeError(
                    f"generator must be an ExampleRng, a seed or a torch.Generator, got {generator!r}"
                )
            seed = int(torch.randint(0, 2**62, (1,)))
        elif isinstance(generator, int):
            seed = generator
        else:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return cls(seed, torch.arange(n), device=device)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @property
    def device(self) -> torch.device:
        """Where the draws are made."""
        return self.rows.device

    def to(self, device: torch.device | str) -> ExampleRng:
        """This generator on ``device`` (the same numbers; counters move with it)."""
        device = torch.device(device)
        if device == self.device:
            return self
        out = self._on_rows(self.rows.to(device))
        out.index, out.counter = self.index.to(device), self.counter.to(device)
        return out

    def subset(self, rows: Tensor) -> ExampleRng:
        """A view on rows ``rows`` (indices or a bool mask into this generator's rows)
        sharing their counters: drawing through the view advances this generator too."""
        rows = rows.to(self.device)
        if rows.dtype == torch.bool:
            rows = rows.nonzero().flatten()
        return self._on_rows(self.rows[rows])

    def _on_rows(self, rows: Tensor) -> ExampleRng:
        """This generator's streams and counters, reached through ``rows``."""
        out = object.__new__(ExampleRng)
        out.seed, out.stream, out._key = self.seed, self.stream, self._key
        out.index, out.counter, out.rows = self.index, self.counter, rows
        return out

    # -- the raw bits ------------------------------------------------------------------
    def bits(self, shape: Sequence[int] = (), *, rows: Tensor | None = None) -> Tensor:
        """Uniform 32-bit integers in ``[0, 2**32)`` (int64) ``(n, *shape)``."""
        r = self.rows if rows is None else self.subset(rows).rows
        d = math.prod(shape)
        idx = self.index[r]
        k = self.counter[r]
        self.counter.index_add_(0, r, torch.ones_like(r))
        row_key = _mix(
            _mix(_mix((idx & _M32) ^ self._key) ^ ((idx >> 32) & _M32)) ^ _mix(k & _M32)
        )  # (n,)
        out = torch.empty((r.shape[0], d), dtype=torch.int64, device=self.device)
        if d == 0 or r.shape[0] == 0:
            return out.view(r.shape[0], *shape)
        pos = _mix((torch.arange(d, device=self.device) * _GOLDEN + 1) & _M32)  # (d,)
        step = max(1, _CHUNK // d)
        for s in range(0, r.shape[0], step):
            chunk = out[s : s + step]
            torch.add(row_key[s : s + step, None], pos[None, :], out=chunk)
            _mix_(chunk.bitwise_and_(_M32))
        return out.view(r.shape[0], *shape)

    # -- distributions -------------------------------------------------------------------
    def rand(
        self,
        shape: Sequence[int] = (),
        *,
        dtype: torch.dtype = torch.float32,
        rows: Tensor | None = None,
    ) -> Tensor:
        """Uniform floats in ``[0, 1)`` ``(n, *shape)`` in ``dtype`` (float64 gets 32
        random bits, other dtypes 24, rounded to the dtype)."""
        b = self.bits(shape, rows=rows)
        if dtype == torch.float64:
            return b.to(torch.float64) * 2.0**-32
        return ((b >> 8).to(torch.float32) * 2.0**-24).to(dtype)

    def uniform(
        self,
        low: float,
        high: float,
        shape: Sequence[int] = (),
        *,
        dtype: torch.dtype = torch.float32,
        rows: Tensor | None = None,
    ) -> Tensor:
        """Uniform floats in ``[low, high)`` ``(n, *shape)``."""
        return low + (high - low) * self.rand(shape, dtype=dtype, rows=rows)

    def normal(
        self,
        shape: Sequence[int] = (),
        *,
        dtype: torch.dtype = torch.float32,
        rows: Tensor | None = None,
    ) -> Tensor:
        """Standard normal floats ``(n, *shape)`` (Box-Muller on two uniforms)."""
        d = math.prod(shape)
        calc = torch.float64 if dtype == torch.float64 else torch.float32
        u = self.rand((2, d), dtype=calc, rows=rows)
        z = (-2.0 * torch.log1p(-u[:, 0])).sqrt() * torch.cos(2 * math.pi * u[:, 1])
        return z.to(dtype).view(z.shape[0], *shape)

    def exponential(
        self,
        shape: Sequence[int] = (),
        *,
        dtype: torch.dtype = torch.float32,
        rows: Tensor | None = None,
    ) -> Tensor:
        """Exponential(1) floats ``(n, *shape)``."""
        calc = torch.float64 if dtype == torch.float64 else torch.float32
        return (-torch.log1p(-self.rand(shape, dtype=calc, rows=rows))).to(dtype)

    def randint(
        self, low: int, high: int, shape: Sequence[int] = (), *, rows: Tensor | None = None
    ) -> Tensor:
        """Integers uniform in ``[low, high)`` (int64) ``(n, *shape)``."""
        span = int(high) - int(low)
        if not 0 < span < 2**31:
            raise ValueError(f"randint needs 0 < high - low < 2**31, got [{low}, {high})")
        return ((self.bits(shape, rows=rows) * span) >> 32) + int(low)

    def signs(
        self,
        shape: Sequence[int] = (),
        *,
        dtype: torch.dtype = torch.float32,
        rows: Tensor | None = None,
    ) -> Tensor:
        """Random ``±1`` ``(n, *shape)`` in ``dtype``."""
        return (self.bits(shape, rows=rows) >> 31).to(dtype) * 2 - 1

    def seeds(self) -> Tensor:
        """One 62-bit seed per row (int64 ``(n,)``), for code that needs a torch
        generator per example (drawn from the stream, so it advances it)."""
        b = self.bits((2,))
        return ((b[:, 0] & 0x3FFFFFFF) << 32) | b[:, 1]

    def __repr__(self) -> str:
        return f"ExampleRng(seed={self.seed}, stream={self.stream}, n={len(self)})"
