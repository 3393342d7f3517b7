"""Chapter 7: reactive defence. A detector network (Metzen et al. 2017) learns to flag
PGD examples and catches nearly all of them at a 5% false-alarm rate; then an adaptive
attack that knows the detector (PGD on the defended system's loss, Carlini & Wagner 2017;
Tramer et al. 2020) walks past it. Both numbers are reported, with what the detector
costs.

Reads ``ctx.artifacts["model"]`` and ``["test"]`` (chapter 1; trained or reused here if
absent). Writes the detector to ``OUT/detectors/binary`` (reused on the next run when the
model is unchanged). Leaves ``ctx.artifacts["detect"]``: the
:class:`~advx.defenses.adaptive.DetectorReport` as a dict.
"""

from __future__ import annotations

from typing import Any

TITLE = "7. Reactive defence: a detector, and the adaptive attack that walks past it"

EPS = 0.1


def model_and_test(ctx: Any) -> tuple[Any, Any]:
    """Chapter 1's model and test split, running chapter 1 (which reuses its
    checkpoint) when this chapter runs alone."""
    if "model" not in ctx.artifacts or "test" not in ctx.artifacts:
        from advx.demo import ch01_train

        ch01_train.run(ctx)
    return ctx.artifacts["model"], ctx.artifacts["test"]


def run(ctx: Any) -> None:
    """Fit (or reuse) a binary detector, then attack it non-adaptively and adaptively."""
    from rich.table import Table

    from advx.data import ImageDataset, load
    from advx.defenses.adaptive import evaluate_detector
    from advx.defenses.detectors import load_detector, train_detector
    from advx.errors import CheckpointError, ConfigError

    model, test = model_and_test(ctx)
    dataset = str(test.name)
    n_fit, n_test, adaptive_steps = (1000, 200, 30) if ctx.quick else (4000, 500, 50)
    det_dir = ctx.out / "detectors" / "binary"
    try:
        det = load_detector(det_dir, model)
        ctx.console.print(f"reusing the detector in {det_dir}")
    except CheckpointError:
        ctx.console.print(
            f"fitting a binary detector on {n_fit} {dataset} training images and their PGD "
            f"versions (eps={EPS:g}), threshold at 5% false alarms"
        )
        train = load(dataset, "train").head(n_fit)
        if not isinstance(train, ImageDataset):
            raise ConfigError(f"chapter 7 needs an image dataset, not {dataset!r}") from None
        det = train_detector(model, train.x, train.y, kind="binary", eps=EPS, seed=ctx.seed)
        det.save(det_dir)
    rep = evaluate_detector(
        model, det, test.x[:n_test], test.y[:n_test], eps=EPS, steps=20,
        adaptive_steps=adaptive_steps, seed=ctx.seed,
    )  # fmt: skip

    def pct(v: float | None) -> str:
        return "—" if v is None or v != v else f"{100 * v:.1f}%"

    table = Table(title=f"binary detector on the {dataset} model, linf eps={EPS:g}, {rep.n} images")
    for col in ("inputs", "fool the model", "flagged", "defended accuracy"):
        table.add_column(col, justify="left" if col == "inputs" else "right")
    table.add_row(
        "clean", "—", f"{pct(rep.clean_false_positive_rate)} (false alarms)",
        pct(rep.defended_clean_accuracy),
    )  # fmt: skip
    na, ad = rep.non_adaptive, rep.adaptive
    table.add_row("PGD-20 on the bare model", pct(na.fooled_model), pct(na.detection_rate),
                  pct(na.defended_accuracy))  # fmt: skip
    if ad is not None:
        table.add_row(f"adaptive PGD-{adaptive_steps} (knows the detector)",
                      pct(ad.fooled_model), pct(ad.detection_rate), pct(ad.defended_accuracy))  # fmt: skip
    ctx.console.print(table)
    c = rep.cost
    ctx.console.print(
        f"The detector flags {pct(na.detection_rate)} of the PGD examples that fool the model. "
        f"An attacker who differentiates through it gets {pct(ad.detection_rate if ad else None)} "
        f"flagged, and the defended system's accuracy under attack falls from "
        f"{pct(na.defended_accuracy)} to {pct(ad.defended_accuracy if ad else None)}. "
        f"Cost: {c['detector_parameters']:,} more parameters and {c['detector_buffers']:,} "
        f"stored statistics (the model has {c['model_parameters']:,} parameters) and "
        f"{c['latency_ratio']:.1f}x the latency per batch."
    )
    from advx.report.story import save_chapter

    save_chapter(ctx.out, "ch07", {"dataset": dataset, **rep.to_json()})
    ctx.artifacts["detect"] = rep.to_json()
