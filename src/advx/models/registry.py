"""The model registry: one :class:`ArchSpec` per architecture name, and :func:`build`.

An architecture is registered once (:func:`register`) with everything the rest of advx
needs to know about it: how to build it from JSON-able keyword arguments, whether it is a
torch or a scikit-learn model, which training settings work for it, and, for checkpoints,
which extra files it owns (a text model's vocabulary) and which skops types its saved
estimator may contain. Adding an architecture is one :func:`register` call; nothing else
in :mod:`advx.models` or :mod:`advx.training` changes. A package of advx that brings its
own architectures registers them in its ``archs`` module, which :data:`ARCHS` imports on
first use (:func:`load_plugins`), so the zoo never imports the packages that extend it.

Example:
    >>> from advx.models import ARCHS, build
    >>> sorted(a for a, s in ARCHS.items() if s.kind == "torch" and s.modality == "image")
    ['cnn', 'efficientnet-lite', 'linear', 'mlp', 'rnn']
    >>> clf = build("mlp", input_shape=(1, 8, 8), num_classes=10)
    >>> clf(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torch import nn

from advx.errors import ConfigError
from advx.models.adapter import Classifier

Kind = str
"""The name of a :class:`Backend`: ``"torch"`` and ``"sklearn"`` are built in."""
Modality = Literal["image", "text"]


@dataclass(frozen=True)
class BuildRequest:
    """What :func:`build` was asked for, handed to :attr:`Backend.make`: the options
    (``kwargs``, JSON values) and the model's metadata."""

    arch: str
    kwargs: dict[str, Any]
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: Sequence[str] | None
    bounds: tuple[float, float]
    mean: Sequence[float] | None
    std: Sequence[float] | None
    seed: int


@dataclass(frozen=True)
class Backend:
    """How the models of one kind (:attr:`ArchSpec.kind`) are built, saved, loaded and
    trained. :func:`build`, :func:`advx.models.save`, :func:`advx.models.load` and
    :func:`advx.training.train` look the backend up by the spec's ``kind`` and call it, so
    no generic code branches on a kind's name; a new kind of model is one
    :func:`register_backend` call (scikit-learn's is in :mod:`advx.models.classic`, torch's
    in :mod:`advx.models.checkpoint`).

    Attributes:
        name: the kind, as in :attr:`ArchSpec.kind` and ``model.json`` (``"torch"``).
        model_type: the class :attr:`make` returns; :func:`advx.models.save` accepts only
            instances of it.
        weights_file: the checkpoint file holding the model (``"model.safetensors"``).
        make: ``make(spec, request) -> model``: calls ``spec.builder`` and wraps what it
            returns (the model carries ``arch`` and ``arch_kwargs``).
        write: ``write(model, file)``: the model's weights/state into ``file``, durably.
        read: ``read(directory, info, spec, builder_kwargs) -> model`` from a checkpoint
            whose files are already verified (``info`` is its ``model.json``); raises
            :class:`~advx.errors.CheckpointError` for anything it cannot vouch for.
        fit: None when the model trains by gradient descent (:func:`advx.training.fit`:
            normalisation inside the model, adversarial training, several processes);
            else ``fit(model, x, y)`` trains it in one call on a seeded subsample, and
            the gradient-descent settings (epochs, lr...) do not apply.
    """

    name: str
    model_type: type
    weights_file: str
    make: Callable[[ArchSpec, BuildRequest], Any]
    write: Callable[[Any, Path], None]
    read: Callable[[Path, dict[str, Any], ArchSpec, dict[str, Any]], Any]
    fit: Callable[[Any, Any, Any], Any] | None = None


_BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Add a :class:`Backend` (a kind of model); returns it.

    Raises:
        ConfigError: a different backend already has that name.
    """
    old = _BACKENDS.get(backend.name)
    if old is not None and old is not backend:
        raise ConfigError(f"model backend {backend.name!r} is already registered")
    _BACKENDS[backend.name] = backend
    return backend


def backends() -> dict[str, Backend]:
    """The registered backends by kind (``import advx.models`` registers the built-in
    ones)."""
    return dict(_BACKENDS)


def get_backend(kind: str) -> Backend:
    """The :class:`Backend` of ``kind``.

    Raises:
        ConfigError: no backend of that kind is registered.
    """
    try:
        return _BACKENDS[kind]
    except KeyError:
        raise ConfigError(
            f"no model backend {kind!r} (known: {', '.join(sorted(_BACKENDS))}); import the "
            "module that registers it (advx.models.register_backend)"
        ) from None


@dataclass(frozen=True)
class ArchSpec:
    """Everything advx knows about one architecture.

    Attributes:
        name: registry key (``"cnn"``), used on the command line and in ``model.json``.
        description: one line shown by ``advx train --list``.
        kind: the :class:`Backend` that builds, saves, loads and trains it: ``"torch"``
            (``builder`` returns an ``nn.Module`` that :func:`build` wraps in a
            :class:`~advx.models.adapter.Classifier`) or ``"sklearn"`` (``builder``
            returns an unfitted estimator that :func:`build` wraps in a
            :class:`~advx.models.classic.SklearnClassifier`).
        modality: ``"image"`` or ``"text"``; which datasets it can be trained on.
        builder: torch: ``builder(input_shape, num_classes, **kwargs) -> nn.Module``;
            sklearn: ``builder(seed, **kwargs) -> estimator``. Its keyword arguments are
            the architecture's options; they must be JSON values (they are stored in
            ``model.json`` and the model is rebuilt from them).
        train_defaults: default training settings (keys of
            :class:`advx.training.TrainConfig`), e.g. ``{"epochs": 4, "lr": 2e-3}``.
        dataset_defaults: per-dataset overrides of ``train_defaults``, e.g. more epochs
            on the 1400-image digits: ``{"digits": {"epochs": 40}}``.
        trusted_types: sklearn only: fully qualified type names (as reported by
            ``skops.io.get_untrusted_types``) that a saved estimator of this architecture
            may contain beyond skops' own trusted set. Anything else is refused at load.
        estimator_types: sklearn only: accepted classes of the saved top-level estimator,
            fully qualified; a checkpoint holding another class is refused.
        save_extra: optional ``save_extra(model, directory) -> None`` writing extra files
            (a vocabulary, a tokenizer) next to the weights; every file in the checkpoint
            directory is hashed into ``model.json``.
        load_extra: optional ``load_extra(directory, info) -> dict`` returning extra
            keyword arguments for the builder (e.g. ``{"vocab": [...]}``) read from those
            files; ``info`` is the parsed ``model.json``.
    """

    name: str
    description: str
    kind: Kind
    modality: Modality
    builder: Callable[..., Any]
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    dataset_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    trusted_types: tuple[str, ...] = ()
    estimator_types: tuple[str, ...] = ()
    save_extra: Callable[[Any, Path], None] | None = None
    load_extra: Callable[[Path, dict[str, Any]], dict[str, Any]] | None = None

    @property
    def backend(self) -> Backend:
        """The :class:`Backend` named by :attr:`kind`."""
        return get_backend(self.kind)

    def defaults_for(self, dataset: str | None = None) -> dict[str, Any]:
        """Training defaults for ``dataset`` (the general ones updated by its overrides)."""
        out = dict(self.train_defaults)
        if dataset is not None:
            out.update(self.dataset_defaults.get(dataset, {}))
        return out

    def options(self) -> dict[str, Any]:
        """The builder's keyword options and their defaults (``advx train --list``)."""
        skip = {"input_shape", "num_classes", "seed"}
        out: dict[str, Any] = {}
        for p in inspect.signature(self.builder).parameters.values():
            if p.name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            out[p.name] = None if p.default is p.empty else p.default
        return out


_REGISTRY: dict[str, ArchSpec] = {}
_PLUGINS_LOADED = False


def load_plugins() -> None:
    """Import the ``archs`` module of every advx package that has one, once per process.

    A package adds architectures to the zoo by registering them in its own ``archs``
    module (the text models do, in ``archs.py`` next to their networks); the zoo finds
    such modules by that name, the way ``advx`` finds its command modules, so it never
    imports the packages that extend it. Called on the first read of :data:`ARCHS`.
    """
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    import advx

    for pkg in pkgutil.iter_modules(advx.__path__):
        if not pkg.ispkg or pkg.name == "models":
            continue
        where = [os.path.join(p, pkg.name) for p in advx.__path__]
        if any(m.name == "archs" for m in pkgutil.iter_modules(where)):
            importlib.import_module(f"advx.{pkg.name}.archs")


class _Archs(Mapping[str, ArchSpec]):
    """Read-only view of the registry that loads the packages' ``archs`` modules first."""

    def __getitem__(self, name: str) -> ArchSpec:
        load_plugins()
        return _REGISTRY[name]

    def __iter__(self) -> Iterator[str]:
        load_plugins()
        return iter(dict(_REGISTRY))

    def __len__(self) -> int:
        load_plugins()
        return len(_REGISTRY)

    def __repr__(self) -> str:
        return f"ARCHS({sorted(self)})"


ARCHS: Mapping[str, ArchSpec] = _Archs()
"""Every registered architecture by name (read-only view; add with :func:`register`).
``ARCHS[name].description`` is its one-line summary."""


def register(spec: ArchSpec) -> ArchSpec:
    """Add an architecture to :data:`ARCHS`; returns ``spec``.

    Raises:
        ConfigError: the name is taken, or ``kind``/``modality`` is unknown.
    """
    if spec.name in _REGISTRY:
        raise ConfigError(f"architecture {spec.name!r} is already registered")
    if not isinstance(spec.kind, str) or not spec.kind:
        raise ConfigError(f"{spec.name}: kind must name a model backend, got {spec.kind!r}")
    if spec.modality not in ("image", "text"):
        raise ConfigError(f"{spec.name}: modality must be 'image' or 'text'")
    _REGISTRY[spec.name] = spec
    return spec


