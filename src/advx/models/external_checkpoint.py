"""``advx import``: user models (TorchScript, ONNX, factories, Hugging Face directories)
written as advx checkpoints, and read back by :func:`advx.models.load`.

See :func:`import_model` for what each kind's checkpoint holds. The checkpoint layout is
:mod:`advx.models.checkpoint`'s (``model.json`` + files, each with its SHA-256); only
``kind`` differs (:data:`~advx.models.external.EXTERNAL_KINDS`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import advx.models.checkpoint as ck
from advx.errors import CheckpointError, ConfigError, InputError
from advx.io import atomic_dir, atomic_write_text, fsync_file
from advx.jsonio import dumps
from advx.models.adapter import Classifier, frozen_eval
from advx.models.external_loaders import (
    _PICKLE_SUFFIXES,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    ModelOptions,
    describe_missing,
    load_factory,
    load_onnx,
    load_torchscript,
    spec_kind,
)

log = logging.getLogger(__name__)

__all__ = ["import_model", "load_checkpoint"]


def import_model(
    spec: str,
    out: str | os.PathLike[str],
    options: ModelOptions | None = None,
    *,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Turn a user model into an advx checkpoint directory that :func:`advx.models.load`
    (and every ``advx`` command) opens without options.

    What the checkpoint holds, by kind (``model.json`` always records input shape,
    classes, class names, bounds, normalisation, the source and its SHA-256):

    * a factory returning a zoo :class:`Classifier` (built by :func:`advx.models.build`,
      so its ``arch`` is registered): an ordinary checkpoint, safetensors weights.
    * TorchScript, or a factory returning any other ``nn.Module``: ``model.ts``, the
      TorchScript module (a factory's module is scripted, or traced when scripting fails;
      the import checks the copy's logits equal the original's). Loading reads it with
      ``torch.jit.load``; ``kind`` is ``"torchscript"``.
    * ONNX: ``model.onnx`` unchanged (``kind`` ``"onnx"``; scores and labels only).
    * Hugging Face: the directory's configuration, tokenizer and safetensors weights,
      flat beside ``model.json`` (the checkpoint is itself a Hugging Face directory;
      ``kind`` ``"huggingface"``). Pickled weights (``pytorch_model.bin``) are refused.

    Every file is hashed in ``model.json`` and checked at load, as for any checkpoint.

    Args:
        spec: a TorchScript or ONNX file, a factory, or a Hugging Face directory.
        out: the checkpoint directory to write (atomically; an existing checkpoint there
            is replaced).
        options: what the model does not carry (see :class:`ModelOptions`).
        meta: extra JSON for ``model.json`` (e.g. ``{"dataset": "digits"}``, so commands
            find evaluation data without ``--data``).

    Returns:
        The checkpoint directory.
    """

    options = options or ModelOptions()
    extra = dict(meta or {})
    kind = spec_kind(spec)
    if kind is None:
        raise CheckpointError(describe_missing(spec))
    if kind in ("url", "checkpoint"):
        raise ConfigError(f"{spec} is already {'served' if kind == 'url' else 'a checkpoint'}")
    source: dict[str, Any] = {"spec": spec, "kind": kind}
    if kind == "factory":
        made = load_factory(spec, options)
        if isinstance(made, Classifier) and made.arch is not None:
            return ck.save(made, out, meta={**extra, "source": source})
        if not isinstance(made, Classifier):
            raise ConfigError(
                f"{spec} returns a {type(made).__name__}; advx import stores torch models "
                "(nn.Module or Classifier)"
            )
        return _save_torchscript(made, None, out, extra, source)
    if kind == "torchscript":
        clf = load_torchscript(spec, options)
        source["sha256"] = ck._sha256(Path(spec))
        return _save_torchscript(clf, Path(spec), out, extra, source)
    if kind == "onnx":
        box = load_onnx(spec, options)
        source["sha256"] = ck._sha256(Path(spec))
        files = {ONNX_FILE: Path(spec)}
        kwargs = {"output_kind": _onnx_output_kind(Path(spec))}
        norm = (
            {"mean": list(options.mean or [0.0]), "std": list(options.std or [1.0])}
            if options.mean is not None or options.std is not None
            else None
        )
        return _write(out, "onnx", box, kwargs, norm, files, extra, source)
    return _import_huggingface(Path(spec), out, options, extra, source)


