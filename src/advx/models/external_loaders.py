"""The loaders behind :mod:`advx.models.external`: model specs, :class:`ModelOptions`,
and one loader per kind (TorchScript, ONNX, Python factories, Hugging Face directories).

User code imports them from :mod:`advx.models.external`, the public module; this one sits
below both it and :mod:`advx.models.external_checkpoint` (which stores what these load), so
neither imports the other and :mod:`advx.models.checkpoint` can open imported checkpoints
without an import cycle.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import re
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from advx.errors import ConfigError, InputError
from advx.models.adapter import Classifier, frozen_eval
from advx.targets import LabelBox, ScoreBox, Target

log = logging.getLogger(__name__)

EXTERNAL_KINDS = ("torchscript", "onnx", "huggingface")
"""Checkpoint kinds ``advx import`` writes besides the zoo's ``torch``/``sklearn``."""
SpecKind = Literal["url", "checkpoint", "torchscript", "onnx", "factory", "huggingface"]
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".jit", ".ptc")
TORCHSCRIPT_FILE = "model.ts"
ONNX_FILE = "model.onnx"
HF_WEIGHTS = "model.safetensors"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_FACTORY = re.compile(rf"^(?P<module>.+):(?P<attr>{_IDENT}(?:\.{_IDENT})*)$")
_DOTTED = re.compile(rf"^{_IDENT}(?:\.{_IDENT})*$")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".h5", ".msgpack")

PICKLE_REFUSED = (
    "advx does not unpickle model files (a pickle can run any code). Export TorchScript "
    "instead: `torch.jit.script(model).save('model.pt')` (or `torch.jit.trace(model, "
    "example).save(...)`), or write a factory `mymodels.py:make` that builds the network "
    "and loads the state dict with `torch.load(path, weights_only=True)`, and pass "
    "`mymodels.py:make` as the model"
)