def get_arch(name: str) -> ArchSpec:
    """The :class:`ArchSpec` registered as ``name``.

    Raises:
        ConfigError: unknown name; the message lists the registered ones.
    """
    try:
        return ARCHS[name]
    except KeyError:
        raise ConfigError(
            f"unknown architecture {name!r}; choose one of {', '.join(sorted(ARCHS))} "
            "(`advx train --list` describes them)"
        ) from None


def jsonable(kwargs: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    """``kwargs`` after a JSON round trip (tuples become lists), so a model built now and
    one rebuilt from ``model.json`` later receive identical arguments.

    Raises:
        ConfigError: a value is not representable in JSON.
    """
    try:
        out: dict[str, Any] = json.loads(json.dumps(dict(kwargs), allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"{what}: options must be JSON values (numbers, strings, lists): {e}"
        ) from None
    return out


def check_kwargs(spec: ArchSpec, kwargs: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` if ``kwargs`` holds an option ``spec.builder`` lacks."""
    allowed = spec.options()
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(
            f"architecture {spec.name!r} has no option(s) {', '.join(unknown)}; "
            f"its options are: {', '.join(sorted(allowed)) or '(none)'}"
        )


def build(
    arch: str,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    class_names: Sequence[str] | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    seed: int = 0,
    **arch_kwargs: Any,
) -> Any:
    """Build an untrained model of architecture ``arch``.

    Args:
        arch: a name in :data:`ARCHS` (``linear``, ``mlp``, ``cnn``, ``rnn``, ``logreg``,
            ``svm``, ``tree``, ``forest``, ``knn``, ...).
        input_shape: shape of one example, e.g. ``(1, 28, 28)``.
        num_classes: number of classes.
        class_names: one name per class (default ``"0"``, ``"1"``, ...).
        bounds: the valid input domain ``(lo, hi)``; default ``(0, 1)``.
        mean, std: torch only: per-channel normalisation applied inside the model's
            forward (inputs stay in ``bounds``; see :class:`Classifier`).
        seed: sklearn only: the estimator's ``random_state``. (Torch weights are
            initialised from torch's global generator; seed it, or use
            :func:`advx.training.train`, which does.)
        **arch_kwargs: the architecture's options (``ARCHS[arch].options()``), JSON values.

    Returns:
        A :class:`~advx.models.adapter.Classifier` (torch) or a
        :class:`~advx.models.classic.SklearnClassifier` (scikit-learn); either carries
        ``arch`` and ``arch_kwargs`` so :func:`advx.models.save` can record them.

    Raises:
        ConfigError: unknown architecture or option, or options that do not fit the
            input shape (e.g. too many pooling layers for 8x8 images).

    Example:
        >>> clf = build("cnn", input_shape=(1, 28, 28), num_classes=10, channels=[16, 32])
        >>> clf.arch, clf.arch_kwargs
        ('cnn', {'channels': [16, 32]})
    """
    spec = get_arch(arch)
    check_kwargs(spec, arch_kwargs)
    kwargs = jsonable(arch_kwargs, what=f"architecture {arch!r}")
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ConfigError(f"input_shape must be positive sizes, got {tuple(input_shape)}")
    if int(num_classes) < 2:
        raise ConfigError(f"num_classes must be >= 2, got {num_classes}")
    if class_names is not None and len(class_names) != int(num_classes):
        raise ConfigError(f"{len(class_names)} class names for {num_classes} classes")
    request = BuildRequest(
        arch=arch,
        kwargs=kwargs,
        input_shape=shape,
        num_classes=int(num_classes),
        class_names=class_names,
        bounds=bounds,
        mean=mean,
        std=std,
        seed=int(seed),
    )
    return spec.backend.make(spec, request)


def make_torch(spec: ArchSpec, request: BuildRequest) -> Classifier:
    """The torch backend's :attr:`Backend.make`: ``spec.builder(input_shape, num_classes,
    **kwargs)`` wrapped in a :class:`~advx.models.adapter.Classifier`."""
    net = spec.builder(request.input_shape, request.num_classes, **request.kwargs)
    if not isinstance(net, nn.Module):
        raise ConfigError(f"builder of {spec.name!r} returned {type(net).__name__}, not nn.Module")
    clf = Classifier(
        net,
        input_shape=request.input_shape,
        num_classes=request.num_classes,
        bounds=request.bounds,
        mean=request.mean,
        std=request.std,
        class_names=request.class_names,
    )
    clf.arch = request.arch
    clf.arch_kwargs = request.kwargs
    return clf
