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
from advx.io import atomic_path

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
    fmt = out.suffix[1:].lower() or "png"  # the temporary file's name does not say
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt)
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
    with atomic_path(out) as tmp:  # with the umask's mode (safetensors alone makes 0600)
        save_file({"index": idx.contiguous(), "x": x[idx].detach().cpu().contiguous()}, str(tmp))
    return out


def triptych_with_top5(
    x: Tensor,
    x_adv: Tensor,
    probs_before: Tensor,
    probs_after: Tensor,
    class_names: Sequence[str] | None = None,
    *,
    amplify: float | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    target: int | None = None,
    k: int = 5,
    title: str | None = None,
) -> Any:
    """One adversarial example as the story tells it: ``original | perturbation
    (amplified) | adversarial``, with the model's top-``k`` probabilities before (under the
    original) and after (under the adversarial) as horizontal bars.

    Args:
        x, x_adv: the clean and adversarial image, ``(C, H, W)`` or ``(1, C, H, W)``
            (C = 1 or 3), values in ``bounds``.
        probs_before, probs_after: class probabilities ``(num_classes,)`` (or
            ``(1, num_classes)``) on ``x`` and on ``x_adv``.
        class_names: one name per class (default: the class indices).
        amplify: factor applied to ``x_adv - x`` around mid-grey in the middle panel;
            default :func:`amplification` (the largest 1-2-5 factor that does not clip).
            The factor is written over the panel.
        bounds: the input domain ``(lo, hi)``.
        target: a class to highlight in both bar charts (the targeted class).
        k: bars per chart.
        title: figure title.

    Returns:
        A ``matplotlib.figure.Figure`` (Agg, no pyplot state); save it with
        ``fig.savefig(path)``.

    Example:
        >>> fig = triptych_with_top5(x[0], r.x_adv[0], clf(x[:1]).softmax(1)[0],
        ...                          clf(r.x_adv[:1]).softmax(1)[0], clf.class_names,
        ...                          target=9)                   # doctest: +SKIP
        >>> fig.savefig("ostrich.png")                           # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    img, adv = x.detach().float().cpu(), x_adv.detach().float().cpu()
    if img.dim() == 4 and img.shape[0] == 1:
        img = img[0]
    if adv.dim() == 4 and adv.shape[0] == 1:
        adv = adv[0]
    if img.shape != adv.shape:
        raise InputError(f"x {tuple(img.shape)} and x_adv {tuple(adv.shape)} differ in shape")
    pb = probs_before.detach().float().cpu().flatten()
    pa = probs_after.detach().float().cpu().flatten()
    if pb.shape != pa.shape or pb.numel() < 2:
        raise InputError(
            f"probs_before {tuple(probs_before.shape)} and probs_after "
            f"{tuple(probs_after.shape)} must be the same (num_classes,) vector"
        )
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    if amplify is not None and not amplify > 0:
        raise InputError(f"amplify must be > 0, got {amplify}")
    names = list(class_names) if class_names else [str(i) for i in range(pb.numel())]
    if len(names) != pb.numel():
        raise InputError(f"{len(names)} class names for {pb.numel()} probabilities")
    delta = adv - img
    amp = amplification(delta, bounds) if amplify is None else float(amplify)
    mid = 0.5 * (bounds[0] + bounds[1])
    width = bounds[1] - bounds[0]

    fig = Figure(figsize=(10.5, 6.2), layout="constrained")
    grid = fig.add_gridspec(2, 3, height_ratios=(3.2, 1.6))
    linf = float(delta.abs().max())
    over_255 = f" = {linf * 255 / width:.2g}/255" if width > 0 else ""
    panels = (
        (img, f"original: {names[int(pb.argmax())]} ({100 * float(pb.max()):.0f}%)", "black"),
        (mid + amp * delta, f"perturbation ×{amp:g}\n‖δ‖∞ = {linf:.3g}{over_255}", "black"),
        (adv, f"adversarial: {names[int(pa.argmax())]} ({100 * float(pa.max()):.0f}%)",
         "crimson" if target is not None and int(pa.argmax()) == target else "black"),
    )  # fmt: skip
    for col, (im, label, color) in enumerate(panels):
        ax = fig.add_subplot(grid[0, col])
        arr, cmap = _to_display(im, bounds)
        ax.imshow(arr, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(label, fontsize=10, color=color)

    def bars(col: int, probs: Tensor, heading: str) -> None:
        ax = fig.add_subplot(grid[1, col])
        top = probs.topk(min(k, probs.numel()))
        idx = top.indices.tolist()[::-1]  # largest at the top
        vals = [100 * v for v in top.values.tolist()[::-1]]
        colors = ["crimson" if target is not None and i == target else "tab:blue" for i in idx]
        ax.barh(range(len(idx)), vals, color=colors)
        ax.set_yticks(range(len(idx)), [names[i] for i in idx], fontsize=8)
        ax.set_xlim(0, 100)
        ax.set_xlabel("probability (%)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        for j, v in enumerate(vals):
            ax.text(min(v + 1.5, 80), j, f"{v:.1f}%", va="center", fontsize=7)
        ax.set_title(heading, fontsize=9)

    bars(0, pb, f"top-{k} before")
    note = fig.add_subplot(grid[1, 1])
    note.set_axis_off()
    if target is not None:
        note.text(
            0.5, 0.5,
            f"target: {names[target]}\nbefore {100 * float(pb[target]):.2g}% → "
            f"after {100 * float(pa[target]):.1f}%",
            ha="center", va="center", fontsize=10,
        )  # fmt: skip
    bars(2, pa, f"top-{k} after")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
