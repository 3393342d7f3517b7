"""Universal, targeted adversarial patch trained with expectation over transformation.

Brown, Mané, Roy, Abadi & Gilmer, "Adversarial Patch" (2017, arXiv:1712.09665): one
small image region, pasted anywhere on any input, makes the classifier answer a chosen
class. Unlike the per-example attacks of this package the patch is *universal* (one
patch for a whole data set) and *unbounded inside its region* (no eps: the threat is the
region's size). Robustness to placement comes from Expectation Over Transformation
(Athalye, Engstrom, Ilyas & Kwok, ICML 2018, "Synthesizing Robust Adversarial
Examples"): each training step pastes the patch at a fresh random position, scale and
rotation, and the patch ascends the expected log-probability of the target class::

    p* = argmax_p  E_{x ~ X, t ~ T} [ log P(target | A(p, x, t)) ]

Placement is a differentiable affine warp (``affine_grid`` + ``grid_sample``), so the
gradient reaches every patch pixel through bilinear interpolation.

Example:
    >>> res = train_patch(WhiteBox(clf), x_train, target_class=8, size=14)  # doctest: +SKIP
    >>> res = evaluate_patch(WhiteBox(clf), res, x_test, y_test)           # doctest: +SKIP
    >>> res.success_rate, res.baseline_rate, res.control_rate              # doctest: +SKIP
    (0.26, 0.0, 0.06)

The numbers are those of the test suite's Fashion-MNIST CNN ("Bag", 14x14 pixels = 25% of
the image, 150 steps): that small CNN is far from translation invariant (a patch fixed
in the top-left corner reaches ~70%), so a patch that must work *anywhere* is much weaker
than on ImageNet models, where Brown et al. report most images flipped by a patch
covering 10% of the image.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from advx.attacks.base import validate_batch
from advx.errors import AccessError, CheckpointError, InputError
from advx.io import atomic_path, atomic_write_text
from advx.jsonio import dumps
from advx.targets import Access, Target


@dataclass(frozen=True)
class Placement:
    """Where a patch goes on each of ``N`` images (pixel units).

    Attributes:
        center: ``(N, 2)`` patch centres as ``(x, y)`` in pixels from the top-left corner.
        side: ``(N,)`` side length of the pasted patch in pixels.
        angle: ``(N,)`` rotation in radians (clockwise on screen, whose y axis points down).
    """

    center: Tensor
    side: Tensor
    angle: Tensor


def sample_placements(
    n: int,
    image_hw: tuple[int, int],
    size: int,
    *,
    scale: tuple[float, float] = (0.8, 1.2),
    max_rotation: float = 20.0,
    generator: torch.Generator | None = None,
) -> Placement:
    """Random placements for ``n`` images of ``image_hw = (H, W)`` pixels (EOT's ``T``).

    The side is ``size * U(scale)``, the angle ``U(-max_rotation, max_rotation)`` degrees,
    and the centre uniform over positions where the unrotated patch lies inside the image.
    """
    g = generator or torch.default_generator
    h, w = image_hw
    side = size * (scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=g))
    angle = math.radians(max_rotation) * (2 * torch.rand(n, generator=g) - 1)
    half = side / 2
    u = torch.rand(n, 2, generator=g)
    free = (torch.tensor([w, h]) - side.unsqueeze(1)).clamp_min(0)  # (N, 2) room to move
    center = torch.minimum(half.unsqueeze(1), torch.tensor([w / 2, h / 2])) + u * free
    return Placement(center=center, side=side, angle=angle)


def apply_patch(x: Tensor, patch: Tensor, placement: Placement) -> Tensor:
    """Paste ``patch`` ``(C, S, S)`` onto images ``x`` ``(N, C, H, W)`` per ``placement``.

    Differentiable in ``patch`` (and ``x``). The warped patch is alpha-blended with a
    warped all-ones mask, so edges are anti-aliased and the output stays inside the
    bounds of ``x`` and ``patch`` (a convex combination of the two).
    """
    n, c, h, w = x.shape
    cos, sin = placement.angle.cos(), placement.angle.sin()
    # affine_grid maps output (image) coords u in [-1,1]^2 to input (patch) coords v:
    # v = (1/side) * R(-angle) * diag(W, H) * (u - c), all in normalised units.
    rot_inv = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
    a = rot_inv * torch.tensor([w, h], dtype=x.dtype) / placement.side.view(n, 1, 1)  # (N,2,2)
    c_norm = 2 * placement.center / torch.tensor([w, h], dtype=x.dtype) - 1  # (N, 2)
    theta = torch.cat([a, -(a @ c_norm.unsqueeze(-1))], dim=2).to(x.dtype)  # (N, 2, 3)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    s = patch.shape[-1]
    stacked = torch.cat([patch, torch.ones(1, s, s, dtype=x.dtype)], 0)  # patch + mask
    warped = F.grid_sample(
        stacked.unsqueeze(0).expand(n, -1, -1, -1), grid, align_corners=False
    )  # (N, C+1, H, W), zero outside the patch
    patch_img, mask = warped[:, :c], warped[:, c:]
    return x * (1 - mask) + patch_img


@dataclass(frozen=True)
class PatchResult:
    """A trained patch and, once :func:`evaluate_patch` ran, how well it works.

    Attributes:
        patch: ``(C, size, size)`` patch pixels inside the target's bounds.
        target_class: the class the patch asks for; ``target_name`` its name.
        config: training settings (size, scale, max_rotation, steps, lr, ...).
        seconds: training wall time.
        success_rate: share of held-out images (true label != target) that the model
            classifies as the target with the patch at a random placement.
        baseline_rate: the same share without any patch (the model's own confusion).
        control_rate: the same share with a uniform-noise patch of the same size and
            placements (separates the learned pattern from mere occlusion).
        n_eval: number of held-out images the rates are over (0 before evaluation).
    """

    patch: Tensor
    target_class: int
    target_name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    success_rate: float | None = None
    baseline_rate: float | None = None
    control_rate: float | None = None
    n_eval: int = 0

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``patch.safetensors`` + ``patch.json`` into directory ``path`` (atomically)."""
        from safetensors.torch import save_file

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        meta = {k: getattr(self, k) for k in _META}
        with atomic_path(out / "patch.safetensors") as tmp:
            save_file({"patch": self.patch.detach().contiguous()}, str(tmp))
        atomic_write_text(out / "patch.json", dumps(meta, indent=2))
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PatchResult:
        """Read a patch written by :meth:`save`; :class:`CheckpointError` if damaged."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        p = Path(path)
        try:
            with open(p / "patch.json") as f:
                meta = json.load(f)
            patch = load_file(str(p / "patch.safetensors"))["patch"]
            return cls(patch=patch, **{k: meta[k] for k in _META})
        except (OSError, json.JSONDecodeError, SafetensorError, KeyError, TypeError) as e:
            raise CheckpointError(f"cannot read a patch in {p}: {e}; re-save it") from e


_META = ("target_class", "target_name", "config", "seconds", "success_rate", "baseline_rate",
         "control_rate", "n_eval")  # fmt: skip


def _check_image_target(target: Target, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
    if not isinstance(target, Target) or target.access < Access.GRADIENTS:
        raise AccessError("a patch is trained with gradients: pass a WhiteBox target")
    if len(target.input_shape) != 3:
        raise InputError(
            f"patches need image inputs (C, H, W); this model takes {target.input_shape}"
        )
    return validate_batch(target, x, torch.zeros(len(x), dtype=torch.long) if y is None else y)


def train_patch(
    target: Target,
    x_train: Tensor,
    target_class: int,
    *,
    size: int,
    steps: int = 300,
    batch_size: int = 64,
    lr: float | None = None,
    scale: tuple[float, float] = (0.8, 1.2),
    max_rotation: float = 20.0,
    y_train: Tensor | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> PatchResult:
    """Train a universal targeted patch on ``x_train`` (Brown et al. 2017, with EOT).

    Args:
        target: a :class:`~advx.targets.WhiteBox` over images ``(C, H, W)``.
        x_train: images ``(N, C, H, W)`` inside the target's bounds.
        target_class: the class the patch should make the model answer.
        size: patch side in pixels (e.g. 8 on 28x28 images covers ~8% of the area).
        steps: Adam steps; each draws ``batch_size`` images and fresh placements.
        lr: Adam learning rate; default ``0.05 * (hi - lo)`` of the bounds.
        scale: range of the random side multiplier; ``max_rotation`` in degrees.
        y_train: labels; when given, images of ``target_class`` are left out.
        seed: seeds the initial patch, image draws and placements.
        progress: called as ``progress(step, steps)`` after each step.

    Returns:
        A :class:`PatchResult` (rates are None until :func:`evaluate_patch`).
    """
    x_train, y_all = _check_image_target(target, x_train, y_train)
    c, h, w = target.input_shape
    if not 0 <= target_class < target.num_classes:
        raise InputError(f"target_class must be in [0, {target.num_classes - 1}]")
    if not 1 <= size <= min(h, w):
        raise InputError(f"size must be between 1 and {min(h, w)} pixels, got {size}")
    if steps < 1 or batch_size < 1:
        raise InputError("steps and batch_size must be >= 1")
    if not 0 < scale[0] <= scale[1] or max_rotation < 0:
        raise InputError("scale must be (lo, hi) with 0 < lo <= hi; max_rotation >= 0")
    if y_train is not None:
        x_train = x_train[y_all != target_class]
        if len(x_train) == 0:
            raise InputError("every training image is of target_class; nothing to fool")
    lo, hi = target.bounds
    lr = 0.05 * (hi - lo) if lr is None else lr
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    patch = (lo + (hi - lo) * torch.rand(c, size, size, generator=g)).requires_grad_(True)
    opt = torch.optim.Adam([patch], lr=lr)
    goal = torch.full((batch_size,), target_class, dtype=torch.long)
    with target.attacking():
        for step in range(steps):
            xb = x_train[torch.randint(len(x_train), (batch_size,), generator=g)]
            where = sample_placements(
                batch_size, (h, w), size, scale=scale, max_rotation=max_rotation, generator=g
            )
            # EOT: a Monte-Carlo estimate of E_t[-log P(target | A(p, x, t))]
            loss = F.cross_entropy(target.logits(apply_patch(xb, patch, where)), goal)
            (patch.grad,) = torch.autograd.grad(loss, patch)
            opt.step()
            with torch.no_grad():
                patch.clamp_(lo, hi)
            if progress is not None:
                progress(step + 1, steps)
    config = {"size": size, "steps": steps, "batch_size": batch_size, "lr": lr,
              "scale": list(scale), "max_rotation": max_rotation, "seed": seed}  # fmt: skip
    return PatchResult(
        patch=patch.detach(),
        target_class=int(target_class),
        target_name=target.class_names[target_class],
        config=config,
        seconds=time.perf_counter() - t0,
    )


def evaluate_patch(
    target: Target,
    result: PatchResult,
    x: Tensor,
    y: Tensor,
    *,
    trials: int = 4,
    seed: int = 1,
    batch_size: int = 500,
) -> PatchResult:
    """Measure a patch on held-out images ``x`` ``(N, C, H, W)`` with labels ``y`` ``(N,)``.

    Over the images whose true label is not the target, each gets ``trials`` random
    placements drawn like in training (same scale and rotation ranges). Returns a copy of
    ``result`` with ``success_rate`` (patched), ``baseline_rate`` (no patch) and
    ``control_rate`` (uniform-noise patch, same placements) filled in.
    """
    x, y = _check_image_target(target, x, y)
    if trials < 1:
        raise InputError(f"trials must be >= 1, got {trials}")
    keep = y != result.target_class
    x = x[keep]
    if len(x) == 0:
        raise InputError("every evaluation image is of the target class; nothing to measure")
    c, h, w = target.input_shape
    patch = result.patch.to(x.dtype)
    if tuple(patch.shape[:1]) != (c,) or patch.shape[1] != patch.shape[2]:
        raise InputError(f"patch of shape {tuple(patch.shape)} does not fit images {(c, h, w)}")
    cfg = result.config
    scale = tuple(cfg.get("scale", (1.0, 1.0)))
    lo, hi = target.bounds
    g = torch.Generator().manual_seed(seed)
    noise = lo + (hi - lo) * torch.rand(patch.shape, generator=g)
    hits = {"patch": 0, "control": 0, "baseline": 0}
    with target.attacking(), torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            hits["baseline"] += trials * int((target.labels(xb) == result.target_class).sum())
            for _ in range(trials):
                where = sample_placements(
                    len(xb), (h, w), patch.shape[-1], scale=(scale[0], scale[1]),
                    max_rotation=float(cfg.get("max_rotation", 0.0)), generator=g,
                )  # fmt: skip
                for key, p in (("patch", patch), ("control", noise)):
                    pred = target.labels(apply_patch(xb, p, where))
                    hits[key] += int((pred == result.target_class).sum())
    total = trials * len(x)
    return replace(
        result,
        success_rate=hits["patch"] / total,
        baseline_rate=hits["baseline"] / total,
        control_rate=hits["control"] / total,
        n_eval=len(x),
    )
