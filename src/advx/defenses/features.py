"""Reading a classifier's intermediate features in the same forward pass as its logits.

Detectors that look inside the model (Metzen et al. 2017; Lee et al. 2018) need a layer's
activations. :func:`logits_and_features` runs the model once with a forward hook on that
layer, so the defended system costs one classifier pass plus the detector head, and the
features stay in the autograd graph (adaptive attacks differentiate through them).

Layer names:

* ``"input"`` — the bounded input itself (no hook),
* ``"penultimate"`` — the input of the model's last :class:`torch.nn.Linear` (the
  "penultimate features" of Lee et al.),
* any name from ``model.named_modules()`` (e.g. ``"net.3"``) — that module's output.
"""

from __future__ import annotations

from torch import Tensor, nn

from advx.errors import InputError

SPECIAL_LAYERS = ("input", "penultimate")


def layer_names(model: nn.Module) -> list[str]:
    """The layer names :func:`resolve_layer` accepts for ``model`` (special ones first)."""
    return [*SPECIAL_LAYERS, *(n for n, _ in model.named_modules() if n)]


def resolve_layer(model: nn.Module, layer: str) -> tuple[nn.Module | None, bool]:
    """Find ``layer`` in ``model``: ``(module, take_input)``.

    ``module`` is None for ``"input"``; ``take_input`` is True when the hook reads the
    module's input (``"penultimate"``) rather than its output.

    Raises:
        InputError: no such layer (the message lists the valid names), or no Linear layer
            for ``"penultimate"``.
    """
    if layer == "input":
        return None, False
    if layer == "penultimate":
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise InputError(
                "layer='penultimate' needs a model whose last layer is nn.Linear; name a "
                f"layer instead, one of {layer_names(model)[:12]}"
            )
        return linears[-1], True
    modules = dict(model.named_modules())
    if layer not in modules or not layer:
        raise InputError(f"unknown layer {layer!r}; choose one of {layer_names(model)[:20]}")
    return modules[layer], False


def logits_and_features(model: nn.Module, x: Tensor, layer: str) -> tuple[Tensor, Tensor]:
    """One forward pass: logits ``(N, C)`` and the features of ``layer`` ``(N, ...)``.

    Both stay differentiable w.r.t. ``x`` (no detach). Example:

        >>> logits, feats = logits_and_features(clf, x, "penultimate")  # doctest: +SKIP
        >>> feats.shape   # (N, 128) for the zoo CNN
    """
    module, take_input = resolve_layer(model, layer)
    if module is None:
        return model(x), x
    captured: list[Tensor] = []

    def hook(_m: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        captured.append(inputs[0] if take_input else output)

    handle = module.register_forward_hook(hook)
    try:
        logits = model(x)
    finally:
        handle.remove()
    if not captured:
        raise InputError(f"layer {layer!r} was not used by the model's forward pass")
    return logits, captured[-1]
