"""ONNX: :func:`export_onnx` writes a torch :class:`~advx.models.adapter.Classifier` with its
metadata; :func:`onnx_target` opens an ONNX Runtime session (or ``.onnx`` file) as a target.
onnxruntime is imported inside the functions that need it."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from advx.errors import ConfigError, InputError
from advx.targets import (
    LabelBox,
    ScoreBox,
    check_outputs_arg,
)


def export_onnx(model: nn.Module, path: str | Path, *, opset: int | None = None) -> Path:
    """Write a torch classifier to an ONNX file with a dynamic batch dimension.

    The graph has one input ``"input"`` ``(batch, *input_shape)`` and one output
    ``"logits"`` ``(batch, C)``; the model's metadata (input shape, classes, bounds,
    class names, ``output_kind="logits"``) is stored in the file's metadata properties
    under ``advx.*``, so :func:`onnx_target` needs no further arguments. Uses torch's
    default (``torch.export``-based) exporter, which needs the ``onnxscript`` package.

    Args:
        model: an :class:`~advx.models.adapter.Classifier`.
        path: the ``.onnx`` file to write.
        opset: ONNX opset version (default: the exporter's).

    Returns:
        The path written.
    """
    from advx.models.adapter import Classifier

    if not isinstance(model, Classifier):
        raise InputError(
            f"export_onnx needs an advx Classifier (it carries shape and bounds), got "
            f"{type(model).__name__}; wrap the net in advx.models.adapter.Classifier"
        )
    from torch.export import Dim

    path = Path(path)
    lo = model.bounds[0]
    example = torch.full((2, *model.input_shape), lo, dtype=torch.float32)
    with model.frozen_eval(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.export's internal deprecations
        program = torch.onnx.export(
            model,
            (example,),
            None,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=({0: Dim("batch")},),
            opset_version=opset,
            verbose=False,
        )
    if program is None:  # pragma: no cover - the dynamo exporter always returns one
        raise ConfigError("torch.onnx.export returned no program")
    props = program.model.metadata_props
    props["advx.input_shape"] = json.dumps(list(model.input_shape))
    props["advx.num_classes"] = json.dumps(model.num_classes)
    props["advx.bounds"] = json.dumps(list(model.bounds))
    props["advx.class_names"] = json.dumps(list(model.class_names))
    props["advx.output_kind"] = "logits"
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path))
    return path


def onnx_target(
    model: Any,
    *,
    outputs: str = "scores",
    output_kind: str | None = None,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    bounds: tuple[float, float] | None = None,
    class_names: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
    name: str | None = None,
) -> ScoreBox | LabelBox:
    """An ONNX model run by ONNX Runtime, as a target (no gradients).

    Args:
        model: an ``onnxruntime.InferenceSession`` or the path of an ``.onnx`` file.
        outputs: ``"scores"`` (ScoreBox, default) or ``"labels"`` (LabelBox).
        output_kind: what the graph's first output holds, ``"logits"`` (softmax applied)
            or ``"probabilities"``; default from the file's ``advx.output_kind`` metadata
            (written by :func:`export_onnx`), else ``"logits"``.
        input_shape, num_classes, bounds, class_names: default from the ``advx.*``
            metadata, then from the graph's static input/output shapes; bounds default
            ``(0, 1)``.
        providers: ONNX Runtime execution providers (default CPU).
        name: shown in messages; default the file name.

    Example:
        >>> box = onnx_target("digits.onnx")  # doctest: +SKIP
        >>> box.scores(x).shape  # doctest: +SKIP
        torch.Size([8, 10])
    """
    check_outputs_arg(outputs)
    import onnxruntime as ort

    if isinstance(model, (str, Path)):
        if not Path(model).is_file():
            raise InputError(f"no ONNX file at {model}")
        name = name or Path(model).stem
        try:
            session = ort.InferenceSession(
                str(model), providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as e:  # onnxruntime raises its own untyped errors
            raise InputError(f"{model}: ONNX Runtime cannot load it: {e}") from None
    elif isinstance(model, ort.InferenceSession):
        session = model
    else:
        raise InputError(
            f"onnx_target needs an onnxruntime.InferenceSession or a .onnx path, got "
            f"{type(model).__name__}"
        )
    props = session.get_modelmeta().custom_metadata_map

    def prop(key: str) -> Any:
        return json.loads(props[key]) if key in props else None

    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    graph_in = [d for d in inp.shape[1:]]
    shape = input_shape or prop("advx.input_shape")
    if shape is None and all(isinstance(d, int) for d in graph_in):
        shape = graph_in
    graph_out = out.shape[-1] if out.shape else None
    classes = num_classes or prop("advx.num_classes")
    if classes is None and isinstance(graph_out, int):
        classes = graph_out
    if shape is None or classes is None:
        raise InputError(
            "the ONNX graph has symbolic input/output sizes and no advx metadata; pass "
            "input_shape= and num_classes="
        )
    kind = output_kind or props.get("advx.output_kind", "logits")
    if kind not in ("logits", "probabilities"):
        raise InputError(f"output_kind must be 'logits' or 'probabilities', got {kind!r}")
    meta = {
        "input_shape": tuple(shape),
        "num_classes": int(classes),
        "bounds": tuple(bounds or prop("advx.bounds") or (0.0, 1.0)),
        "class_names": class_names or prop("advx.class_names"),
        "name": name or "onnx-model",
    }
    in_name, out_name = inp.name, out.name

    def scores(x: Tensor) -> Tensor:
        feed = {in_name: x.detach().cpu().numpy().astype(np.float32, copy=False)}
        y = torch.from_numpy(np.asarray(session.run([out_name], feed)[0], dtype=np.float32))
        return y.softmax(dim=1) if kind == "logits" else y

    if outputs == "scores":
        return ScoreBox(scores, **meta)
    return LabelBox(lambda x: scores(x).argmax(dim=1), **meta)
