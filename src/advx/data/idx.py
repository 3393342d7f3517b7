"""Reader for the IDX format of MNIST and Fashion-MNIST, gzipped or raw.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim`` big-endian
uint32 sizes, then the values in C order. MNIST-style data only uses type ``0x08``
(unsigned byte), which is all this reader accepts. The whole file is read into memory and
viewed with ``numpy.frombuffer`` (no per-element Python work, no cache on disk).
Format reference: LeCun, Cortes & Burges, "The MNIST database of handwritten digits".
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from advx.errors import DataError
from advx.io import atomic_write_bytes

_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic number.

    Raises:
        DataError: the file cannot be read, or is a truncated/corrupt gzip stream.
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from e
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise DataError(
            f"{path}: corrupt or truncated gzip stream ({e}); re-download or reinstall the file"
        ) from e


def read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file with ``ndim`` dimensions into a read-only array.

    Args:
        path: the file (``.gz`` or raw; detected from its content, not its name).
        ndim: the expected number of dimensions (3 for images, 1 for labels).

    Returns:
        ``uint8`` array of the declared shape, e.g. ``(60000, 28, 28)``.

    Raises:
        DataError: wrong magic number, wrong value type or rank, or a payload whose
            length differs from the header's declared sizes (truncated or padded file).
            The message names the file.
    """
    data = read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: only {len(data)} bytes, too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{path}: wrong magic number 0x{magic:08x}; an IDX file starts with 00 00 "
            f"(expected 0x{(_UBYTE << 8) | ndim:08x}); the file is not IDX data or is corrupt"
        )
    if data[2] != _UBYTE:
        raise DataError(
            f"{path}: IDX value type 0x{data[2]:02x} is not unsigned byte (0x08) "
            f"(magic number 0x{magic:08x})"
        )
    if data[3] != ndim:
        raise DataError(
            f"{path}: IDX file has {data[3]} dimensions, expected {ndim} "
            f"(magic number 0x{magic:08x}, expected 0x{(_UBYTE << 8) | ndim:08x})"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} of {header} bytes)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64))
    got = len(data) - header
    if got != expected:
        what = "truncated" if got < expected else "longer than declared"
        raise DataError(
            f"{path}: wrong length, file is {what}: header declares shape {dims} = "
            f"{expected} values but {got} bytes follow the header"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def write_idx(path: Path, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write a ``uint8`` array as an IDX file (gzipped if ``compress`` or the name ends
    in ``.gz``). Useful to build an ``ADVX_DATA_DIR`` layout from other data."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _UBYTE, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    payload = header + a.tobytes()
    if compress or (compress is None and path.name.endswith(".gz")):
        payload = gzip.compress(payload, compresslevel=6)
    atomic_write_bytes(path, payload)
