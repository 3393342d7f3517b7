"""Checkpoints: a directory holding the weights and a ``model.json`` describing them.

Layout::

    models/fmnist-cnn/
      model.safetensors   torch weights (safetensors: tensors only, no code)
      model.skops         ... or a scikit-learn estimator (skops: no pickle)
      model.json          architecture and options, data set, class names, input shape,
                          bounds, normalisation, training settings, seed, test accuracy,
                          advx version, and the sha256 and size of every other file

:func:`save` writes into a temporary directory next to the destination and moves it into
place (:func:`advx.io.atomic_dir`), so an interrupted run leaves either the previous
checkpoint or the new one, never a half-written one. :func:`load` refuses anything it
cannot vouch for with :class:`~advx.errors.CheckpointError`: missing files, malformed
JSON, a hash or size mismatch (truncated or tampered weights), an unknown architecture,
weights whose names or shapes differ from what the architecture builds, or a skops file
containing types that its architecture does not declare as trusted.

Example:
    >>> from advx.models import build, save, load
    >>> clf = build("linear", input_shape=(1, 8, 8), num_classes=10)
    >>> path = save(clf, tmp / "lin", meta={"dataset": "digits"})  # doctest: +SKIP
    >>> load(path)(torch.zeros(1, 1, 8, 8)).shape                   # doctest: +SKIP
    torch.Size([1, 10])
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from advx.errors import CheckpointError, ConfigError, InputError
from advx.io import atomic_dir, atomic_write_text, file_mode, fsync_file
from advx.jsonio import dumps, finite
from advx.models.adapter import Classifier
from advx.models.registry import (
    ARCHS,
    ArchSpec,
    Backend,
    backends,
    get_backend,
    jsonable,
    make_torch,
    register_backend,
)

FORMAT = "advx-checkpoint"
FORMAT_VERSION = 1
INFO_FILE = "model.json"
TORCH_FILE = "model.safetensors"
SKLEARN_FILE = "model.skops"
WEIGHTS = {
    "torch": TORCH_FILE,
    "sklearn": SKLEARN_FILE,
    # user models imported by `advx import` (advx.models.external)
    "torchscript": "model.ts",
    "onnx": "model.onnx",
    "huggingface": "model.safetensors",
}
"""The file holding the model, by ``kind`` of checkpoint."""

RESERVED_KEYS = (
    "format",
    "format_version",
    "kind",
    "arch",
    "arch_kwargs",
    "input_shape",
    "num_classes",
    "class_names",
    "bounds",
    "normalisation",
    "advx_version",
    "files",
    "created",
    "info_sha256",
)
"""Keys of ``model.json`` that :func:`save` derives from the model; ``meta`` may not set
them. Conventional ``meta`` keys: ``dataset``, ``training`` (a dict of settings), ``seed``,
``test_accuracy``."""

INFO_HASH_KEY = "info_sha256"
"""Key of ``model.json`` holding the sha256 of the rest of it (:func:`info_digest`), so
the description of the weights is covered by a hash like the weights are."""
MAX_INFO_BYTES = 16 * 1024 * 1024
"""Largest ``model.json`` read."""
MAX_INFO_DEPTH = 32
"""Deepest nesting of arrays and objects accepted in ``model.json``."""
MAX_BOUND = 1e6
"""Largest magnitude of an input bound (``model.json`` ``bounds``)."""
MAX_ARCH_INT = 10_000_000
"""Largest integer accepted anywhere in ``arch_kwargs`` (a layer width, a vocabulary)."""


# ------------------------------------------------------------------------------- save
def save(
    model: Any, path: str | os.PathLike[str], *, meta: Mapping[str, Any] | None = None
) -> Path:
    """Write ``model`` as a checkpoint directory at ``path``, atomically.

    Args:
        model: a :class:`~advx.models.adapter.Classifier` or a
            :class:`~advx.models.classic.SklearnClassifier` (fitted) built by
            :func:`advx.models.build` (it must know its ``arch``).
        path: the checkpoint directory; created, or replaced if it already holds a
            checkpoint. A non-empty directory that is not a checkpoint is never replaced.
        meta: extra JSON values stored in ``model.json`` (``dataset``, ``training``,
            ``seed``, ``test_accuracy``, ...); may not use :data:`RESERVED_KEYS`.

    Returns:
        The checkpoint directory.

    Raises:
        InputError: the model has no registered ``arch``, is unfitted, or ``meta`` is
            not JSON or sets a reserved key.
        CheckpointError: ``path`` exists and is something other than a checkpoint.
    """
    dest = Path(path)
    extra = jsonable(meta or {}, what="checkpoint meta")
    clash = sorted(set(extra) & set(RESERVED_KEYS))
    if clash:
        raise InputError(f"meta may not set {', '.join(clash)}: save() derives them from the model")
    arch = getattr(model, "arch", None)
    if arch is None or arch not in ARCHS:
        raise InputError(
            f"cannot save a {type(model).__name__} without a registered architecture "
            "(build it with advx.models.build)"
        )
    spec = ARCHS[arch]
    kind = next((b.name for b in backends().values() if isinstance(model, b.model_type)), None)
    if kind is None:
        raise InputError(f"cannot save a {type(model).__name__}; expected a Classifier")
    if getattr(model, "fitted", True) is False:
        raise InputError(f"{arch} is not fitted; there is nothing to save")
    if spec.kind != kind:
        raise InputError(f"model is a {kind} model but {arch!r} is registered as {spec.kind}")
    backend = get_backend(kind)
    _check_destination(dest)

    with atomic_dir(dest) as tmp:  # staged next to dest, moved into place when complete
        backend.write(model, tmp / backend.weights_file)
        if spec.save_extra is not None:
            spec.save_extra(model, tmp)
        info: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "arch": arch,
            "arch_kwargs": jsonable(model.arch_kwargs, what=arch),
            "input_shape": list(model.input_shape),
            "num_classes": int(model.num_classes),
            "class_names": list(model.class_names),
            "bounds": list(model.bounds),
            "normalisation": _normalisation(model) if isinstance(model, Classifier) else None,
            **extra,
            "advx_version": _version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": {
                f.name: {"sha256": _sha256(f), "bytes": f.stat().st_size}
                for f in sorted(tmp.iterdir())
                if f.is_file() and f.name != INFO_FILE
            },
        }
        info = finite(info)  # strict JSON: NaN/inf meta values are written as null
        info[INFO_HASH_KEY] = info_digest(info)
        atomic_write_text(tmp / INFO_FILE, dumps(info, indent=2) + "\n")
    return dest


def _check_destination(dest: Path) -> None:
    if not dest.exists():
        return
    if not dest.is_dir():
        raise CheckpointError(f"{dest} exists and is a file; choose another output directory")
    if any(dest.iterdir()) and not (dest / INFO_FILE).is_file():
        raise CheckpointError(
            f"{dest} is a non-empty directory without {INFO_FILE}; refusing to replace it "
            "(choose another output directory)"
        )


def _write_torch(model: Classifier, file: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(file), metadata={"format": "pt"})
    os.chmod(file, file_mode())  # safetensors creates 0600; a checkpoint follows the umask
    fsync_file(file)


def _normalisation(model: Classifier) -> dict[str, list[float]] | None:
    if not model.normalised:
        return None
    return {"mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist()}


def _sha256(file: Path) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def info_digest(info: Mapping[str, Any]) -> str:
    """sha256 of ``model.json``'s content without :data:`INFO_HASH_KEY`, over a canonical
    serialisation (sorted keys, no spaces), so re-indenting the file keeps it valid."""
    body = {k: v for k, v in info.items() if k != INFO_HASH_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _nesting(text: str) -> int:
    """Deepest nesting of arrays/objects in JSON ``text`` (strings skipped); computed
    without recursion, so a hostile file cannot exhaust the stack."""
    depth = deepest = 0
    for ch in re.sub(r"[^\[\]{}]", "", _JSON_STRING.sub("", text)):
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def _version() -> str:
    from advx import __version__

    return __version__


# ------------------------------------------------------------------------------- read
# kind -> opener of the checkpoints `advx import` writes (TorchScript, ONNX, Hugging Face);
# advx.models.external_checkpoint registers them when advx.models is imported, so this
# module never imports it (that module builds on this one)
_IMPORTED: dict[str, Callable[[Path, dict[str, Any]], Any]] = {}


def register_imported_kind(kind: str, opener: Callable[[Path, dict[str, Any]], Any]) -> None:
    """Let :func:`load` open checkpoints of ``kind`` with ``opener(directory, info)``
    (called after every file's hash is verified)."""
    _IMPORTED[kind] = opener


def read_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed and validated ``model.json`` of the checkpoint at ``path``.

    Does not read the weights (use :func:`load` for that; it also checks their hashes).

    Raises:
        CheckpointError: no such directory, no ``model.json``, malformed JSON, or fields
            missing or of the wrong type; the message names the file and the field.
    """
    d = Path(path)
    if not d.exists():
        raise CheckpointError(f"no checkpoint at {d}: the path does not exist")
    if not d.is_dir():
        raise CheckpointError(f"{d} is a file; a checkpoint is a directory with {INFO_FILE}")
    f = d / INFO_FILE
    if not f.is_file():
        raise CheckpointError(
            f"{d} has no {INFO_FILE}; it is not an advx checkpoint (write one with `advx train`)"
        )
    size = f.stat().st_size
    if size > MAX_INFO_BYTES:
        raise CheckpointError(
            f"{f} has {size} bytes, over the limit of {MAX_INFO_BYTES}; it is not a model.json "
            "advx wrote"
        )
    try:
        text = f.read_text(encoding="utf-8")
        if _nesting(text) > MAX_INFO_DEPTH:
            raise ValueError(f"arrays/objects nested deeper than {MAX_INFO_DEPTH} levels")
        info = json.loads(text, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{f} is not valid JSON ({e}); the file is corrupt") from None
    if not isinstance(info, dict):
        raise CheckpointError(f"{f} must hold a JSON object, got {type(info).__name__}")
    recorded = info.get(INFO_HASH_KEY)
    if recorded is not None and recorded != info_digest(info):
        raise CheckpointError(
            f"{f} does not match the {INFO_HASH_KEY} recorded in it: the file was modified "
            "or corrupted; retrain or restore it"
        )
    _validate_info(info, f)
    return info


def _validate_info(info: dict[str, Any], f: Path) -> None:
    def bad(field: str, why: str) -> CheckpointError:
        return CheckpointError(f"{f}: field {field!r} {why}")

    if info.get("format") != FORMAT:
        raise bad("format", f"must be {FORMAT!r}; this is not an advx checkpoint")
    version = info.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad("format_version", "must be a positive integer")
    if version > FORMAT_VERSION:
        raise bad(
            "format_version",
            f"is {version}, newer than this advx supports ({FORMAT_VERSION}); upgrade advx",
        )
    for key in ("kind", "arch", "arch_kwargs", "input_shape", "num_classes", "class_names"):
        if key not in info:
            raise bad(key, "is missing")
    if not isinstance(info["kind"], str) or info["kind"] not in WEIGHTS:
        raise bad("kind", f"must be one of {', '.join(map(repr, WEIGHTS))}")
    if not isinstance(info["arch"], str):
        raise bad("arch", "must be a string")
    if not isinstance(info["arch_kwargs"], dict):
        raise bad("arch_kwargs", "must be an object")
    shape = info["input_shape"]
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
    ):
        raise bad("input_shape", f"must be a list of positive integers, got {shape!r}")
    k = info["num_classes"]
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        raise bad("num_classes", f"must be an integer >= 2, got {k!r}")
    names = info["class_names"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad("class_names", "must be a list of strings")
    if len(names) != k:
        raise bad("class_names", f"has {len(names)} names for {k} classes")
    if any(s > MAX_ARCH_INT for s in shape) or math.prod(shape) > MAX_ARCH_INT:
        raise bad("input_shape", f"describes more than {MAX_ARCH_INT} values per example")
    if k > MAX_ARCH_INT:
        raise bad("num_classes", f"is over {MAX_ARCH_INT}")
    big = _largest_int(info["arch_kwargs"])
    if big > MAX_ARCH_INT:
        raise bad(
            "arch_kwargs",
            f"holds {big}, over the limit of {MAX_ARCH_INT} for any size (refused before "
            "building the model)",
        )
    bounds = info.get("bounds", [0.0, 1.0])
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
        or not all(math.isfinite(b) and abs(b) <= MAX_BOUND for b in bounds)
        or not bounds[0] < bounds[1]
    ):
        raise bad(
            "bounds",
            f"must be [lo, hi] with lo < hi, finite and within +-{MAX_BOUND:g}, got {bounds!r}",
        )
    norm = info.get("normalisation")
    if norm is not None:
        if not isinstance(norm, dict) or set(norm) != {"mean", "std"}:
            raise bad("normalisation", "must be null or an object with mean and std")
        for key in ("mean", "std"):
            vals = norm[key]
            if not isinstance(vals, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in vals
            ):
                raise bad("normalisation", f"{key} must be a list of finite numbers")
        if any(v <= 0 for v in norm["std"]):
            raise bad("normalisation", "std must be positive")
    files = info.get("files")
    if not isinstance(files, dict) or not files:
        raise bad("files", "must list the checkpoint's files with their sha256")
    for name, entry in files.items():
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name:
            raise bad("files", f"holds an invalid file name {name!r}")
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("sha256"), str)
            or len(entry["sha256"]) != 64
            or not isinstance(entry.get("bytes"), int)
            or isinstance(entry.get("bytes"), bool)
            or entry["bytes"] < 0
        ):
            raise bad("files", f"entry for {name!r} needs sha256 (64 hex digits) and bytes")
    weights = WEIGHTS[info["kind"]]
    if weights not in files:
        raise bad("files", f"does not list {weights}")


def _largest_int(obj: Any) -> int:
    """Largest integer (in magnitude) anywhere in a JSON value (depth already bounded)."""
    if isinstance(obj, bool):
        return 0
    if isinstance(obj, int):
        return abs(obj)
    if isinstance(obj, float):
        return int(min(abs(obj), 1e300)) if math.isfinite(obj) and obj == int(obj) else 0
    if isinstance(obj, dict):
        return max((_largest_int(v) for v in obj.values()), default=0)
    if isinstance(obj, list):
        return max((_largest_int(v) for v in obj), default=0)
    return 0


def verify(path: str | os.PathLike[str], info: Mapping[str, Any] | None = None) -> None:
    """Check every file listed in ``model.json`` exists with the recorded size and sha256.

    Raises:
        CheckpointError: a file is missing, truncated, extended or altered.
    """
    d = Path(path)
    info = read_info(d) if info is None else info
    for name, entry in info["files"].items():
        f = d / name
        if not f.is_file():
            raise CheckpointError(f"{d}: {name} is missing; the checkpoint is incomplete")
        size = f.stat().st_size
        if size != entry["bytes"]:
            raise CheckpointError(
                f"{f} has {size} bytes but model.json records {entry['bytes']}: the file was "
                "truncated or modified; retrain or restore it"
            )
        if _sha256(f) != entry["sha256"]:
            raise CheckpointError(
                f"{f} does not match the sha256 recorded in model.json: the file was "
                "modified or corrupted; retrain or restore it"
            )


# ------------------------------------------------------------------------------- load
def load(path: str | os.PathLike[str]) -> Any:
    """Rebuild the model saved at ``path`` (eval mode, on the CPU).

    Args:
        path: a checkpoint directory written by :func:`save` (or ``advx train``).

    Returns:
        A :class:`~advx.models.adapter.Classifier` for torch architectures, a
        :class:`~advx.models.classic.SklearnClassifier` for scikit-learn ones.

    Raises:
        CheckpointError: anything is missing, malformed, tampered with or inconsistent
            (see the module docstring); the message names the file and what to do.

    Example:
        >>> clf = load("models/fmnist-cnn")  # doctest: +SKIP
        >>> clf(torch.zeros(1, 1, 28, 28)).argmax(1)  # doctest: +SKIP
    """
    d = Path(path)
    info = read_info(d)
    verify(d, info)
    arch = info["arch"]
    backend = backends().get(info["kind"])
    if backend is None:  # a user model imported by `advx import`
        opener = _IMPORTED.get(info["kind"])
        if opener is None:
            raise CheckpointError(
                f"{d}: kind {info['kind']!r} is opened by advx.models.external_checkpoint, "
                "which is not loaded; import advx.models (it loads it) and try again"
            )
        return opener(d, info)
    spec = ARCHS.get(arch)
    if spec is None:
        raise CheckpointError(
            f"{d}: unknown architecture {arch!r}: not registered in this process (known: "
            f"{', '.join(sorted(ARCHS))}). If it is your own architecture, import the module "
            "that calls advx.models.register(ArchSpec(name=" + repr(arch) + ", ...)) before "
            "loading (python), or give the model as module:factory (command line); if it is "
            "a built-in of a newer advx, upgrade advx"
        )
    if spec.kind != info["kind"]:
        raise CheckpointError(
            f"{d}: {arch!r} is a {spec.kind} model, model.json says {info['kind']}"
        )
    kwargs = dict(info["arch_kwargs"])
    if spec.load_extra is not None:
        kwargs.update(spec.load_extra(d, info))
    return backend.read(d, info, spec, kwargs)


def _build(d: Path, info: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    from advx.models.registry import build

    norm = info.get("normalisation") or {}
    try:
        return build(
            info["arch"],
            input_shape=info["input_shape"],
            num_classes=info["num_classes"],
            class_names=info["class_names"],
            bounds=(float(info.get("bounds", [0, 1])[0]), float(info.get("bounds", [0, 1])[1])),
            mean=norm.get("mean"),
            std=norm.get("std"),
            seed=int(info["seed"]) if isinstance(info.get("seed"), int) else 0,
            **kwargs,
        )
    except (
        ConfigError, InputError, TypeError, ValueError, RuntimeError, OverflowError,
        MemoryError, RecursionError, KeyError, IndexError, AttributeError,
    ) as e:  # fmt: skip
        raise CheckpointError(
            f"{d}: cannot rebuild {info['arch']!r} from {INFO_FILE}: {e}"
        ) from None


def _check_weight_size(d: Path, info: dict[str, Any], kwargs: dict[str, Any]) -> None:
    """Build the architecture on the meta device (no memory) and refuse it when its
    weights need more bytes than the (hash-checked) weights file holds: ``arch_kwargs``
    that would allocate gigabytes are caught before anything is allocated."""
    with torch.device("meta"), torch.random.fork_rng(devices=[]):
        model = _build(d, info, kwargs)
    need = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    have = int(info["files"][TORCH_FILE]["bytes"])
    if need > have:
        raise CheckpointError(
            f"{d}: {info['arch']!r} with the arch_kwargs of {INFO_FILE} needs {need} bytes of "
            f"weights, but {TORCH_FILE} holds {have}; {INFO_FILE} does not describe these "
            "weights"
        )


def _load_torch(
    d: Path, info: dict[str, Any], spec: ArchSpec, kwargs: dict[str, Any]
) -> Classifier:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    with torch.random.fork_rng(devices=[]):  # building initialises weights; leave no trace
        model = _build(d, info, kwargs)
    f = d / TORCH_FILE
    try:
        state = load_file(str(f))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{f}: not a readable safetensors file ({e})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{f}: weights do not match architecture {spec.name!r} with input_shape "
            f"{info['input_shape']}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    wrong = [
        f"{k}: file {tuple(state[k].shape)} {state[k].dtype}, model {tuple(v.shape)} {v.dtype}"
        for k, v in expected.items()
        if state[k].shape != v.shape or state[k].dtype != v.dtype
    ]
    if wrong:
        raise CheckpointError(
            f"{f}: weight shapes do not match architecture {spec.name!r} with input_shape "
            f"{info['input_shape']} and {info['num_classes']} classes: " + "; ".join(wrong[:3])
        )
    model.load_state_dict(state, strict=True)
    model.eval()
    return model  # type: ignore[no-any-return]


def _read_torch(
    d: Path, info: dict[str, Any], spec: ArchSpec, kwargs: dict[str, Any]
) -> Classifier:
    _check_weight_size(d, info, kwargs)
    return _load_torch(d, info, spec, kwargs)


def _write_torch_state(model: Any, file: Path) -> None:
    _write_torch(model, file)  # looked up at call time: tests replace _write_torch


TORCH = register_backend(
    Backend(
        name="torch",
        model_type=Classifier,
        weights_file=TORCH_FILE,
        make=make_torch,
        write=_write_torch_state,
        read=_read_torch,
    )
)
"""The torch backend: :class:`~advx.models.adapter.Classifier` models, safetensors weights,
trained by :func:`advx.training.fit`."""
