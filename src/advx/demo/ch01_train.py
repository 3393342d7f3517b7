"""Chapter 1: train a classifier. It is accurate.

Trains the demo CNN on Fashion-MNIST (digits with ``--quick``), or reuses the checkpoint
under ``OUT/models/`` when it was trained with the same architecture, data, epochs and
seed. Prints the test accuracy and writes ``OUT/ch01.html``: a grid of test images with
their true and predicted labels.

Leaves in ``ctx.artifacts``: ``model_dir`` (the checkpoint directory), ``model`` (the
loaded :class:`~advx.models.adapter.Classifier`, eval mode), ``test`` (the test split,
an :class:`~advx.data.ImageDataset`) and ``clean_accuracy``.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

TITLE = "1. Train a classifier"

ARCH = "cnn"
GRID = 40  # images shown on the page


def reusable(model_dir: Path, *, arch: str, dataset: str, epochs: int, seed: int) -> bool:
    """True if ``model_dir`` holds an intact checkpoint of ``arch`` trained on ``dataset``
    for ``epochs`` epochs with ``seed`` (so the demo need not train again)."""
    from advx.errors import CheckpointError
    from advx.models import read_info, verify

    try:
        info = read_info(model_dir)
        verify(model_dir, info)
    except CheckpointError:
        return False
    training = info.get("training") or {}
    return (
        info.get("arch") == arch
        and info.get("dataset") == dataset
        and training.get("epochs") == epochs
        and info.get("seed") == seed
    )


def png_data_uri(img: Tensor, *, bounds: tuple[float, float], scale: int) -> str:
    """A ``data:image/png;base64,...`` URI of one image ``(C, H, W)`` in ``bounds``,
    enlarged ``scale`` times (nearest neighbour, so pixels stay crisp)."""
    from PIL import Image

    lo, hi = bounds
    a = ((img.detach().cpu().float() - lo) / (hi - lo)).clamp(0, 1).mul(255).round().to(torch.uint8)
    arr = a[0].numpy() if a.shape[0] == 1 else a.permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr)
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_page(
    *, title: str, summary: str, x: Tensor, y: Tensor, pred: Tensor, conf: Tensor,
    class_names: tuple[str, ...], bounds: tuple[float, float],
) -> str:  # fmt: skip
    """The HTML of the chapter page: a summary line and a grid of images with their true
    and predicted labels (mistakes outlined in red)."""
    scale = max(1, 96 // max(x.shape[-1], 1))
    cells = []
    for i in range(len(y)):
        ok = bool(pred[i] == y[i])
        uri = png_data_uri(x[i], bounds=bounds, scale=scale)
        true_name = html.escape(class_names[int(y[i])])
        pred_name = html.escape(class_names[int(pred[i])])
        cells.append(
            f'<figure class="{"ok" if ok else "bad"}"><img src="{uri}" alt="{true_name}">'
            f"<figcaption>true: {true_name}<br>pred: {pred_name} "
            f"({100 * float(conf[i]):.0f}%)</figcaption></figure>"
        )
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        ".grid{display:flex;flex-wrap:wrap;gap:10px}"
        "figure{margin:0;padding:4px;border:2px solid #ddd;border-radius:4px;text-align:center;"
        "font-size:12px;width:110px}figure.bad{border-color:#d33}"
        "img{image-rendering:pixelated;width:96px;height:96px}"
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{style}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(summary)}</p>"
        f'<div class="grid">{"".join(cells)}</div></body></html>\n'
    )


def _save_for_report(
    ctx: Any, model: Any, test: Any, shown: Any, pred: Tensor, acc: float, dataset: str,
    epochs: int,
) -> None:  # fmt: skip
    """``OUT/ch01.json`` and ``OUT/ch01_grid.png`` (16 test images, predicted classes)."""
    from advx.report.figures import image_grid
    from advx.report.story import save_chapter

    names = tuple(model.class_names)
    k = min(16, len(shown))
    titles = [
        names[int(p)] if int(p) == int(t) else f"{names[int(p)]} ✗ {names[int(t)]}"
        for p, t in zip(pred[:k], shown.y[:k], strict=True)
    ]
    image_grid(shown.x[:k], path=ctx.out / "ch01_grid.png", titles=titles, ncols=8,
               bounds=model.bounds)  # fmt: skip
    save_chapter(ctx.out, "ch01", {
        "arch": ARCH, "dataset": dataset, "epochs": epochs, "test_accuracy": acc,
        "n_test": len(test), "parameters": model.num_parameters(),
    })  # fmt: skip


def run(ctx: Any) -> None:
    """Train (or reuse) the demo model and show what it predicts."""
    from advx.cli.train import training_progress
    from advx.data import ImageDataset
    from advx.data import load as load_data
    from advx.errors import DataError
    from advx.io import atomic_write_text
    from advx.models import load
    from advx.training import default_config, evaluate, train

    dataset = "digits" if ctx.quick else "fashion-mnist"
    config = default_config(ARCH, dataset, seed=ctx.seed)
    model_dir = ctx.out / "models" / f"{dataset}-{ARCH}"
    if reusable(model_dir, arch=ARCH, dataset=dataset, epochs=config.epochs, seed=ctx.seed):
        ctx.console.print(f"reusing {model_dir} (same architecture, data, epochs and seed)")
    else:
        ctx.console.print(
            f"training a {ARCH} on {dataset} for {config.epochs} epochs (seed {ctx.seed})"
        )
        with training_progress(ctx.console, ARCH, kind="torch") as on_step:
            train(ARCH, dataset, config=config, out=model_dir, on_step=on_step)
    model = load(model_dir)
    test = load_data(dataset, "test")
    if not isinstance(test, ImageDataset):
        raise DataError(f"{dataset} is not an image dataset")
    acc = evaluate(model, test)
    ctx.console.print(
        f"[bold]{ARCH}[/bold] on {dataset}: test accuracy [bold]{100 * acc:.2f}%[/bold] "
        f"on {len(test)} images ({model.num_parameters():,} parameters)"
    )

    shown = test.head(GRID)
    with model.frozen_eval(), torch.no_grad():
        probs = model(shown.x).softmax(dim=1)
    conf, pred = probs.max(dim=1)
    page = ctx.out / "ch01.html"
    atomic_write_text(
        page,
        render_page(
            title=f"Chapter 1: a {ARCH} trained on {dataset}",
            summary=(
                f"Test accuracy {100 * acc:.2f}% on {len(test)} images. The first {len(shown)} "
                "test images with true and predicted labels (mistakes in red)."
            ),
            x=shown.x,
            y=shown.y,
            pred=pred,
            conf=conf,
            class_names=tuple(model.class_names),
            bounds=model.bounds,
        ),
    )
    ctx.console.print(f"[dim]page: {page}[/dim]")
    _save_for_report(ctx, model, test, shown, pred, acc, dataset, config.epochs)
    ctx.artifacts["model_dir"] = model_dir
    ctx.artifacts["model"] = model
    ctx.artifacts["test"] = test
    ctx.artifacts["clean_accuracy"] = acc
