"""Chapter 8: proactive defence. Adversarial training (FGSM with a random start, Wong,
Rice & Kolter 2020) buys robust accuracy; its effect on clean accuracy is measured next to
the standard model, not assumed.

Digits with ``--quick`` (10 epochs); Fashion-MNIST otherwise (one epoch, a couple of
minutes on a free machine; the checkpoint under ``OUT/models/`` is reused when it matches).
Reads ``ctx.artifacts["model"]``/``["test"]`` (chapter 1). Leaves
``ctx.artifacts["advtrain"]``: the checkpoint directory and both models' clean and PGD-20
accuracy.
"""

from __future__ import annotations

import math
from typing import Any, cast

TITLE = "8. Proactive defence: adversarial training"

EPS = 0.1
ADV = "fgsm-rs"


#: the eps values of the robust-accuracy curve (PGD-20), as multiples of EPS
SWEEP = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def _robust(model: Any, x: Any, y: Any, seed: int) -> list[float]:
    """PGD-20 accuracy at each eps of ``SWEEP`` (one sweep call)."""
    from advx.attacks import SweepResult, create
    from advx.metrics import robust_accuracy
    from advx.targets import WhiteBox

    pgd = create("pgd", eps=[EPS * m for m in SWEEP], steps=20, seed=seed)
    return [robust_accuracy(r) for r in cast(SweepResult, pgd(WhiteBox(model), x, y))]


def run(ctx: Any) -> None:
    """Train (or reuse) an FGSM-RS model and compare it with chapter 1's."""
    from rich.table import Table

    from advx.cli.train import training_progress
    from advx.defenses.adversarial_training import adversarial_train, create_adversary
    from advx.demo.ch01_train import ARCH, reusable
    from advx.demo.ch07_detect import model_and_test
    from advx.models import load, read_info
    from advx.training import default_config, evaluate

    standard, test = model_and_test(ctx)
    dataset = str(test.name)
    epochs = 10 if ctx.quick else 1
    config = default_config(ARCH, dataset, epochs=epochs, seed=ctx.seed)
    model_dir = ctx.out / "models" / f"{dataset}-{ARCH}-{ADV}"
    if reusable(model_dir, arch=ARCH, dataset=dataset, epochs=epochs, seed=ctx.seed) and (
        read_info(model_dir).get("adversarial", {}).get("eps") == EPS
    ):
        ctx.console.print(f"reusing {model_dir}")
    else:
        ctx.console.print(
            f"adversarial training: {ARCH} on {dataset}, {ADV} at eps={EPS:g}, {epochs} epoch(s)"
        )
        with training_progress(ctx.console, f"{ARCH}+{ADV}", kind="torch") as on_step:
            adversarial_train(
                ARCH, dataset, adversary=create_adversary(ADV, eps=EPS), config=config,
                out=model_dir, on_step=on_step,
                on_check=lambda r: ctx.console.print(
                    f"  epoch {r['epoch']}: held-out clean {r['clean_accuracy']:.1%}, "
                    f"PGD {r['pgd_accuracy']:.1%}"
                ),
            )  # fmt: skip
    robust_model = load(model_dir)
    n = 200 if ctx.quick else 500
    x, y = test.x[:n], test.y[:n]
    rows: dict[str, dict[str, Any]] = {}
    for label, m in (("standard", standard), (f"adversarial ({ADV})", robust_model)):
        curve = _robust(m, x, y, ctx.seed)
        rows[label] = {"clean": evaluate(m, test), "pgd20": curve[SWEEP.index(1.0)], "curve": curve}
    table = Table(title=f"{dataset}: standard vs adversarially trained {ARCH}, linf eps={EPS:g}")
    for col in ("model", "clean accuracy", f"PGD-20 accuracy ({n} images)"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for label, r in rows.items():
        table.add_row(label, f"{100 * r['clean']:.2f}%", f"{100 * r['pgd20']:.1f}%")
    ctx.console.print(table)
    std, adv = rows["standard"], rows[f"adversarial ({ADV})"]
    delta = 100 * (adv["clean"] - std["clean"])
    p = (adv["clean"] + std["clean"]) / 2
    noise = 200 * math.sqrt(2 * p * (1 - p) / len(test))  # ~2 standard errors of a difference
    verdict = (
        "within noise at this test size"
        if abs(delta) <= noise
        else ("adversarial training helped it" if delta > 0 else "robustness cost accuracy")
    )
    ctx.console.print(
        f"Robust accuracy goes from {100 * std['pgd20']:.1f}% to {100 * adv['pgd20']:.1f}%; "
        f"clean accuracy changes by {delta:+.2f} points (±{noise:.2f}: {verdict})."
    )
    from advx.report.story import save_chapter

    save_chapter(ctx.out, "ch08", {
        "dataset": dataset, "arch": ARCH, "adv": ADV, "eps": EPS, "epochs": epochs, "n": n,
        "verdict": verdict,
        "models": {"standard": {"label": "standard", **std},
                   "adversarial": {"label": f"adversarial ({ADV})", **adv}},
        "checks": read_info(model_dir).get("overfit_checks") or [],
        "sweep": {"eps": [EPS * m for m in SWEEP],
                  "accuracy": {k: r["curve"] for k, r in rows.items()}},
    })  # fmt: skip
    ctx.artifacts["advtrain"] = {"model_dir": model_dir, "eps": EPS, "adv": ADV, **rows}
