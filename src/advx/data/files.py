"""Bring your own data: a folder of images per class, an ``.npz`` file, a CSV of texts.

Every loader validates what it reads and raises :class:`~advx.errors.DataError` naming
the file and the problem (unreadable image, NaN, values outside the bounds, labels out of
range, CSV rows that cannot be read, with their line numbers).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from advx.data.core import ImageDataset, TextDataset
from advx.errors import DataError, DataNotFoundError, InputError

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "P;gray"})
_MAX_REPORTED = 10


def _existing(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataNotFoundError(f"{p}: no such {what}")
    return p


def _size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or not all(isinstance(s, int) and s > 0 for s in hw):
        raise InputError(f"size must be a positive int or (height, width), got {size!r}")
    return (int(hw[0]), int(hw[1]))


def load_image_folder(
    path: str | Path,
    *,
    size: int | tuple[int, int] | None = None,
    grayscale: bool | None = None,
) -> ImageDataset:
    """Load ``path/<class name>/<image files>`` (one sub-folder per class).

    Class ids follow the sorted sub-folder names. Files with other suffixes than
    ``.png .jpg .jpeg .bmp .gif .webp .tif .tiff`` and hidden files are ignored.

    Args:
        path: the root folder.
        size: resize every image to ``size`` (``int`` for square, or ``(height, width)``)
            with bilinear filtering; default ``None`` keeps the original size, which must
            then be the same for all images.
        grayscale: ``True`` for 1 channel, ``False`` for 3 (RGB); default ``None`` picks
            grayscale if every image is grayscale, RGB otherwise. Transparency is dropped.

    Returns:
        :class:`ImageDataset` ``x (N, C, H, W)`` float32 in ``[0, 1]`` (8-bit values / 255).

    Example:
        >>> ds = load_image_folder("pets/", size=64)          # doctest: +SKIP
        >>> ds.class_names, ds.input_shape                    # doctest: +SKIP
        (('cat', 'dog'), (3, 64, 64))
    """
    from PIL import Image, UnidentifiedImageError  # lazy: only folder users need Pillow

    root = _existing(path, "image folder")
    if not root.is_dir():
        raise DataError(f"{root}: not a directory; give a folder with one sub-folder per class")
    hw = _size(size)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class sub-folders; expected {root}/<class name>/<images>")
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        for f in sorted((root / name).iterdir()):
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES:
                files.append((f, label))
    if not files:
        raise DataError(
            f"{root}: no image files in its class folders ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    images: list[Image.Image] = []
    for f, _ in files:
        try:
            with Image.open(f) as opened:
                opened.load()
                images.append(opened.copy())
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise DataError(f"{f}: cannot read image ({e})") from e
    if grayscale is None:
        grayscale = all(img.mode in _GRAY_MODES for img in images)
    mode = "L" if grayscale else "RGB"
    arrays: list[np.ndarray] = []
    first_size: tuple[int, int] | None = None
    for (f, _), original in zip(files, images, strict=True):
        im = _to_mode(original, mode)
        if hw is not None:
            im = im.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
        elif first_size is None:
            first_size = im.size
        elif im.size != first_size:
            raise DataError(
                f"{f}: size {im.size[0]}x{im.size[1]} differs from {files[0][0]} "
                f"({first_size[0]}x{first_size[1]}); pass size=(height, width) to resize"
            )
        a = np.asarray(im, dtype=np.uint8)
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))  # (C, H, W)
    x = torch.from_numpy(np.stack(arrays).astype(np.float32)).div_(255.0)  # (N, C, H, W)
    y = torch.tensor([label for _, label in files], dtype=torch.int64)
    return ImageDataset(str(root), x, y, tuple(classes))


def _to_mode(im: Image.Image, mode: str) -> Image.Image:
    """Convert a PIL image to ``L`` or ``RGB``, compositing transparency onto white and
    scaling 16-bit/float grayscale to 8 bits."""
    from PIL import Image

    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I") else max(float(a.max()), 1.0)
        im = Image.fromarray(np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    return im.convert(mode)


def load_npz(
    path: str | Path,
    *,
    bounds: tuple[float, float] = (0.0, 1.0),
    class_names: Sequence[str] | None = None,
    split: str | None = None,
) -> ImageDataset:
    """Load images from a NumPy ``.npz`` archive with arrays ``x`` and ``y``.

    Args:
        path: the ``.npz`` file (written with ``np.savez``; object arrays are refused,
            nothing is unpickled).
        bounds: the declared value range ``(lo, hi)``; every value must lie inside.
            ``uint8`` images with the default ``(0, 1)`` bounds are divided by 255.
        class_names: names of the classes; default: the file's ``class_names`` array if
            present, else ``"0" .. str(max(y))``.
        split: read ``x_<split>``/``y_<split>`` instead of ``x``/``y`` (e.g. ``"test"``).

    Shapes accepted for ``x``: ``(N, H, W)`` (grayscale), ``(N, C, H, W)``, or
    channels-last ``(N, H, W, C)`` with ``C`` in {1, 3, 4} (transposed). ``y`` must be
    ``(N,)`` integers (or floats with integral values).

    Example:
        >>> np.savez("mine.npz", x=np.random.rand(10, 1, 8, 8), y=np.arange(10) % 2)  # doctest: +SKIP
        >>> load_npz("mine.npz").input_shape                                          # doctest: +SKIP
        (1, 8, 8)
    """
    p = _existing(path, "file")
    xkey, ykey = ("x", "y") if split is None else (f"x_{split}", f"y_{split}")
    try:
        with np.load(p, allow_pickle=False) as archive:
            missing = [k for k in (xkey, ykey) if k not in archive.files]
            if missing:
                raise DataError(
                    f"{p}: missing array(s) {', '.join(missing)}; the archive holds "
                    f"{', '.join(archive.files) or 'nothing'} (save with np.savez(path, {xkey}=..., {ykey}=...))"
                )
            x_np = archive[xkey]
            y_np = archive[ykey]
            stored_names = archive["class_names"] if "class_names" in archive.files else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{p}: not a readable .npz archive ({e})") from e
    lo, hi = float(bounds[0]), float(bounds[1])
    x = _npz_images(p, x_np, (lo, hi))
    y = _npz_labels(p, y_np)
    if class_names is None and stored_names is not None:
        class_names = [str(c) for c in np.asarray(stored_names).reshape(-1).tolist()]
    if class_names is None:
        k = int(y.max()) + 1 if y.numel() else 1
        class_names = [str(i) for i in range(max(k, 1))]
    # ImageDataset validates NaN, bounds and label range, naming the file
    return ImageDataset(str(p), x, y, tuple(str(c) for c in class_names), (lo, hi))


def _npz_images(p: Path, a: np.ndarray, bounds: tuple[float, float]) -> torch.Tensor:
    if a.dtype.kind not in "uif" and a.dtype != np.bool_:
        raise DataError(f"{p}: x has dtype {a.dtype}; images must be numeric")
    if a.ndim == 3:
        a = a[:, None]  # (N, 1, H, W)
    elif a.ndim == 4 and a.shape[1] not in (1, 3, 4) and a.shape[3] in (1, 3, 4):
        a = a.transpose(0, 3, 1, 2)  # channels-last -> (N, C, H, W)
    elif a.ndim != 4:
        raise DataError(
            f"{p}: x has shape {a.shape}; expected (N, H, W), (N, C, H, W) or (N, H, W, C)"
        )
    if a.dtype == np.uint8 and bounds == (0.0, 1.0):
        return torch.from_numpy(a.astype(np.float32)).div_(255.0)
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _npz_labels(p: Path, a: np.ndarray) -> torch.Tensor:
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise DataError(f"{p}: y has shape {a.shape}; labels must be (N,) class indices")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise DataError(f"{p}: y contains NaN/inf; labels must be integer class indices")
        if not (a == np.round(a)).all():
            bad = int(np.argmax(a != np.round(a)))
            raise DataError(f"{p}: y[{bad}] = {a[bad]} is not an integer class index")
    elif a.dtype.kind not in "ui":
        raise DataError(f"{p}: y has dtype {a.dtype}; labels must be integer class indices")
    return torch.from_numpy(a.astype(np.int64))


def load_text_csv(
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    class_names: Sequence[str] | None = None,
) -> TextDataset:
    """Load a UTF-8 CSV with a header holding ``text`` and ``label`` columns.

    Labels may be class names (``positive``) or integer ids (``0, 1, 2``). Class ids
    follow ``class_names`` if given; otherwise integer labels are used as they are
    (names ``"0" .. str(max)``) and string labels are sorted alphabetically.

    Raises:
        DataError: the header lacks a column, or rows cannot be read (wrong number of
            fields, empty text or label, a label not in ``class_names``, invalid UTF-8,
            broken quoting); all bad rows are reported with their line numbers.

    Example:
        >>> ds = load_text_csv("reviews.csv")     # doctest: +SKIP
        >>> ds.class_names                        # doctest: +SKIP
        ('negative', 'positive')
    """
    p = _existing(path, "file")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise DataError(f"{p}: cannot read ({e.strerror or e})") from e
    problems: list[str] = []
    lines = raw.split(b"\n")
    for i, chunk in enumerate(lines, start=1):  # report every undecodable line, not just one
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(
                f"line {i}: invalid UTF-8 at byte {e.start} ({chunk[e.start : e.start + 1]!r})"
            )
    if problems:
        _raise_rows(p, problems, "save the file as UTF-8")
    text = raw.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as e:
        raise DataError(f"{p}: line 1: no readable header row ({e or 'empty file'})") from None
    header = [h.strip() for h in header]
    missing = [c for c in (text_column, label_column) if c not in header]
    if missing:
        raise DataError(
            f"{p}: line 1: header {header} lacks column(s) {', '.join(missing)}; "
            f"the first row must name the columns, e.g. {text_column},{label_column}"
        )
    ti, li = header.index(text_column), header.index(label_column)
    texts: list[str] = []
    raw_labels: list[str] = []
    row_lines: list[int] = []
    line = reader.line_num + 1
    while True:
        start = line
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            problems.append(f"line {start}: unreadable CSV ({e})")
            break  # the reader cannot resynchronise after broken quoting
        line = reader.line_num + 1
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != len(header):
            problems.append(f"line {start}: {len(row)} fields, the header has {len(header)}")
            continue
        t, lab = row[ti], row[li].strip()
        if not t.strip():
            problems.append(f"line {start}: empty {text_column}")
            continue
        if not lab:
            problems.append(f"line {start}: empty {label_column}")
            continue
        texts.append(t)
        raw_labels.append(lab)
        row_lines.append(start)
    if not problems and not texts:
        problems.append("no data rows after the header")
    names, ids = _label_ids(raw_labels, class_names)
    problems.extend(
        f"line {ln}: label {lab!r} is not one of {', '.join(names)}"
        if class_names is not None
        else f"line {ln}: label {lab} is negative; integer labels must be 0..K-1"
        for ln, lab in zip(row_lines, raw_labels, strict=True)
        if lab not in ids
    )
    if problems:
        _raise_rows(p, problems, "fix or remove these rows")
    y = torch.tensor([ids[lab] for lab in raw_labels], dtype=torch.int64)
    return TextDataset(str(p), tuple(texts), y, names)


def _label_ids(
    labels: list[str], class_names: Sequence[str] | None
) -> tuple[tuple[str, ...], dict[str, int]]:
    if class_names is not None:
        names = tuple(str(c) for c in class_names)
        ids = {n: i for i, n in enumerate(names)}
        # integer labels may also index class_names directly
        ids.update({str(i): i for i in range(len(names)) if str(i) not in ids})
        return names, ids
    if labels and all(lab.lstrip("-").isdigit() for lab in labels):
        values = [int(lab) for lab in labels]
        k = max(values) + 1
        # negative labels are left out of the mapping, so the caller reports them
        return tuple(str(i) for i in range(max(k, 1))), {
            lab: v for lab, v in zip(labels, values, strict=True) if v >= 0
        }
    names = tuple(sorted(set(labels)))
    return names, {n: i for i, n in enumerate(names)}


def _raise_rows(p: Path, problems: list[str], advice: str) -> None:
    shown = "; ".join(problems[:_MAX_REPORTED])
    more = f" (and {len(problems) - _MAX_REPORTED} more)" if len(problems) > _MAX_REPORTED else ""
    raise DataError(f"{p}: {len(problems)} unreadable rows: {shown}{more}; {advice}")
