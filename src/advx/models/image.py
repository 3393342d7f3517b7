"""Torch image classifiers: ``linear``, ``mlp``, ``cnn``, ``rnn``.

Each builder maps ``(input_shape, num_classes, **options)`` to an ``nn.Module`` that reads
*normalised* images ``(N, C, H, W)``; :func:`advx.models.build` wraps it in a
:class:`~advx.models.adapter.Classifier`, which owns the normalisation, so every model
takes inputs in ``[0, 1]``.

The zoo spans the model families of Szegedy et al. (2014) and Goodfellow et al. (2015),
"Explaining and harnessing adversarial examples" (ICLR), which showed that even linear
models are fooled, and recurrent ones too (Papernot et al. 2016, "Crafting adversarial
input sequences for recurrent neural networks", MILCOM).

Training defaults (epochs, learning rate) are the registry's; they were measured to reach
the targets in ``advx train --list`` on Fashion-MNIST and digits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from advx.errors import ConfigError
from advx.models.registry import ArchSpec, register


def _check_image(shape: tuple[int, ...], arch: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ConfigError(f"{arch} needs image inputs (C, H, W), got input_shape {shape}")
    return shape[0], shape[1], shape[2]


def _positive(name: str, values: Sequence[int] | int, arch: str) -> list[int]:
    vals = [values] if isinstance(values, int) else list(values)
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in vals):
        raise ConfigError(f"{arch}: {name} must be positive integers, got {values!r}")
    return vals


def _dropout(p: float, arch: str) -> float:
    if not 0.0 <= float(p) < 1.0:
        raise ConfigError(f"{arch}: dropout must be in [0, 1), got {p}")
    return float(p)


def linear(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Softmax regression: one affine map from pixels to logits."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


def mlp(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    hidden: Sequence[int] = (256, 256),
    dropout: float = 0.2,
) -> nn.Module:
    """Fully connected ReLU network with ``hidden`` units per layer and dropout."""
    sizes = _positive("hidden", hidden, "mlp")
    p = _dropout(dropout, "mlp")
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h in sizes:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if p > 0:
            layers.append(nn.Dropout(p))
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def cnn(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    channels: Sequence[int] = (32, 64),
    hidden: int = 128,
    dropout: float = 0.3,
    batchnorm: bool = True,
) -> nn.Module:
    """Small convolutional network: per entry of ``channels`` a block
    conv3x3 -> [BatchNorm] -> ReLU -> maxpool2, then a ``hidden``-unit ReLU layer, dropout
    and the output layer. Two blocks take 28x28 to 7x7 (8x8 digits to 2x2)."""
    c, h, w = _check_image(input_shape, "cnn")
    chans = _positive("channels", channels, "cnn")
    (hid,) = _positive("hidden", hidden, "cnn")
    p = _dropout(dropout, "cnn")
    fh, fw = h // 2 ** len(chans), w // 2 ** len(chans)
    if fh < 1 or fw < 1:
        raise ConfigError(
            f"cnn: {len(chans)} pooling blocks shrink {h}x{w} images to nothing; "
            f"use at most {int(math.log2(min(h, w)))} entries in channels"
        )
    layers: list[nn.Module] = []
    prev = c
    for out in chans:
        layers.append(nn.Conv2d(prev, out, 3, padding=1, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm2d(out))
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
        prev = out
    layers += [nn.Flatten(), nn.Linear(prev * fh * fw, hid), nn.ReLU()]
    if p > 0:
        layers.append(nn.Dropout(p))
    layers.append(nn.Linear(hid, num_classes))
    return nn.Sequential(*layers)


class RowLSTM(nn.Module):
    """An LSTM reading an image one row at a time (H steps of C*W features); the last
    hidden state of the top layer is classified by a linear layer.

    Hochreiter & Schmidhuber (1997), "Long short-term memory", Neural Computation 9(8).

    Args:
        input_shape: ``(C, H, W)``.
        num_classes: outputs.
        hidden: LSTM state size (default 128).
        layers: stacked LSTM layers (default 1).
        bidirectional: also read the rows bottom-up (default False).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        hidden: int = 128,
        layers: int = 1,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        c, _, w = _check_image(input_shape, "rnn")
        (hid,) = _positive("hidden", hidden, "rnn")
        (n_layers,) = _positive("layers", layers, "rnn")
        self.lstm = nn.LSTM(
            c * w, hid, num_layers=n_layers, batch_first=True, bidirectional=bool(bidirectional)
        )
        self.out = nn.Linear(hid * (2 if bidirectional else 1), num_classes)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, K)
        n, c, h, w = x.shape
        seq = x.permute(0, 2, 1, 3).reshape(n, h, c * w)  # (N, H, C*W): one step per row
        _, (h_n, _) = self.lstm(seq)  # h_n: (layers * dirs, N, hidden)
        if self.lstm.bidirectional:
            last = h_n[-2:].transpose(0, 1).reshape(n, -1)  # (N, 2 * hidden)
        else:
            last = h_n[-1]  # (N, hidden)
        out: Tensor = self.out(last)
        return out


def rnn(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    hidden: int = 128,
    layers: int = 1,
    bidirectional: bool = False,
) -> nn.Module:
    """LSTM over image rows (:class:`RowLSTM`)."""
    return RowLSTM(
        input_shape, num_classes, hidden=hidden, layers=layers, bidirectional=bidirectional
    )


# Epochs/lr measured on this project's 2-core machine (see the issue note): enough to reach
# the targets with a one-cycle schedule. Digits has 1400 training images, 11 batches of
# 128 per epoch, so it needs many more epochs for the same number of steps.
register(
    ArchSpec(
        "linear",
        "softmax regression (one affine layer): even linear models are fooled",
        "torch",
        "image",
        linear,
        train_defaults={"epochs": 8, "lr": 3e-3, "weight_decay": 1e-4},
        dataset_defaults={"digits": {"epochs": 60, "lr": 3e-2}},
    )
)
register(
    ArchSpec(
        "mlp",
        "multilayer perceptron, 2x256 ReLU units with dropout",
        "torch",
        "image",
        mlp,
        train_defaults={"epochs": 6, "lr": 2e-3},
        dataset_defaults={"digits": {"epochs": 20, "lr": 3e-3}},
    )
)
register(
    ArchSpec(
        "cnn",
        "small CNN: conv32-conv64 with batch norm and max-pooling, fc128 (the demo model)",
        "torch",
        "image",
        cnn,
        train_defaults={"epochs": 3, "lr": 2e-3},
        dataset_defaults={"digits": {"epochs": 10, "lr": 3e-3}},
    )
)
register(
    ArchSpec(
        "rnn",
        "LSTM (128 units) reading the image row by row",
        "torch",
        "image",
        rnn,
        train_defaults={"epochs": 6, "lr": 3e-3},
        dataset_defaults={"digits": {"epochs": 30, "lr": 1e-2}},
    )
)