def _onnx_output_kind(path: Path) -> str:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    kind = session.get_modelmeta().custom_metadata_map.get("advx.output_kind", "logits")
    return str(kind)


def _script(clf: Classifier) -> tuple[torch.jit.ScriptModule, str]:
    """The classifier's network as TorchScript: scripted, else traced at its input shape."""
    net = clf.net
    if isinstance(net, torch.jit.ScriptModule):
        return net, "torchscript"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation and tracer warnings
        try:
            return torch.jit.script(net), "scripted"
        except Exception as e:  # scripting fails on much ordinary Python; tracing next
            log.info("torch.jit.script failed (%s); tracing instead", e)
        lo, hi = clf.bounds
        example = lo + (hi - lo) * torch.rand(
            2, *clf.input_shape, generator=torch.Generator().manual_seed(0)
        )
        with frozen_eval(clf), torch.no_grad():
            example = (example - clf.mean) / clf.std if clf.normalised else example
            try:
                return torch.jit.trace(net, example), "traced"
            except Exception as e:
                raise ConfigError(
                    f"cannot export the module to TorchScript (script: failed; trace: {e}); "
                    "export it yourself with torch.jit.save and import that file"
                ) from None


def _save_torchscript(
    clf: Classifier,
    file: Path | None,
    out: str | os.PathLike[str],
    extra: dict[str, Any],
    source: dict[str, Any],
) -> Path:
    module, how = _script(clf)
    tmpdir = Path(tempfile.mkdtemp(prefix=".advx-import-"))
    try:
        ts = tmpdir / TORCHSCRIPT_FILE
        if file is not None:
            shutil.copyfile(file, ts)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.jit.save(module, str(ts))
            copy = load_torchscript(ts, ModelOptions(input_shape=clf.input_shape))
            _check_same(clf, Classifier(copy.net, input_shape=clf.input_shape,
                                        num_classes=clf.num_classes, bounds=clf.bounds,
                                        mean=_stat(clf, "mean"), std=_stat(clf, "std")), how)  # fmt: skip
        source["export"] = how
        norm = (
            {"mean": clf.mean.flatten().tolist(), "std": clf.std.flatten().tolist()}
            if clf.normalised
            else None
        )
        return _write(out, "torchscript", clf, {}, norm, {TORCHSCRIPT_FILE: ts}, extra, source)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _stat(clf: Classifier, which: str) -> list[float] | None:
    return getattr(clf, which).flatten().tolist() if clf.normalised else None


def _check_same(a: Classifier, b: Classifier, how: str) -> None:
    lo, hi = a.bounds
    x = lo + (hi - lo) * torch.rand(8, *a.input_shape, generator=torch.Generator().manual_seed(1))
    with frozen_eval(a), frozen_eval(b), torch.no_grad():
        ya, yb = a(x.to(a.device)).float().cpu(), b(x).float()
    if not torch.allclose(ya, yb, rtol=1e-4, atol=1e-5):
        raise ConfigError(
            f"the {how} TorchScript copy does not compute what the module computes (max logit "
            f"difference {float((ya - yb).abs().max()):.3g}; data-dependent control flow?); "
            "export it yourself with torch.jit.script and import that file"
        )