# ----------------------------------------------------------------------------- options
@dataclass(frozen=True)
class ModelOptions:
    """What a user model may not say about itself.

    Attributes:
        input_shape: shape of one example, e.g. ``(3, 224, 224)``; required for a plain
            torch module (TorchScript, factory returning an ``nn.Module``).
        num_classes: number of classes; default: found by one forward pass.
        bounds: valid input domain ``(lo, hi)``; default ``(0, 1)``.
        mean, std: per-channel normalisation advx applies before the model (leave them
            out if the model normalises its inputs itself); one value per channel of
            ``input_shape``, or one for all.
        class_names: one name per class.
        max_len: text models: tokens kept per text (default: the tokenizer's limit, at
            most 512).
    """

    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    bounds: tuple[float, float] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    class_names: tuple[str, ...] | None = None
    max_len: int | None = None

    def __post_init__(self) -> None:
        if self.input_shape is not None and (
            not self.input_shape or any(int(s) < 1 for s in self.input_shape)
        ):
            raise ConfigError(f"--input-shape must be positive sizes, got {self.input_shape}")
        if self.num_classes is not None and self.num_classes < 2:
            raise ConfigError(f"--num-classes must be >= 2, got {self.num_classes}")
        if self.bounds is not None and not self.bounds[0] < self.bounds[1]:
            raise ConfigError(f"--bounds must be lo,hi with lo < hi, got {self.bounds}")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ConfigError(f"--std must be positive, got {self.std}")
        if (
            self.class_names is not None
            and self.num_classes is not None
            and len(self.class_names) != self.num_classes
        ):
            raise ConfigError(
                f"{len(self.class_names)} class names for --num-classes {self.num_classes}"
            )
        if self.input_shape is not None and (self.mean is not None or self.std is not None):
            channels = self.input_shape[0] if len(self.input_shape) == 3 else 1
            for what, stat in (("--mean", self.mean), ("--std", self.std)):
                if stat is not None and len(stat) not in (1, channels):
                    raise ConfigError(
                        f"{what} has {len(stat)} values but --input-shape "
                        f"{','.join(map(str, self.input_shape))} has {channels} channel(s); "
                        "give one value per channel (or one for all)"
                    )

    @property
    def given(self) -> dict[str, Any]:
        """The options that were set (name -> value)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


# ------------------------------------------------------------------------ spec parsing
def spec_kind(spec: str) -> SpecKind | None:
    """Which kind of model ``spec`` names, or None when it names nothing on disk and is
    not a factory (a zoo name, or a typo).

    Raises:
        ConfigError: an existing path of no known kind (the message lists the kinds).
    """
    if spec.startswith(("http://", "https://")):
        return "url"
    path = Path(spec)
    if path.is_dir():
        if (path / "model.json").is_file():
            return "checkpoint"
        if (path / "config.json").is_file():
            return "huggingface"
        raise ConfigError(f"{spec} is a directory without model.json or config.json; {_KINDS}")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            return "onnx"
        if suffix == ".py":
            raise ConfigError(
                f"{spec} is a Python file: name the function that builds the model, "
                f"e.g. {spec}:make"
            )
        if suffix in (".json", ".safetensors"):
            raise ConfigError(
                f"{spec}: pass the directory holding it (an advx checkpoint or a Hugging Face "
                "model directory), not the file"
            )
        return "torchscript"
    m = _FACTORY.match(spec)
    if m and (m.group("module").endswith(".py") or _DOTTED.match(m.group("module"))):
        return "factory"
    return None


_KINDS = (
    "a model is an advx checkpoint directory (model.json), a TorchScript file (.pt, .pth, "
    ".ts), an ONNX file (.onnx), a Python factory (module:function or path/to/file.py:"
    "function), a Hugging Face model directory (config.json), or an http(s):// URL"
)


def describe_missing(spec: str) -> str:
    """The message for a spec that names nothing."""
    return f"no model at {spec!r}: the path does not exist; {_KINDS}"


# ----------------------------------------------------------------------------- torch
def _wrap(net: nn.Module, options: ModelOptions, what: str) -> Classifier:
    """A plain module as a :class:`Classifier` (normalisation and bounds from options)."""
    if options.input_shape is None:
        raise ConfigError(
            f"{what} does not say its input shape; pass --input-shape (e.g. 3,224,224 or "
            "1,28,28; python: ModelOptions(input_shape=...))"
        )
    lo_hi = options.bounds or (0.0, 1.0)
    clf = Classifier(
        net,
        input_shape=options.input_shape,
        num_classes=options.num_classes or 2,  # replaced below when not given
        bounds=lo_hi,
        mean=options.mean,
        std=options.std,
        class_names=options.class_names if options.num_classes else None,
    )
    probe = torch.full((2, *clf.input_shape), float(lo_hi[0]))
    try:
        with frozen_eval(clf), torch.no_grad():
            out = clf(probe.to(clf.device))
    except Exception as e:  # the user's network: any error means "does not fit"
        last = (str(e).strip().splitlines() or [""])[-1]  # TorchScript errors: a traceback
        raise ConfigError(
            f"{what} fails on an input of shape (2, {', '.join(map(str, clf.input_shape))}): "
            f"{type(e).__name__}: {last}; check --input-shape (and --mean/--std)"
        ) from None
    if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ConfigError(
            f"{what} must map (N, *input_shape) to logits (N, num_classes); it returned {shape}"
        )
    k = int(out.shape[1])
    if options.num_classes is not None and k != options.num_classes:
        raise ConfigError(f"--num-classes {options.num_classes}, but {what} outputs {k} logits")
    if k < 2:
        raise ConfigError(f"{what} outputs {k} logit(s); a classifier needs at least 2")
    if options.class_names is not None and len(options.class_names) != k:
        raise ConfigError(f"{len(options.class_names)} class names for {what}'s {k} classes")
    clf.num_classes = k
    clf.class_names = options.class_names or tuple(str(i) for i in range(k))
    return clf


def _refuse_pickle(path: Path) -> None:
    """Raise :class:`InputError` unless ``path`` is a TorchScript archive."""
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e}") from None
    if not is_zip:
        raise InputError(
            f"{path} is not a TorchScript file (it looks like a pickle); {PICKLE_REFUSED}"
        )
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    if not any("/code/" in n for n in names) or not any(n.endswith("constants.pkl") for n in names):
        raise InputError(
            f"{path} was written by torch.save (a pickled state dict or module), not "
            f"torch.jit.save; {PICKLE_REFUSED}"
        )


def load_torchscript(
    path: str | os.PathLike[str], options: ModelOptions | None = None
) -> Classifier:
    """A TorchScript file (``torch.jit.save``) as a :class:`Classifier` (white-box).

    Args:
        path: the file (``.pt``, ``.pth``, ``.ts``...).
        options: ``input_shape`` is required; ``num_classes`` is found by a forward pass.

    Raises:
        InputError: the file is a ``torch.save`` pickle (refused; the message says how to
            export TorchScript) or unreadable.
        ConfigError: no input shape, or the module does not map it to logits.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no TorchScript file at {p}")
    _refuse_pickle(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is frozen, not gone
        try:
            module = torch.jit.load(str(p), map_location="cpu")
        except RuntimeError as e:
            raise InputError(f"{p}: torch.jit.load cannot read it: {e}") from None
    return _wrap(module, options or ModelOptions(), f"TorchScript module {p.name}")


# ------------------------------------------------------------------------------ onnx
def _normalising(box: ScoreBox | LabelBox, options: ModelOptions) -> ScoreBox | LabelBox:
    """``box`` fed ``(x - mean) / std`` (the graph expects normalised inputs)."""
    if options.mean is None and options.std is None:
        return box
    c = box.input_shape[0] if len(box.input_shape) == 3 else 1
    view = (1, c, 1, 1) if len(box.input_shape) == 3 else (1,)
    for what, stat in (("--mean", options.mean), ("--std", options.std)):
        if stat is not None and len(stat) not in (1, c):
            raise ConfigError(
                f"{what} has {len(stat)} values but the model's input_shape {box.input_shape} "
                f"has {c} channel(s)"
            )
    mean = torch.tensor(list(options.mean or [0.0])).expand(c).reshape(view)
    std = torch.tensor(list(options.std or [1.0])).expand(c).reshape(view)
    inner = box.fn
    meta = {
        "input_shape": box.input_shape,
        "num_classes": box.num_classes,
        "bounds": box.bounds,
        "class_names": box.class_names,
        "name": box.name,
    }

    def fn(x: Tensor) -> Tensor:
        return inner((x - mean.to(x)) / std.to(x))

    return ScoreBox(fn, **meta) if isinstance(box, ScoreBox) else LabelBox(fn, **meta)


def load_onnx(
    path: str | os.PathLike[str],
    options: ModelOptions | None = None,
    *,
    outputs: str = "scores",
    output_kind: str | None = None,
    device: torch.device | None = None,
) -> ScoreBox | LabelBox:
    """An ONNX file run by ONNX Runtime: a :class:`~advx.targets.ScoreBox` (or a
    :class:`~advx.targets.LabelBox` with ``outputs="labels"``). ONNX Runtime gives no
    input gradients, so white-box attacks refuse it (:class:`~advx.errors.AccessError`);
    use score- or decision-based attacks, or a TorchScript/factory version of the model.

    Args:
        path: the ``.onnx`` file.
        options: shape, classes, bounds and names when the file's metadata (written by
            :func:`advx.adapters.export_onnx`) and the graph's static shapes do not give
            them; ``mean``/``std`` normalise inputs before the graph.
        outputs: ``"scores"`` or ``"labels"``.
        output_kind: ``"logits"`` or ``"probabilities"`` (default: the file's metadata,
            else logits).
        device: CUDA uses ONNX Runtime's CUDA provider when installed (else CPU, logged).
    """
    from advx.adapters import onnx_target

    options = options or ModelOptions()
    providers = ["CPUExecutionProvider"]
    if device is not None and device.type == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        else:
            log.info("onnxruntime has no CUDA provider here; %s runs on the CPU", path)
    box = onnx_target(
        str(path),
        outputs=outputs,
        output_kind=output_kind,
        input_shape=options.input_shape,
        num_classes=options.num_classes,
        bounds=options.bounds,
        class_names=options.class_names,
        providers=providers,
        name=Path(path).stem,
    )
    return _normalising(box, options)


def onnx_access_hint(target: Target) -> str:
    """The extra sentence an :class:`AccessError` gets for an ONNX model."""
    return (
        f"{target.name} runs in ONNX Runtime, which answers scores and labels only (no input "
        "gradients): use a score-based or decision-based attack (square, simba, nes, "
        "hopskipjump, rays; `advx attack --list`), or give advx a TorchScript file or a "
        "module:factory of the same model for white-box attacks"
    )


# --------------------------------------------------------------------------- factory
def _import_module(ref: str) -> Any:
    if ref.endswith(".py"):
        file = Path(ref)
        if not file.is_file():
            raise ConfigError(f"factory module {ref} does not exist")
        name = f"advx_user_{hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise ConfigError(f"cannot import {ref} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            del sys.modules[name]
            raise
        return module
    cwd = os.getcwd()
    if cwd not in sys.path:  # like `python -m` and uvicorn: modules of the working directory
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(ref)
    except ModuleNotFoundError as e:
        if e.name and ref.startswith(e.name):
            raise ConfigError(
                f"cannot import module {ref!r} ({e}); run from the directory that holds it, "
                "set PYTHONPATH, or give the file: path/to/file.py:function"
            ) from None
        raise


def load_factory(spec: str, options: ModelOptions | None = None) -> Any:
    """Call the factory named by ``spec`` (``module:function`` or ``file.py:function``;
    ``function`` may be a dotted attribute path) with no arguments.

    The factory is the user's own code, named explicitly; it is imported with
    :mod:`importlib` (a module of the working directory is found too), never evaluated
    from a string.

    Returns:
        a :class:`Classifier` (an ``nn.Module`` is wrapped with ``options``; a Classifier
        is kept, and options may not contradict it), an advx
        :class:`~advx.targets.Target` as is, or a text model (``predict_proba``) as is.

    Raises:
        ConfigError: malformed spec, missing module or function, a factory that raises,
            or a result advx cannot use.
    """
    options = options or ModelOptions()
    m = _FACTORY.match(spec)
    if not m:
        raise ConfigError(
            f"{spec!r} is not a factory spec; write module:function or path/to/file.py:function"
        )
    module_ref, attr = m.group("module"), m.group("attr")
    if not (module_ref.endswith(".py") or _DOTTED.match(module_ref)):
        raise ConfigError(f"{module_ref!r} is neither a module name (pkg.mod) nor a .py file")
    try:
        module = _import_module(module_ref)
    except ConfigError:
        raise
    except Exception as e:  # the user's module failed while importing
        raise ConfigError(f"importing {module_ref} failed: {type(e).__name__}: {e}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{module_ref} has no attribute {attr!r} (the factory to call)")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{spec}: {attr} is a {type(obj).__name__}, not a function to call")
    try:
        made = obj()
    except Exception as e:  # the user's factory failed
        raise ConfigError(f"{spec}() raised {type(e).__name__}: {e}") from None
    return _from_factory(made, options, spec)


def _from_factory(made: Any, options: ModelOptions, spec: str) -> Any:
    if isinstance(made, Classifier):
        given = options.given
        carried: dict[str, Any] = {
            "input_shape": made.input_shape,
            "num_classes": made.num_classes,
            "bounds": made.bounds,
            "class_names": made.class_names,
        }
        clash = [
            k for k, v in given.items() if k in carried and tuple(v) != tuple(carried[k])
        ]  # fmt: skip
        if "mean" in given or "std" in given:
            clash.append("mean/std")
        if clash:
            raise ConfigError(
                f"{spec} returns a Classifier that already carries "
                f"{', '.join(clash)}; drop those options (or return a plain nn.Module)"
            )
        made.eval()
        return made
    if isinstance(made, nn.Module):
        made.eval()
        return _wrap(made, options, f"the module returned by {spec}")
    if isinstance(made, Target) or callable(getattr(made, "predict_proba", None)):
        return made
    raise ConfigError(
        f"{spec} returned a {type(made).__name__}; a factory must return a torch nn.Module, "
        "an advx Classifier or Target, or (text) an object with predict_proba"
    )


# ----------------------------------------------------------------------- hugging face
def load_huggingface(
    path: str | os.PathLike[str],
    options: ModelOptions | None = None,
    *,
    device: torch.device | None = None,
) -> Any:
    """A Hugging Face sequence-classification directory as an advx text classifier
    (:class:`advx.text.huggingface.HFTextClassifier`): local files only, safetensors
    weights only, no remote code."""
    from advx.text.huggingface import HFTextClassifier

    options = options or ModelOptions()
    return HFTextClassifier.from_directory(
        path, class_names=options.class_names, max_len=options.max_len, device=device
    )
