"""How commands turn what the user typed into a :class:`~advx.targets.Target` and data.

One entry point per thing, so every command (``attack``, ``evaluate``, ``transfer``...)
accepts the same specs:

* :func:`open_target` — ``spec`` names a model: a checkpoint directory written by
  :func:`advx.models.save` (torch -> :class:`~advx.targets.WhiteBox`; a model wrapper
  that already is a :class:`~advx.targets.Target`, e.g. scikit-learn, passes through), a
  user model (TorchScript, ONNX, ``module:factory``; :mod:`advx.models.external`), or a
  remote endpoint (``http://...``).
* :func:`target_info` — the model's metadata (``model.json``) when the spec has one.
* :func:`open_data` — the evaluation data: ``--data`` if given, else the dataset the
  model's metadata records.

Heavy imports happen inside the functions (this module is imported by ``advx --help``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from advx.errors import CheckpointError, ConfigError, InputError
from advx.targets import Target

if TYPE_CHECKING:
    import torch

    from advx.models.external import ModelOptions


def _is_remote(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def open_target(
    spec: str,
    *,
    name: str | None = None,
    model_name: str | None = None,
    api_key: str | None = None,
    labels_only: bool = False,
    options: ModelOptions | None = None,
    device: torch.device | None = None,
) -> Target:
    """Open the model named by ``spec`` as a target.

    Args:
        spec: a model directory (``model.json`` + weights, as written by ``advx train``,
            :func:`advx.models.save` or ``advx import``); a TorchScript file; an ONNX file
            (scores and labels only); a Python ``module:function`` or
            ``path/to/file.py:function`` returning an ``nn.Module``, Classifier or Target;
            a pretrained zoo name (``efficientnet-lite0``, ``-lite1``, ``-lite2``); or the
            URL of an Open Inference Protocol server (``http://127.0.0.1:8080``:
            ``advx serve``, MLServer...), opened as an :class:`~advx.adapters.HttpTarget`.
            See :mod:`advx.models.external`.
        name: shown in messages and reports; default the directory (or model) name.
        model_name: the model's name on the server (URLs only; default: the server's
            only model).
        api_key: API key for the server (URLs only).
        labels_only: ask the server (or an ONNX model) for labels only.
        options: what a user model does not carry (input shape, classes, bounds,
            normalisation, class names).
        device: where torch models run (default CPU).

    Returns:
        A :class:`~advx.targets.WhiteBox` for torch models; a ScoreBox/LabelBox for ONNX;
        the loaded object itself when it already is a :class:`~advx.targets.Target`.

    Raises:
        CheckpointError: the path does not exist or is not a valid checkpoint.
        ConfigError: the spec names something no adapter handles, or options are missing.
    """
    if _is_remote(spec):
        from advx.adapters import HttpTarget

        outputs = "labels" if labels_only else "auto"
        return HttpTarget(spec, model_name, outputs=outputs, api_key=api_key, name=name)
    spec = _pretrained_dir(spec)
    from torch import nn

    from advx.models.external import open_model, spec_kind
    from advx.models.external_loaders import describe_missing
    from advx.targets import WhiteBox

    if spec_kind(spec) is None:
        raise CheckpointError(describe_missing(spec))
    loaded = open_model(spec, options, device=device, outputs="labels" if labels_only else "scores")
    label = name or (Path(spec).resolve().name if Path(spec).exists() else spec)
    if isinstance(loaded, Target):
        return loaded
    if isinstance(loaded, nn.Module):
        return WhiteBox(loaded, name=label)
    if callable(getattr(loaded, "predict_proba", None)) and not hasattr(loaded, "input_shape"):
        raise ConfigError(f"{spec} is a text model; attack it with `advx text attack {spec}`")
    from advx.adapters import as_target  # scikit-learn models and other wrappers

    try:
        return as_target(loaded, name=label)
    except InputError:
        raise ConfigError(
            f"{spec}: cannot attack a {type(loaded).__name__}; no adapter for it"
        ) from None


def target_info(
    spec: str, *, model_name: str | None = None, api_key: str | None = None
) -> dict[str, Any]:
    """The metadata stored with the model ``spec`` (empty for specs without any); for a
    URL, the ``parameters`` of the server's model metadata (``advx serve`` publishes the
    model's ``dataset`` there)."""
    if _is_remote(spec):
        from advx.serve.client import OipClient

        with OipClient(spec, api_key=api_key) as client:
            names = [model_name] if model_name else client.models()[:1]
            if not names:
                return {}
            params = client.model_metadata(names[0]).get("parameters") or {}
        return dict(params) if isinstance(params, dict) else {}
    from advx import models
    from advx.models.external import spec_kind

    spec = _pretrained_dir(spec)
    if spec_kind(spec) != "checkpoint":
        return {}  # user models carry no advx metadata (pass --data)
    return dict(models.read_info(Path(spec)))


def _pretrained_dir(spec: str) -> str:
    """A name of the pretrained zoo (``efficientnet-lite0``; see
    :data:`advx.models.PRETRAINED`) -> its converted checkpoint directory; anything else,
    or an existing path of that name, is returned as is."""
    from advx.models.pretrained import checkpoint_dir, is_pretrained_name

    if is_pretrained_name(spec) and not Path(spec).exists():
        return str(checkpoint_dir(spec))
    return spec


def open_data(
    data: str | None,
    info: dict[str, Any],
    *,
    split: str = "test",
    limit: int | None = None,
) -> Any:
    """The evaluation data as an :class:`~advx.data.core.ImageDataset`.

    Args:
        data: a dataset name (``fashion-mnist``, ``digits``) or a data file/folder that
            :func:`advx.data.load` reads; None uses the dataset recorded in ``info``
            (the model's metadata, key ``"dataset"``).
        info: the model's metadata (:func:`target_info`).
        split: ``"test"`` (default) or ``"train"``; ignored for files.
        limit: keep only the first ``limit`` examples.

    Raises:
        ConfigError: no data given and the model's metadata names none.
    """
    name = data or info.get("dataset")
    if not name:
        raise ConfigError(
            "the model's metadata names no dataset; pass the evaluation data with --data "
            "(a dataset name such as fashion-mnist, or a file)"
        )
    from advx import data as datasets

    return datasets.load(str(name), split=split, limit=limit)
