"""Bring your own model: TorchScript files, ONNX files, Python factories and Hugging Face
text classifiers, opened as advx models, and imported into advx checkpoints.

A *model spec* is what a user types where a model is named (``advx attack SPEC``...):

====================================  ===============================================
``models/cnn``                        an advx checkpoint directory (``model.json``)
``net.pt`` / ``.pth`` / ``.ts``       a TorchScript file (``torch.jit.save``) -> white-box
``net.onnx``                          an ONNX file (ONNX Runtime) -> scores and labels only
``mypkg.models:make`` /               a Python factory: ``make()`` returns an ``nn.Module``,
``path/to/file.py:make``              an advx :class:`~advx.models.adapter.Classifier`,
                                      or an advx :class:`~advx.targets.Target`
``hf-dir/``                           a Hugging Face sequence-classification directory
                                      (``config.json`` + safetensors weights + tokenizer)
                                      -> a text classifier for ``advx text attack``
====================================  ===============================================

What the object does not carry is given by :class:`ModelOptions` (CLI: ``--input-shape``,
``--num-classes``, ``--bounds``, ``--mean/--std``, ``--class-names``). The number of
classes of a torch module is found by one forward pass when not given.

Nothing here unpickles: TorchScript is read by ``torch.jit.load`` (a ``torch.save``
pickle is refused with the way out), Hugging Face weights must be safetensors, and a
factory is code the user named explicitly (imported with :mod:`importlib`, never
``eval``). :func:`import_model` turns any of them into an advx checkpoint; see its
docstring for what each kind's checkpoint holds.

Example:
    >>> opts = ModelOptions(input_shape=(1, 8, 8))
    >>> clf = open_model("digits_net.pt", opts)         # doctest: +SKIP
    >>> clf.num_classes                                 # doctest: +SKIP
    10
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advx.errors import AccessError, CheckpointError, ConfigError
from advx.models.external_checkpoint import import_model, load_checkpoint
from advx.models.external_loaders import (
    _FACTORY,
    EXTERNAL_KINDS,
    ModelOptions,
    describe_missing,
    load_factory,
    load_huggingface,
    load_onnx,
    load_torchscript,
    onnx_access_hint,
    spec_kind,
)
from advx.targets import Access, Target

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------- dispatcher
def open_model(
    spec: str,
    options: ModelOptions | None = None,
    *,
    device: torch.device | None = None,
    outputs: str = "scores",
) -> Any:
    """Open any local model spec (see the module docstring) on ``device``.

    Returns:
        checkpoint: what :func:`advx.models.load` gives; TorchScript and factories: a
        :class:`Classifier` (or the factory's Target / text model); ONNX: a ScoreBox or
        LabelBox (``outputs``); Hugging Face: an ``HFTextClassifier``. Torch modules are
        moved to ``device`` (default CPU).

    Raises:
        ConfigError / InputError / CheckpointError: with what is wrong and what to do.
    """
    options = options or ModelOptions()
    kind = spec_kind(spec)
    if kind is None:
        raise CheckpointError(describe_missing(spec))
    if kind == "url":
        raise ConfigError(f"{spec} is a URL; open it with advx.adapters.HttpTarget")
    model: Any
    if kind == "checkpoint":
        from advx.models.checkpoint import load

        unused = sorted(set(options.given) - {"max_len"})
        if unused:
            log.info("%s is a checkpoint; it carries its own %s", spec, ", ".join(unused))
        model = load(spec)
    elif kind == "torchscript":
        model = load_torchscript(spec, options)
    elif kind == "onnx":
        return load_onnx(spec, options, outputs=outputs, device=device)
    elif kind == "factory":
        model = load_factory(spec, options)
    else:
        return load_huggingface(spec, options, device=device)
    return to_device(model, device)


def to_device(model: Any, device: torch.device | None) -> Any:
    """``model`` (a torch module, or a target or text model holding one) on ``device``."""
    if device is None:
        return model
    if isinstance(model, nn.Module):
        return model.to(device)
    mover = getattr(model, "to_device", None)  # HFTextClassifier
    if callable(mover):
        mover(device)
        return model
    for holder in (model, getattr(model, "white", None)):  # WhiteBox, TorchScoreBox...
        for attr in ("model", "clf"):
            inner = getattr(holder, attr, None)
            if isinstance(inner, nn.Module):
                inner.to(device)
                return model
    return model


def require_access(target: Target, need: Access, *, what: str, spec: str) -> None:
    """Raise :class:`AccessError` when ``target`` gives less than ``need`` (``what`` is
    the attack or task asking); an ONNX model's message says it answers scores and labels."""
    if target.access >= need:
        return
    msg = f"{what} needs {need.label}; {spec} gives {target.access.label}"
    if str(spec).lower().endswith(".onnx") or _is_onnx_checkpoint(spec):
        msg += "; " + onnx_access_hint(target)
    else:
        msg += "; pick another attack (`advx attack --list` shows each one's access)"
    raise AccessError(msg)


def _is_onnx_checkpoint(spec: str) -> bool:
    f = Path(spec) / "model.json"
    if not f.is_file():
        return False
    try:
        return bool(json.loads(f.read_text(encoding="utf-8")).get("kind") == "onnx")
    except (OSError, ValueError):
        return False


def default_name(spec: str) -> str:
    """A short name for a model spec: a directory's name, a file's stem, a factory's
    function name (shown in reports, used as the model name of ``advx serve``)."""
    m = _FACTORY.match(spec)
    path = Path(spec)
    if path.is_dir():
        return path.resolve().name
    if path.is_file():
        return path.stem
    if m:
        return m.group("attr").rsplit(".", 1)[-1]
    return spec.rstrip("/").rsplit("/", 1)[-1] or spec


__all__ = [
    "EXTERNAL_KINDS",
    "ModelOptions",
    "default_name",
    "import_model",
    "load_checkpoint",
    "load_factory",
    "load_huggingface",
    "load_onnx",
    "load_torchscript",
    "open_model",
    "require_access",
    "spec_kind",
]
