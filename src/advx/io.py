"""Atomic file and directory writes that respect the user's umask.

Everything advx writes for a user (checkpoints, results, summaries, caches, reports)
goes through these helpers: the data lands in a temporary file next to the destination,
is flushed to disk, gets the mode an ordinary ``open()`` would have given it
(``0o666 & ~umask``; a bare ``tempfile.mkstemp`` would leave 0600), and is renamed over
the destination. A killed process leaves the previous file or none, never half a file.
A directory written as a whole (a checkpoint) is staged next to its destination with
:func:`atomic_dir` and moved into place the same way. Write JSON with
:func:`advx.jsonio.dumps` (strict: no NaN/Infinity) and one of these.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = atomic_write_text(d / "a.json", "{}")
    >>> (d / "a.json").read_text()
    '{}'
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_dir",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_mode",
    "fsync_dir",
    "fsync_file",
    "make_temp_dir",
    "replace_dir",
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
            fsync_file(tmp)
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


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush ``path``'s data to disk (for files written by a library that does not)."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory's entries to disk, where the OS and filesystem allow it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_dir(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Move the directory ``src`` to ``dest``, replacing a directory already there. The
    old one is renamed aside first (a directory cannot be renamed over a non-empty one),
    then removed; if the move fails it is put back."""
    src, dest = Path(src), Path(dest)
    if not dest.exists():
        os.replace(src, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
    os.rmdir(old)  # only its unique name is wanted
    os.replace(dest, old)
    try:
        os.replace(src, dest)
    except OSError:
        os.replace(old, dest)  # put the previous directory back
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(path: str | os.PathLike[str], *, suffix: str = ".partial") -> Iterator[Path]:
    """Yield a new empty directory next to ``path`` (with the mode ``mkdir`` would give
    it) to write a directory's files into; on success its entries are flushed and it
    replaces ``path`` (:func:`replace_dir`); on error it is removed and ``path`` is
    untouched. Files written into it should be flushed (:func:`fsync_file`) or written
    with :func:`atomic_write_bytes`/:func:`atomic_write_text`.

    Example:
        >>> with atomic_dir(d / "ckpt") as tmp:                  # doctest: +SKIP
        ...     _ = atomic_write_text(tmp / "model.json", "{}")
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(dest.parent, prefix=f".{dest.name}.", suffix=suffix)
    try:
        yield tmp
        fsync_dir(tmp)
        replace_dir(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
