"""Atomic file writes that respect the user's umask.

Everything advx writes for a user (checkpoints, results, summaries, caches) goes through
these helpers: the data lands in a temporary file next to the destination, is flushed to
disk, gets the mode an ordinary ``open()`` would have given it (``0o666 & ~umask``; a
bare ``tempfile.mkstemp`` would leave 0600), and is renamed over the destination. A
killed process leaves the previous file or none, never half a file.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = atomic_write_text(d / "a.json", "{}")
    >>> (d / "a.json").read_text()
    '{}'
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_mode",
    "make_temp_dir",
    "umask",
]


def umask() -> int:
    """The process's umask (read without changing it where the OS allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, then put it back
    os.umask(mask)
    return mask


def file_mode(*, directory: bool = False) -> int:
    """The mode ``open()``/``mkdir()`` would give a new file (directory) right now."""
    return (0o777 if directory else 0o666) & ~umask()


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for a writer that takes a file name (e.g.
    ``safetensors.torch.save_file``); on success it gets the umask's mode and replaces
    ``path``; on error it is removed and ``path`` is untouched."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically, with the umask's mode. Returns the path."""
    with atomic_path(path, fsync=False) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", fsync: bool = True
) -> Path:
    """Write ``text`` to ``path`` atomically, with the umask's mode. Returns the path."""
    return atomic_write_bytes(path, text.encode(encoding), fsync=fsync)


def make_temp_dir(parent: str | os.PathLike[str], *, prefix: str = "", suffix: str = "") -> Path:
    """A new empty directory in ``parent`` with the mode ``mkdir`` would give it (a bare
    ``tempfile.mkdtemp`` makes 0700), for staging a directory that is renamed into place."""
    d = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
    os.chmod(d, file_mode(directory=True))
    return d
