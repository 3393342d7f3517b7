"""Figures of adversarial examples (PNG via matplotlib's Agg renderer, imported lazily).

:func:`adversarial_figure` draws, for the most convincing examples of an attack, one row
``original | perturbation (amplified) | adversarial`` with the predicted class and its
confidence over each image, the layout of Goodfellow et al.'s panda figure.
:func:`image_grid` lays out any batch of images with titles.

Figures are drawn on a standalone ``matplotlib.figure.Figure`` (no pyplot state, no
backend switching), so they are safe to make from library code, threads and servers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from advx.attacks.result import AttackResult, Status
from advx.errors import InputError

_NICE = (1, 2, 5)


def select_examples(result: AttackResult, k: int = 6) -> Tensor:
    """Indices of the ``k`` most convincing examples of ``result``.

    Successful examples come first, ordered by smallest perturbation (``distance``) and,
    among equal distances, by highest adversarial confidence. When fewer than ``k``
    succeeded, failed examples (the attacked ones that resisted) fill the rest; skipped
    examples are never shown. Returns int64 ``(min(k, #attacked),)``.
    """
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    conf = torch.nan_to_num(result.conf_adv.float(), nan=0.0)
    chosen: list[Tensor] = []
    for status in (Status.SUCCEEDED, Status.FAILED):
        idx = (result.status == int(status)).nonzero().flatten()
        if idx.numel():
            # lexicographic (distance asc, confidence desc): stable sorts, minor key first
            idx = idx[conf[idx].argsort(descending=True, stable=True)]
            idx = idx[result.distance[idx].argsort(stable=True)]
            chosen.append(idx)
    if not chosen:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat(chosen)[:k]


def amplification(delta: Tensor, bounds: tuple[float, float]) -> float:
    """The largest "nice" factor (1, 2, 5, 10, 20, ...) that keeps ``delta`` amplified
    within half the input range, so mid-grey means "unchanged" and nothing clips."""
    m = float(delta.abs().max()) if delta.numel() else 0.0
    half = 0.5 * (bounds[1] - bounds[0])
    if m <= 0 or m >= half:
        return 1.0
    best = 1.0
    for p in range(0, int(math.log10(half / m)) + 2):
        for n in _NICE:
            f = n * 10.0**p
            if f * m <= half * (1 + 1e-6):  # float32 deltas such as 0.1 are inexact
                best = max(best, f)
    return best


def _to_display(img: Tensor, bounds: tuple[float, float]) -> tuple[Any, str | None]:
    """One image ``(C, H, W)``/``(H, W)`` as an array in [0, 1] for ``imshow``, plus cmap."""
    lo, hi = bounds
    img = ((img.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    if img.dim() == 3 and img.shape[0] == 1:
        img = img[0]
    if img.dim() == 2:
        return img.numpy(), "gray"
    if img.dim() == 3 and img.shape[0] == 3:
        return img.permute(1, 2, 0).numpy(), None
    raise InputError(
        f"can only draw images of shape (1, H, W), (3, H, W) or (H, W); got {tuple(img.shape)}"
    )


def _label(name: str, conf: float) -> str:
    return name if math.isnan(conf) else f"{name} ({100 * conf:.0f}%)"


def _new_figure(rows: int, cols: int, cell: float) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(cols * cell, rows * cell + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def _save(fig: Any, path: str | os.PathLike[str], dpi: int) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out


def adversarial_figure(
    x: Tensor,
    result: AttackResult,
    class_names: Sequence[str] | None = None,
    *,
    k: int = 6,
    path: str | os.PathLike[str],
    indices: Tensor | Sequence[int] | None = None,
    title: str | None = None,
    dpi: int = 120,
    amplify: float | None = None,
) -> Path:
    """Draw ``original | perturbation | adversarial`` rows for ``k`` examples of ``result``.

    Args:
        x: the clean inputs ``(N, C, H, W)`` the attack ran on (``result`` keeps only
            ``x_adv``).
        result: an :class:`~advx.attacks.result.AttackResult` over the same ``N`` inputs.
        class_names: one name per class (default: the class indices).
        k: number of rows; examples are chosen by :func:`select_examples` unless
            ``indices`` names them.
        path: PNG file to write (parent directories are created).
        title: figure title; default names the attack, norm and eps.
        dpi: resolution.
        amplify: the factor the perturbation is multiplied by for display (default: the
            largest "nice" factor that does not clip, see :func:`amplification`).

    The perturbation ``x_adv - x`` is drawn as mid-grey plus the perturbation amplified
    by one factor for all rows, written in its title, e.g. ``perturbation ×5``. Titles give the predicted class and its confidence; the
    adversarial title is red when the attack succeeded. Returns the written path.

    Example:
        >>> r = create("fgsm", eps=0.1)(WhiteBox(clf), x, y)               # doctest: +SKIP
        >>> adversarial_figure(x, r, clf.class_names, path="examples.png")  # doctest: +SKIP
    """
    if x.shape != result.x_adv.shape:
        raise InputError(
            f"x has shape {tuple(x.shape)} but the result's inputs have "
            f"{tuple(result.x_adv.shape)}; pass the clean inputs the attack ran on"
        )
    idx = select_examples(result, k) if indices is None else torch.as_tensor(indices).long()
    if idx.numel() == 0:
        raise InputError("no attacked example to draw: every example was skipped")
    bounds = result.threat.bounds
    delta = (result.x_adv[idx] - x[idx]).float()
    if amplify is not None and not (math.isfinite(amplify) and amplify > 0):
        raise InputError(f"amplify must be a positive number, got {amplify}")
    amp = amplification(delta, bounds) if amplify is None else float(amplify)
    mid = 0.5 * (bounds[0] + bounds[1])
    given = list(class_names) if class_names else []

    def name(c: Tensor) -> str:
        return given[int(c)] if int(c) < len(given) else str(int(c))

    fig, axes = _new_figure(len(idx), 3, 2.0)
    norm_sym = {"linf": "∞", "l2": "2", "l1": "1", "l0": "0"}.get(result.threat.norm, "")
    for row, i in enumerate(idx.tolist()):
        orig, ocm = _to_display(x[i], bounds)
        pert, pcm = _to_display(mid + amp * (result.x_adv[i] - x[i]), bounds)
        adv, acm = _to_display(result.x_adv[i], bounds)
        ax0, ax1, ax2 = axes[row]
        ax0.imshow(orig, cmap=ocm, vmin=0, vmax=1, interpolation="nearest")
        ax1.imshow(pert, cmap=pcm, vmin=0, vmax=1, interpolation="nearest")
        ax2.imshow(adv, cmap=acm, vmin=0, vmax=1, interpolation="nearest")
        ok = bool(result.status[i] == int(Status.SUCCEEDED))
        ax0.set_title(_label(name(result.pred_clean[i]), float(result.conf_clean[i])), fontsize=9)
        d = float(result.distance[i])
        ax1.set_title(f"perturbation ×{amp:g}\n‖δ‖{norm_sym}={d:.3g}", fontsize=8)
        adv_title = _label(name(result.pred_adv[i]), float(result.conf_adv[i]))
        if result.targets is not None:
            adv_title += f"\n(target {name(result.targets[i])})"
        ax2.set_title(adv_title, fontsize=9, color="crimson" if ok else "black")
        ax0.set_ylabel(f"true: {name(result.y[i])}", fontsize=8)
    fig.suptitle(
        title or f"{result.attack or 'attack'}  {result.threat.norm}  eps={result.eps:g}",
        fontsize=10,
    )
    return _save(fig, path, dpi)


def image_grid(
    images: Tensor,
    *,
    path: str | os.PathLike[str],
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    bounds: tuple[float, float] = (0.0, 1.0),
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Lay out ``images`` ``(N, C, H, W)`` (C = 1 or 3) in a grid of ``ncols`` columns.

    Args:
        images: the images, with values in ``bounds``.
        path: PNG file to write.
        titles: one short title per image (optional).
        ncols: columns; rows follow.
        bounds: value range mapped to black..white.
        title: figure title.

    Example:
        >>> image_grid(x[:16], titles=[names[i] for i in y[:16]], path="grid.png")  # doctest: +SKIP
    """
    n = images.shape[0]
    if n == 0:
        raise InputError("image_grid needs at least one image")
    if titles is not None and len(titles) != n:
        raise InputError(f"got {len(titles)} titles for {n} images")
    if ncols < 1:
        raise InputError(f"ncols must be >= 1, got {ncols}")
    cols = min(ncols, n)
    rows = math.ceil(n / cols)
    fig, axes = _new_figure(rows, cols, 1.5)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        img, cmap = _to_display(images[i], bounds)
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path, dpi)


EXAMPLES_FILE = "examples.safetensors"


def save_examples(
    x: Tensor, result: AttackResult, run_dir: str | os.PathLike[str], *, k: int = 8
) -> Path:
    """Keep what an example figure needs next to a saved result: the clean inputs of the
    ``k`` examples :func:`select_examples` shows (an :class:`AttackResult` keeps only the
    adversarial ones), as ``run_dir/examples.safetensors`` with tensors ``index`` (int64
    ``(k,)``) and ``x`` (``(k, ...)``). A report then redraws the figure, with any
    amplification, without the data set and without running anything.

    Returns the written path.
    """
    from safetensors.torch import save_file

    if x.shape != result.x_adv.shape:
        raise InputError(
            f"x has shape {tuple(x.shape)} but the result's inputs have "
            f"{tuple(result.x_adv.shape)}; pass the clean inputs the attack ran on"
        )
    idx = select_examples(result, k)
    out = Path(run_dir) / EXAMPLES_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    save_file({"index": idx.contiguous(), "x": x[idx].detach().cpu().contiguous()}, str(tmp))
    tmp.replace(out)
    return out