def _write(
    out: str | os.PathLike[str],
    kind: str,
    model: Any,
    arch_kwargs: dict[str, Any],
    norm: dict[str, list[float]] | None,
    files: Mapping[str, Path],
    extra: dict[str, Any],
    source: dict[str, Any],
) -> Path:
    """Write a checkpoint of an external ``kind`` (the layout of advx.models.save)."""
    from advx.models.registry import jsonable

    dest = Path(out)
    meta = jsonable({**extra, "source": source}, what="checkpoint meta")
    clash = sorted(set(meta) & set(ck.RESERVED_KEYS))
    if clash:
        raise InputError(f"meta may not set {', '.join(clash)}")
    ck._check_destination(dest)
    with atomic_dir(dest) as tmp:  # staged next to dest with the umask's mode
        for name, src in files.items():
            shutil.copyfile(src, tmp / name)
            fsync_file(tmp / name)
        info: dict[str, Any] = {
            "format": ck.FORMAT,
            "format_version": ck.FORMAT_VERSION,
            "kind": kind,
            "arch": kind,
            "arch_kwargs": arch_kwargs,
            "input_shape": list(model.input_shape),
            "num_classes": int(model.num_classes),
            "class_names": list(model.class_names),
            "bounds": list(model.bounds),
            "normalisation": norm,
            **meta,
            "advx_version": ck._version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": {
                f.name: {"sha256": ck._sha256(f), "bytes": f.stat().st_size}
                for f in sorted(tmp.iterdir())
                if f.is_file() and f.name != ck.INFO_FILE
            },
        }
        atomic_write_text(tmp / ck.INFO_FILE, dumps(info, indent=2) + "\n")
    return dest


def _import_huggingface(
    src: Path,
    out: str | os.PathLike[str],
    options: ModelOptions,
    extra: dict[str, Any],
    source: dict[str, Any],
) -> Path:
    from advx.text.huggingface import HFTextClassifier, check_hf_directory

    check_hf_directory(src)
    model = HFTextClassifier.from_directory(
        src, class_names=options.class_names, max_len=options.max_len
    )
    files: dict[str, Path] = {}
    for f in sorted(src.iterdir()):
        if not f.is_file() or f.name == ck.INFO_FILE or f.name.startswith("."):
            continue
        if f.suffix.lower() in _PICKLE_SUFFIXES:
            log.info("leaving out %s (pickled weights; the safetensors copy is used)", f.name)
            continue
        files[f.name] = f
    source["config_sha256"] = ck._sha256(src / "config.json")
    meta = {"modality": "text", **extra}
    kwargs = {"max_len": model.max_len}
    return _write(out, "huggingface", model, kwargs, None, files, meta, source)


# ---------------------------------------------------------------- checkpoint loading
def load_checkpoint(d: Path, info: dict[str, Any]) -> Any:
    """Load a checkpoint of an external kind (called by :func:`advx.models.load` after
    it verified every file's hash)."""
    kind = info["kind"]
    norm = info.get("normalisation") or {}
    b = info.get("bounds", [0.0, 1.0])
    options = ModelOptions(
        input_shape=tuple(info["input_shape"]),
        num_classes=int(info["num_classes"]),
        bounds=(float(b[0]), float(b[1])),
        mean=tuple(norm["mean"]) if norm.get("mean") is not None else None,
        std=tuple(norm["std"]) if norm.get("std") is not None else None,
        class_names=tuple(info["class_names"]),
    )
    try:
        if kind == "torchscript":
            clf = load_torchscript(d / TORCHSCRIPT_FILE, options)
            clf.eval()
            return clf
        if kind == "onnx":
            kw = info.get("arch_kwargs") or {}
            box = load_onnx(d / ONNX_FILE, options, output_kind=kw.get("output_kind"))
            box.name = d.resolve().name
            return box
        if kind == "huggingface":
            from advx.text.huggingface import HFTextClassifier

            max_len = (info.get("arch_kwargs") or {}).get("max_len")
            return HFTextClassifier.from_directory(
                d, class_names=options.class_names, max_len=max_len
            )
    except (ConfigError, InputError) as e:
        raise CheckpointError(f"{d}: cannot load its {kind} model: {e}") from None
    raise CheckpointError(f"{d}: unknown kind {kind!r}")


for _kind in ("torchscript", "onnx", "huggingface"):
    ck.register_imported_kind(_kind, load_checkpoint)
