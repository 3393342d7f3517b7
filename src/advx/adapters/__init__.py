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

One module per kind of model: the torch boxes live with the other targets in
:mod:`advx.targets`; :mod:`~advx.adapters.sklearn_models`, :mod:`~advx.adapters.onnx_models`,
:mod:`~advx.adapters.http`, :mod:`~advx.adapters.cache`; this package re-exports them.

Heavy or optional libraries (onnxruntime, httpx, scikit-learn) are imported inside the
functions that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from advx.adapters.cache import CachedTarget
from advx.adapters.http import HttpTarget
from advx.adapters.onnx_models import export_onnx, onnx_target
from advx.adapters.sklearn_models import sklearn_target
from advx.errors import InputError
from advx.targets import (
    Access,
    Target,
    TorchLabelBox,
    TorchScoreBox,
    WhiteBox,
    check_outputs_arg,
    torch_target,
)

__all__ = [
    "CachedTarget",
    "HttpTarget",
    "TorchLabelBox",
    "TorchScoreBox",
    "as_target",
    "export_onnx",
    "onnx_target",
    "sklearn_target",
    "torch_target",
]


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
        check_outputs_arg(outputs)
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
