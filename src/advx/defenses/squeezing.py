"""Feature squeezing (Xu, Evans & Qi, NDSS 2018, "Feature Squeezing: Detecting
Adversarial Examples in Deep Neural Networks").

Squeezers shrink the input space an adversary can use: bit-depth reduction and median
smoothing. A clean input is classified about the same before and after squeezing; an
adversarial one, tuned to a precise point, often is not. The score is the largest L1
distance between the softmax of the input and of each squeezed version (the paper's joint
detector), and the threshold is set at a chosen false-positive rate on clean inputs.

For adaptive attacks, bit-depth reduction (a rounding, whose gradient is zero almost
everywhere) uses the straight-through estimator: exact forward, identity backward — BPDA
(Athalye, Carlini & Wagner, ICML 2018). The median filter is a selection and passes the
gradient to the selected pixel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from advx.defenses.detector_base import Detector, register_detector
from advx.errors import ConfigError
from advx.models.adapter import Classifier

Squeezer = Callable[[Tensor], Tensor]


def bit_depth(
    x: Tensor,
    bits: int,
    bounds: tuple[float, float] = (0.0, 1.0),
    *,
    straight_through: bool = False,
) -> Tensor:
    """Reduce ``x`` (any shape, in ``bounds``) to ``2**bits`` levels per value.

    Forward: ``lo + round((x - lo) / (hi - lo) * (2**bits - 1)) / (2**bits - 1) * (hi - lo)``.
    Backward: zero (the true gradient of rounding), or with ``straight_through`` the
    identity (BPDA), which gives an attacker a usable gradient.

        >>> bit_depth(torch.tensor([0.2, 0.6]), 1)
        tensor([0., 1.])
    """
    lo, hi = bounds
    levels = 2**bits - 1
    q = lo + torch.round((x - lo) / (hi - lo) * levels) / levels * (hi - lo)
    out: Tensor = x + (q - x).detach() if straight_through else q
    return out


def median_filter(x: Tensor, size: int) -> Tensor:
    """Median over each ``size x size`` window of images ``x`` (N, C, H, W), same shape.

    Windows are gathered with ``unfold``; borders are reflected (``size - 1`` pixels in
    total per axis: ``(size-1)//2`` before, ``size//2`` after, so even sizes work as in the
    paper's 2x2 filter). For an even number of values the lower middle one is taken.

        >>> median_filter(torch.arange(9.).view(1, 1, 3, 3), 3)[0, 0, 1, 1]
        tensor(4.)
    """
    n, c, h, w = x.shape
    before, after = (size - 1) // 2, size // 2
    padded = F.pad(x, (before, after, before, after), mode="reflect")
    cols = F.unfold(padded, kernel_size=size)  # (N, C*size*size, H*W)
    cols = cols.view(n, c, size * size, h * w)
    return cols.median(dim=2).values.view(n, c, h, w)


def parse_squeezer(
    spec: str,
    bounds: tuple[float, float],
    input_shape: Sequence[int],
    *,
    straight_through: bool = False,
) -> Squeezer:
    """A squeezer from its spec: ``"bits:B"`` (1 <= B <= 8) or ``"median:K"`` (2 <= K <= 5,
    images only; K smaller than the image side). ``straight_through`` makes bit-depth
    reduction pass gradients through (BPDA).

    Raises:
        ConfigError: unknown or malformed spec.
    """
    name, _, arg = spec.partition(":")
    try:
        value = int(arg)
    except ValueError:
        raise ConfigError(f"squeezer {spec!r}: expected bits:B or median:K") from None
    if name == "bits":
        if not 1 <= value <= 8:
            raise ConfigError(f"squeezer {spec!r}: bits must be in 1..8")
        return lambda x: bit_depth(x, value, bounds, straight_through=straight_through)
    if name == "median":
        if len(input_shape) != 3 or not 2 <= value <= min(5, min(input_shape[1:]) - 1):
            raise ConfigError(
                f"squeezer {spec!r}: median needs images (C, H, W) and 2 <= K <= 5, K < H, W"
            )
        return lambda x: median_filter(x, value)
    raise ConfigError(f"unknown squeezer {spec!r}; use bits:B or median:K")


@register_detector("squeeze")
class FeatureSqueezing(Detector):
    """Feature-squeezing detector (Xu et al. 2018).

    ``score(x) = max_k || softmax(f(x)) - softmax(f(squeeze_k(x))) ||_1`` in ``[0, 2]``.

    Args:
        model: the classifier to guard.
        squeezers: specs, default ``("bits:1", "median:2")`` (the paper's MNIST setting);
            for natural or textured images the paper uses ``bits:5`` or ``bits:4`` with
            ``median:2``. On 8x8 digits a 2x2 median already changes clean predictions
            (95th-percentile clean score ~1.9 of 2), so use ``("bits:2",)`` there.

    Nothing is learned; call :meth:`calibrate` on clean held-out inputs. One pass of the
    classifier over ``(1 + len(squeezers)) * N`` rows per batch.

    Example:
        >>> det = FeatureSqueezing(clf, squeezers=("bits:1", "median:2"))  # doctest: +SKIP
        >>> det.calibrate(x_clean, fpr=0.05); det.flag(x_adv).float().mean()  # doctest: +SKIP
    """

    def __init__(
        self, model: Classifier, *, squeezers: Sequence[str] = ("bits:1", "median:2")
    ) -> None:
        super().__init__(model)
        if not squeezers:
            raise ConfigError("feature squeezing needs at least one squeezer")
        self.squeezers = [str(s) for s in squeezers]
        self._fns = [parse_squeezer(s, model.bounds, model.input_shape) for s in self.squeezers]

    def bpda(self) -> FeatureSqueezing:
        """A twin with straight-through bit-depth reduction (same scores, same threshold)."""
        twin = FeatureSqueezing(self.model, squeezers=self.squeezers)
        twin._fns = [
            parse_squeezer(s, self.model.bounds, self.model.input_shape, straight_through=True)
            for s in self.squeezers
        ]
        twin.threshold, twin.score_scale = self.threshold, self.score_scale
        twin.calibration = dict(self.calibration)
        return twin

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        n = x.shape[0]
        batch = torch.cat([x, *(fn(x) for fn in self._fns)])  # ((1+K)N, ...)
        logits_all = self.model(batch)
        probs = logits_all.softmax(dim=1).view(1 + len(self._fns), n, -1)
        dist = (probs[1:] - probs[0]).abs().sum(dim=2)  # (K, N)
        return logits_all[:n], dist.amax(dim=0)
