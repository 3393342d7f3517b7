"""Adapters: targets from the models you have, at the access level you grant.

* :func:`torch_target` — a torch module seen without gradients (probabilities or labels);
  also ``ScoreBox.from_torch`` / ``LabelBox.from_torch``. For gradients use
  :class:`~advx.targets.WhiteBox`.
* :func:`sklearn_target` — a scikit-learn estimator (``predict_proba`` -> ScoreBox,
  ``predict`` -> LabelBox), including the zoo's scikit-learn models.
* :func:`onnx_target` — an ONNX Runtime session (or ``.onnx`` file); :func:`export_onnx`
  writes a torch :class:`~advx.models.adapter.Classifier` to ONNX with its metadata.
* :class:`HttpTarget` — a model behind an HTTP endpoint speaking the Open Inference
  Protocol (KServe V2): ``advx serve``, MLServer, Triton, KServe.
* :class:`CachedTarget` — wraps any target so identical repeated rows are answered from a
  cache instead of re-evaluating the model.
* :func:`as_target` — picks the adapter for an object.

Heavy or optional libraries (onnxruntime, httpx, scikit-learn) are imported inside the
functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from advx.errors import AccessError, ConfigError, InputError, RemoteError
from advx.targets import Access, LabelBox, ScoreBox, Target, WhiteBox

log = logging.getLogger(__name__)

_OUTPUTS = ("scores", "labels")


def _check_outputs(outputs: str, allowed: Sequence[str] = _OUTPUTS) -> None:
    if outputs not in allowed:
        raise InputError(f"outputs must be one of {', '.join(map(repr, allowed))}, got {outputs!r}")


def _meta(t: Target) -> dict[str, Any]:
    return {
        "input_shape": t.input_shape,
        "num_classes": t.num_classes,
        "bounds": t.bounds,
        "class_names": t.class_names,
        "name": t.name,
    }


# ------------------------------------------------------------------------------- torch
class TorchScoreBox(ScoreBox):
    """Probabilities (softmax of the logits) of a torch module, without gradients.

    Built by :func:`torch_target`; during an attack the module is in eval mode with frozen
    parameters, exactly as for :class:`~advx.targets.WhiteBox`.
    """

    def __init__(self, white: WhiteBox) -> None:
        super().__init__(lambda x: white._logits(x).softmax(dim=1), **_meta(white))
        self.white = white

    def attacking(self) -> Any:
        return self.white.attacking()


class TorchLabelBox(LabelBox):
    """Labels (argmax of the logits) of a torch module; see :class:`TorchScoreBox`."""

    def __init__(self, white: WhiteBox) -> None:
        super().__init__(lambda x: white._logits(x).argmax(dim=1), **_meta(white))
        self.white = white

    def attacking(self) -> Any:
        return self.white.attacking()


def torch_target(
    module: nn.Module,
    *,
    outputs: str = "scores",
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    bounds: tuple[float, float] | None = None,
    class_names: Sequence[str] | None = None,
    name: str = "model",
) -> ScoreBox | LabelBox:
    """A torch classifier seen as a score-based or decision-based black box.

    Args:
        module: an :class:`~advx.models.adapter.Classifier` (carries its metadata) or a
            plain module mapping bounded inputs ``(N, *input_shape)`` to logits ``(N, C)``.
        outputs: ``"scores"`` (softmax probabilities; a ScoreBox, default) or ``"labels"``
            (argmax; a LabelBox).
        input_shape, num_classes, bounds, class_names: needed for a plain module;
            override the Classifier's otherwise.
        name: shown in messages and reports.

    Example:
        >>> from advx.models.adapter import Classifier
        >>> clf = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)),
        ...                  input_shape=(1, 2, 2), num_classes=3)
        >>> box = torch_target(clf)
        >>> box.scores(torch.zeros(5, 1, 2, 2)).sum(dim=1)
        tensor([1.0000, 1.0000, 1.0000, 1.0000, 1.0000])
    """
    _check_outputs(outputs)
    white = WhiteBox(
        module,
        input_shape=input_shape,
        num_classes=num_classes,
        bounds=bounds,
        class_names=class_names,
        name=name,
    )
    return TorchScoreBox(white) if outputs == "scores" else TorchLabelBox(white)


# ----------------------------------------------------------------------------- sklearn
def _is_raw_sklearn(model: Any) -> bool:
    """True for a scikit-learn estimator working on flat numpy features; False for a
    wrapper (such as the zoo's) taking image tensors."""
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return False
    return isinstance(model, BaseEstimator)


def sklearn_target(
    estimator: Any,
    *,
    outputs: str = "auto",
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    bounds: tuple[float, float] | None = None,
    class_names: Sequence[str] | None = None,
    name: str | None = None,
) -> ScoreBox | LabelBox:
    """A scikit-learn classifier as a target.

    Two kinds of objects are accepted:

    * a fitted scikit-learn estimator or pipeline working on flat features ``(N, D)``:
      inputs ``(N, *input_shape)`` are flattened to ``(N, D)`` (float32, as a model
      server would receive them). ``predict_proba`` columns and ``predict`` labels follow
      ``estimator.classes_``; labels are returned as *indices* into ``classes_``.
    * a wrapper taking image tensors (the zoo's scikit-learn models, loaded from skops
      files by :func:`advx.models.load`): it must have ``predict_proba``/``predict`` on
      tensors and ``input_shape``, ``num_classes`` (``bounds``, ``class_names`` used
      when present).

    Args:
        estimator: the model.
        outputs: ``"scores"`` (``predict_proba``: a ScoreBox), ``"labels"``
            (``predict``: a LabelBox) or ``"auto"`` (default: scores when the model has
            ``predict_proba``, e.g. not an ``SVC(probability=False)``).
        input_shape: shape of one example; default the wrapper's, or ``(n_features_in_,)``.
        num_classes: default ``len(classes_)`` / the wrapper's.
        bounds: input domain; default the wrapper's, else ``(0, 1)``.
        class_names: default the wrapper's, else ``classes_`` as strings.
        name: shown in messages; default the estimator's class name.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> est = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
        >>> sklearn_target(est).scores(torch.eye(4)).shape
        torch.Size([4, 2])
    """
    _check_outputs(outputs, ("auto", *_OUTPUTS))
    has_proba = hasattr(estimator, "predict_proba")
    if outputs == "auto":
        outputs = "scores" if has_proba else "labels"
    if outputs == "scores" and not has_proba:
        raise AccessError(
            f"{type(estimator).__name__} has no predict_proba (e.g. SVC needs probability=True); "
            "use outputs='labels' for a decision-only target"
        )
    if outputs == "labels" and not hasattr(estimator, "predict"):
        raise InputError(f"{type(estimator).__name__} has no predict method")
    name = name or type(estimator).__name__
    if _is_raw_sklearn(estimator):
        return _raw_sklearn(estimator, outputs, input_shape, num_classes, bounds, class_names, name)
    shape = input_shape or getattr(estimator, "input_shape", None)
    classes = num_classes or getattr(estimator, "num_classes", None)
    if shape is None or classes is None:
        raise InputError(
            f"{type(estimator).__name__} is not a scikit-learn estimator and does not say its "
            "input_shape/num_classes; pass input_shape= and num_classes="
        )
    lo, hi = bounds or getattr(estimator, "bounds", None) or (0.0, 1.0)
    meta: dict[str, Any] = {
        "input_shape": tuple(shape),
        "num_classes": int(classes),
        "bounds": (float(lo), float(hi)),
        "class_names": class_names or getattr(estimator, "class_names", None),
        "name": name,
    }
    if outputs == "scores":
        return ScoreBox(lambda x: torch.as_tensor(estimator.predict_proba(x)).float(), **meta)
    return LabelBox(lambda x: torch.as_tensor(estimator.predict(x)).long(), **meta)


def _raw_sklearn(
    est: Any,
    outputs: str,
    input_shape: Sequence[int] | None,
    num_classes: int | None,
    bounds: tuple[float, float] | None,
    class_names: Sequence[str] | None,
    name: str,
) -> ScoreBox | LabelBox:
    classes = getattr(est, "classes_", None)
    if classes is None:
        raise InputError(f"{name} is not fitted (no classes_); fit it first")
    classes = np.asarray(classes)
    n_features: Any = getattr(est, "n_features_in_", None)
    if input_shape is None and n_features is None:
        raise InputError(f"{name} does not record n_features_in_; pass input_shape=")
    shape: tuple[int, ...] = tuple(input_shape) if input_shape is not None else (int(n_features),)
    if n_features is not None and math.prod(shape) != n_features:
        raise InputError(
            f"input_shape {shape} has {math.prod(shape)} values but {name} expects "
            f"{n_features} features"
        )
    if num_classes is not None and num_classes != len(classes):
        raise InputError(f"num_classes={num_classes} but {name} has {len(classes)} classes")
    index = {c.item() if hasattr(c, "item") else c: i for i, c in enumerate(classes)}
    meta = {
        "input_shape": shape,
        "num_classes": len(classes),
        "bounds": bounds or (0.0, 1.0),
        "class_names": class_names or [str(c) for c in classes],
        "name": name,
    }

    def flat(x: Tensor) -> np.ndarray:
        return x.detach().cpu().reshape(x.shape[0], -1).numpy().astype(np.float32, copy=False)

    def scores(x: Tensor) -> Tensor:
        return torch.from_numpy(np.asarray(est.predict_proba(flat(x)), dtype=np.float32))

    def labels(x: Tensor) -> Tensor:
        pred = np.asarray(est.predict(flat(x)))
        return torch.tensor([index[p.item() if hasattr(p, "item") else p] for p in pred])

    if outputs == "scores":
        return ScoreBox(scores, **meta)
    return LabelBox(labels, **meta)


# -------------------------------------------------------------------------------- onnx
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
    _check_outputs(outputs)
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


# -------------------------------------------------------------------------------- http
class HttpTarget(Target):
    """A model behind an Open Inference Protocol (KServe V2 REST) endpoint.

    Works with ``advx serve``, MLServer, Triton and KServe. The model's metadata
    (``GET /v2/models/{name}``) gives the input name and shape; ``advx serve`` also puts
    ``num_classes``, ``class_names``, ``bounds`` and ``labels_only`` in its
    ``parameters``. For other servers pass ``input_shape``, ``num_classes`` and ``bounds``
    (default ``(0, 1)``) yourself.

    Query batches are split into requests of at most ``batch_size`` rows. Every row counts
    once in :attr:`queries`, however many HTTP retries it took. Failed requests are retried
    (5xx answers, time-outs, connection errors) with exponential back-off; 4xx answers
    raise :class:`~advx.serve.client.HttpStatusError` (a :class:`~advx.errors.RemoteError`)
    at once, e.g. 401 (API key), 413 (batch too large), 429 (the server's query budget is
    spent). Malformed answers raise :class:`~advx.errors.RemoteError`.

    Args:
        url: server root, e.g. ``"http://127.0.0.1:8080"``.
        model_name: the model's name on the server; None asks the server's repository
            index and takes its only model.
        outputs: ``"scores"`` (asks for the ``predict_proba`` output: a ScoreBox),
            ``"labels"`` (``predict``: a LabelBox, for decision-only APIs) or ``"auto"``
            (scores unless the metadata says the server is labels-only).
        api_key: API key; sent as ``Authorization: Bearer <key>`` by default, or as the
            bare value of ``api_key_header`` (e.g. ``"x-api-key"``) when that is given.
        api_key_header: header carrying the key (default ``"Authorization"``).
        batch_size: most rows per request (default 256).
        timeout: seconds per request (connect and read; default 30).
        retries: extra attempts after a failure (default 3); back-off starts at
            ``backoff`` seconds (default 0.25) and doubles.
        input_shape, num_classes, bounds, class_names: override or supply the metadata.
        wire_shape: shape of one row as the server wants it, when it differs from
            ``input_shape`` (e.g. ``(64,)`` for a scikit-learn model on flattened 8x8
            images); default the server's declared input shape, else ``input_shape``.
        output_name: name of the output to read (default ``"predict_proba"`` for scores,
            ``"predict"`` for labels, MLServer's scikit-learn names, which advx serve
            uses too).
        output_kind: ``"probabilities"`` (default) or ``"logits"`` (softmax applied), for
            servers whose output is raw logits (e.g. Triton serving an ONNX model).
        binary: use Triton's binary tensor extension (much cheaper than JSON for
            images); default: when the server's metadata says it supports it.
        http_client: an ``httpx.Client`` to send through (tests: Starlette's TestClient).
        name: shown in messages; default ``model_name``.

    Example:
        >>> target = HttpTarget("http://127.0.0.1:8080", "digits", api_key="s3cret")  # doctest: +SKIP
        >>> create("square", eps=0.1, max_queries=1000)(target, x, y)  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        model_name: str | None = None,
        *,
        outputs: str = "scores",
        api_key: str | None = None,
        api_key_header: str = "Authorization",
        batch_size: int = 256,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.25,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        bounds: tuple[float, float] | None = None,
        class_names: Sequence[str] | None = None,
        wire_shape: Sequence[int] | None = None,
        output_name: str | None = None,
        output_kind: str = "probabilities",
        binary: bool | None = None,
        http_client: Any = None,
        name: str | None = None,
    ) -> None:
        from advx.serve import protocol
        from advx.serve.client import OipClient

        _check_outputs(outputs, ("auto", *_OUTPUTS))
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if output_kind not in ("probabilities", "logits"):
            raise InputError(
                f"output_kind must be 'probabilities' or 'logits', got {output_kind!r}"
            )
        self.client = OipClient(
            url,
            api_key=api_key,
            api_key_header=api_key_header,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            http_client=http_client,
        )
        if model_name is None:
            found = self.client.models()
            if len(found) != 1:
                raise ConfigError(
                    f"{url} serves {len(found)} models ({', '.join(found) or 'none'}); "
                    "pass the model name (CLI: --model-name)"
                )
            model_name = found[0]
        self.model_name = model_name
        meta = self.client.model_metadata(model_name)
        params = meta.get("parameters")
        params = params if isinstance(params, dict) else {}
        inputs = meta.get("inputs")
        declared = (
            inputs[0] if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict) else {}
        )
        self.input_name = str(declared.get("name") or protocol.INPUT_NAME)
        dshape = declared.get("shape")
        server_row = (
            tuple(int(d) for d in dshape[1:])
            if isinstance(dshape, list)
            and len(dshape) > 1
            and all(isinstance(d, int) and d > 0 for d in dshape[1:])
            else None
        )
        shape = input_shape or params.get("input_shape") or server_row
        classes = num_classes or params.get("num_classes")
        if shape is None or classes is None:
            raise ConfigError(
                f"model {model_name!r} at {url} does not declare its input shape and number "
                "of classes; pass input_shape= and num_classes="
            )
        if bounds is None and "bounds" not in params:
            log.info("%s does not declare input bounds; assuming (0, 1)", model_name)
        super().__init__(
            input_shape=shape,
            num_classes=int(classes),
            bounds=tuple(bounds or params.get("bounds") or (0.0, 1.0)),  # type: ignore[arg-type]
            class_names=class_names or params.get("class_names"),
            name=name or model_name,
        )
        self.wire_shape = tuple(wire_shape or server_row or self.input_shape)
        if math.prod(self.wire_shape) != math.prod(self.input_shape):
            raise InputError(
                f"wire_shape {self.wire_shape} does not hold input_shape {self.input_shape}"
            )
        if outputs == "auto":
            outputs = "labels" if params.get("labels_only") else "scores"
        if outputs == "scores" and params.get("labels_only"):
            raise AccessError(
                f"model {model_name!r} at {url} gives labels only; use outputs='labels' "
                "(CLI: --labels-only) and a decision-based attack"
            )
        self.access = Access.SCORES if outputs == "scores" else Access.LABELS
        self.outputs = outputs
        default_out = protocol.SCORES_OUTPUT if outputs == "scores" else protocol.LABELS_OUTPUT
        self.output_name = output_name or default_out
        self.output_kind = output_kind
        self.batch_size = int(batch_size)
        cap = params.get("max_rows")  # the server's rows-per-request limit (advx serve)
        if isinstance(cap, int) and not isinstance(cap, bool) and 1 <= cap < self.batch_size:
            self.batch_size = cap
        self.binary = bool(params.get("binary_data", False)) if binary is None else binary
        self.url = self.client.url

    def _infer(self, x: Tensor) -> list[np.ndarray]:
        rows = x.detach().cpu().to(torch.float32).reshape(x.shape[0], *self.wire_shape).numpy()
        out = []
        for i in range(0, rows.shape[0], self.batch_size):
            chunk = rows[i : i + self.batch_size]
            answer = self.client.infer(
                self.model_name,
                chunk,
                input_name=self.input_name,
                outputs=[self.output_name],
                binary=self.binary,
            )
            if self.output_name not in answer:
                raise RemoteError(
                    f"{self.url}: the answer has no output {self.output_name!r} "
                    f"(got {sorted(answer)}); pass output_name="
                )
            a = answer[self.output_name]
            if a.shape[0] != chunk.shape[0]:
                raise RemoteError(
                    f"{self.url}: asked {chunk.shape[0]} rows, output {self.output_name!r} "
                    f"has shape {list(a.shape)}"
                )
            out.append(a)
        return out

    def _scores(self, x: Tensor) -> Tensor:
        parts = []
        for a in self._infer(x):
            if a.dtype.kind != "f" or a.ndim != 2 or a.shape[1] != self.num_classes:
                raise RemoteError(
                    f"{self.url}: output {self.output_name!r} should be float (N, "
                    f"{self.num_classes}), got {a.dtype} {list(a.shape)}"
                )
            if not bool(np.isfinite(a).all()):
                raise RemoteError(f"{self.url}: output {self.output_name!r} has NaN or inf")
            parts.append(torch.from_numpy(a.astype(np.float32)))
        y = torch.cat(parts)
        return y.softmax(dim=1) if self.output_kind == "logits" else y

    def _labels(self, x: Tensor) -> Tensor:
        if self.access >= Access.SCORES:
            return self._scores(x).argmax(dim=1)
        parts = []
        for a in self._infer(x):
            flat = a.reshape(a.shape[0], -1)
            if flat.shape[1] != 1 or a.dtype.kind not in "iuf":
                raise RemoteError(
                    f"{self.url}: output {self.output_name!r} should be one label per row, "
                    f"got {a.dtype} {list(a.shape)}"
                )
            lab = flat[:, 0]
            if not bool(np.all(lab == np.round(lab))) or bool(
                ((lab < 0) | (lab >= self.num_classes)).any()
            ):
                raise RemoteError(
                    f"{self.url}: labels must be class indices in [0, {self.num_classes - 1}]"
                )
            parts.append(torch.from_numpy(lab.astype(np.int64)))
        return torch.cat(parts)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.client.close()

    def __enter__(self) -> HttpTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------- cache
class CachedTarget(Target):
    """A target that answers identical repeated rows from a cache (opt-in).

    Each row of a ``scores``/``labels`` query is keyed by a hash (BLAKE2b, 128 bits) of
    its bytes, dtype and shape; rows already seen (also repeats inside one batch) are not
    sent to the model. Least recently used entries are dropped beyond ``max_entries``.
    ``logits`` (white-box, differentiable) pass through uncached.

    Accounting: ``cached.queries`` counts every row asked of it (like any target), the
    wrapped ``cached.inner.queries`` counts rows the model really evaluated, and
    ``hits``/``misses`` split the difference. An :class:`~advx.targets.Oracle` still
    charges each example for every query its attack makes, cached or not: budgets follow
    the attack's semantics (a paper's "queries"), the cache only saves model evaluations.

    Args:
        target: the target to wrap; the wrapper has its access level and metadata.
        max_entries: most rows kept (default 100 000), per output kind.

    Example:
        >>> box = CachedTarget(ScoreBox(lambda x: x.softmax(1), input_shape=(3,), num_classes=3))
        >>> _ = box.scores(torch.zeros(2, 3)); box.inner.queries, box.hits
        (1, 1)
    """

    def __init__(self, target: Target, max_entries: int = 100_000) -> None:
        if not isinstance(target, Target):
            raise InputError(f"CachedTarget wraps an advx Target, got {type(target).__name__}")
        if max_entries < 1:
            raise InputError(f"max_entries must be >= 1, got {max_entries}")
        super().__init__(**_meta(target))
        self.inner = target
        self.access = target.access
        self.max_entries = int(max_entries)
        self.hits = 0
        self.misses = 0
        self._cache: dict[str, OrderedDict[bytes, Tensor]] = {
            "scores": OrderedDict(),
            "labels": OrderedDict(),
        }

    def _logits(self, x: Tensor) -> Tensor:
        return self.inner.logits(x)

    def _scores(self, x: Tensor) -> Tensor:
        return self._lookup("scores", x, self.inner.scores)

    def _labels(self, x: Tensor) -> Tensor:
        return self._lookup("labels", x, self.inner.labels)

    def attacking(self) -> Any:
        return self.inner.attacking()

    def clear(self) -> None:
        """Forget every cached row."""
        for c in self._cache.values():
            c.clear()

    @staticmethod
    def _keys(x: Tensor) -> list[bytes]:
        rows = x.detach().cpu().contiguous()
        prefix = f"{rows.dtype}{tuple(rows.shape[1:])}".encode()
        flat = rows.reshape(rows.shape[0], -1).numpy() if rows.numel() else None
        return [
            hashlib.blake2b(
                prefix + (flat[i].tobytes() if flat is not None else b""), digest_size=16
            ).digest()
            for i in range(rows.shape[0])
        ]

    def _lookup(self, kind: str, x: Tensor, evaluate: Callable[[Tensor], Tensor]) -> Tensor:
        cache = self._cache[kind]
        keys = self._keys(x)
        found: dict[bytes, Tensor] = {}
        todo: dict[bytes, int] = {}  # key -> first row needing evaluation
        for i, k in enumerate(keys):
            if k in found or k in todo:
                continue
            if k in cache:
                cache.move_to_end(k)
                found[k] = cache[k]
            else:
                todo[k] = i
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        if todo:
            rows = torch.tensor(list(todo.values()), dtype=torch.long, device=x.device)
            fresh = evaluate(x[rows])
            for j, k in enumerate(todo):
                found[k] = fresh[j].detach().clone()
                cache[k] = found[k]
            while len(cache) > self.max_entries:
                cache.popitem(last=False)
        return torch.stack([found[k] for k in keys])


# ------------------------------------------------------------------------------ picker
def as_target(model: Any, *, outputs: str | None = None, name: str | None = None) -> Target:
    """The natural target for ``model``.

    * an advx :class:`~advx.targets.Target`: itself (weakened to ``outputs`` if given);
    * a torch ``nn.Module``: :class:`~advx.targets.WhiteBox` (or :func:`torch_target` when
      ``outputs`` is ``"scores"``/``"labels"``);
    * an ONNX Runtime session or ``.onnx`` path: :func:`onnx_target`;
    * anything with ``predict_proba``/``predict`` (scikit-learn, the zoo's sklearn
      models): :func:`sklearn_target`.

    Args:
        model: the model.
        outputs: None (strongest access the model allows), ``"scores"`` or ``"labels"``.
        name: shown in messages.
    """
    if outputs is not None:
        _check_outputs(outputs)
    if isinstance(model, Target):
        if outputs == "scores" and model.access > Access.SCORES:
            return model.as_scores()
        if outputs == "labels" and model.access > Access.LABELS:
            return model.as_labels()
        if outputs == "scores":
            model._require(Access.SCORES, "outputs='scores'")
        return model
    if isinstance(model, nn.Module):
        if outputs is None:
            return WhiteBox(model, name=name or "model")
        return torch_target(model, outputs=outputs, name=name or "model")
    if isinstance(model, (str, Path)) and str(model).endswith(".onnx"):
        return onnx_target(model, outputs=outputs or "scores", name=name)
    if type(model).__module__.startswith("onnxruntime"):
        return onnx_target(model, outputs=outputs or "scores", name=name)
    if hasattr(model, "predict_proba") or hasattr(model, "predict"):
        return sklearn_target(model, outputs=outputs or "auto", name=name)
    raise InputError(
        f"no adapter for {type(model).__name__}: pass a torch module, a scikit-learn "
        "estimator, an ONNX session/file, or wrap a function in ScoreBox/LabelBox"
    )
