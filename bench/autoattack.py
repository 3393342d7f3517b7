"""`advx eval --suite standard` against torchattacks' AutoAttack, and FGSM on a linear model.

1. AutoAttack (Croce & Hein, ICML 2020) — the reference robustness evaluation. Both run on
   the same model (the zoo CNN trained on Fashion-MNIST, cached in
   ``.cache/bench/cnn-fashion-mnist``; ``--model DIR`` for another checkpoint, e.g. an
   adversarially trained one), the same first ``--n`` test images and the same eps:

   * ``advx``: :func:`advx.evaluate.evaluate` with the ``standard`` suite (APGD-CE,
     APGD-T, FAB when installed, Square-5000), red-flag probe off;
   * ``torchattacks``: ``torchattacks.AutoAttack(version="standard")`` (APGD-CE, APGD-T,
     FAB-T, Square-5000).

   Robust accuracy is recomputed from each side's own outputs. Targets: advx's robust
   accuracy <= AutoAttack's + 0.5 percentage points (at least as strong), and advx's wall
   time <= 0.5x AutoAttack's.

2. Goodfellow, Shlens & Szegedy (ICLR 2015) report that FGSM with eps=0.25 makes softmax
   regression on MNIST err on 99.9% of the test set (mean confidence 79.3%). The same
   measurement on advx's ``linear`` zoo model — on Fashion-MNIST and digits, not MNIST
   (advx ships no MNIST) — is printed next to the paper's numbers.

Run: ``.venv/bin/python bench/autoattack.py --threads 1`` (torchattacks 3.5.1 is in .venv).
Writes ``bench/results/autoattack.json``. Timings are wall-clock on a shared machine; the
JSON records the thread count and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench"


def zoo_model(arch: str, dataset: str, path: Path | None = None) -> Any:
    """A zoo model trained with the registry's defaults, cached on disk."""
    from advx import models, training

    path = path or CACHE / f"{arch}-{dataset}"
    if not (path / "model.json").exists():
        print(f"training {arch} on {dataset} into {path} (once)")
        res = training.train(arch, dataset, out=path)
        print(training.describe(res))
    return models.load(path)


def robust_accuracy(model: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def compare(model: Any, x: torch.Tensor, y: torch.Tensor, eps: float) -> dict[str, Any]:
    """advx's standard suite vs torchattacks' AutoAttack at one eps."""
    import torchattacks

    from advx.evaluate import evaluate
    from advx.targets import WhiteBox

    model.eval()
    t0 = time.perf_counter()
    # one batch, like AutoAttack gets the whole tensor (per-iteration overheads paid once)
    rep = evaluate(WhiteBox(model), (x, y), eps=eps, suite="standard", probe=0, batch_size=len(y))
    t_advx = time.perf_counter() - t0
    ours = rep.robust_accuracy[eps]

    t0 = time.perf_counter()
    aa = torchattacks.AutoAttack(
        model, norm="Linf", eps=eps, version="standard", n_classes=10, seed=0
    )
    x_aa = aa(x, y)
    t_aa = time.perf_counter() - t0
    theirs = robust_accuracy(model, x_aa, y)
    return {
        "eps": eps,
        "n": len(y),
        "clean_accuracy": rep.clean_accuracy,
        "advx": {
            "robust_accuracy": ours,
            "seconds": round(t_advx, 2),
            "per_attack": {k: v[eps] for k, v in rep.per_attack.items()},
            "attack_seconds": {k: v[eps]["seconds"] for k, v in rep.details.items()},
            "skipped": [s["label"] for s in rep.steps if not s["available"]],
        },
        "autoattack": {"robust_accuracy": theirs, "seconds": round(t_aa, 2)},
        "gap_pp": round(100 * (ours - theirs), 2),
        "time_ratio": round(t_advx / t_aa, 3),
        "as_strong": ours <= theirs + 0.005,
        "fast_enough": t_advx <= 0.5 * t_aa,
    }


def goodfellow(dataset: str, n: int | None) -> dict[str, Any]:
    """FGSM eps=0.25 on the zoo's linear model: error rate and mean confidence on errors."""
    from advx.attacks import create
    from advx.data import load
    from advx.targets import WhiteBox

    model = zoo_model("linear", dataset).eval()
    test: Any = load(dataset, "test")
    x, y = (test.x, test.y) if n is None else (test.x[:n], test.y[:n])
    r = create("fgsm", eps=0.25)(WhiteBox(model), x, y)
    wrong = r.pred_adv != r.y
    with torch.no_grad():
        probs = model(r.x_adv).softmax(1)
    conf = probs.max(1).values[wrong]
    return {
        "dataset": dataset,
        "n": len(y),
        "clean_error": float((r.pred_clean != r.y).float().mean()),
        "fgsm_error": float(wrong.float().mean()),
        "mean_confidence_on_errors": float(conf.mean()) if conf.numel() else None,
        "paper": {"dataset": "MNIST", "fgsm_error": 0.999, "mean_confidence_on_errors": 0.793},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="test images (first N)")
    ap.add_argument(
        "--eps", type=float, action="append", help="linf budget(s); default 0.1 and 0.03"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--model", type=Path, default=None, help="model directory (default zoo CNN)")
    ap.add_argument("--skip-autoattack", action="store_true", help="only the Goodfellow part")
    ap.add_argument("--skip-goodfellow", action="store_true", help="only the AutoAttack part")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "autoattack.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from advx.data import load

    result: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "torch": torch.__version__,
    }
    if not args.skip_autoattack:
        model = zoo_model("cnn", "fashion-mnist", args.model)
        test: Any = load("fashion-mnist", "test")
        x, y = test.x[: args.n], test.y[: args.n]
        rows = []
        for eps in args.eps or [0.1, 0.03]:
            row = compare(model, x, y, eps)
            rows.append(row)
            a, b = row["advx"], row["autoattack"]
            print(
                f"eps={eps:g}: clean {100 * row['clean_accuracy']:.1f}% | robust advx "
                f"{100 * a['robust_accuracy']:.1f}% in {a['seconds']:.1f}s, AutoAttack "
                f"{100 * b['robust_accuracy']:.1f}% in {b['seconds']:.1f}s | gap {row['gap_pp']:+.1f} pp "
                f"({'ok' if row['as_strong'] else 'WEAKER'}), time x{row['time_ratio']:.2f} "
                f"({'ok' if row['fast_enough'] else 'over 0.5x'}); skipped: {a['skipped'] or 'none'}"
            )
            print(f"    per attack: {a['per_attack']}  seconds: {a['attack_seconds']}")
        result["autoattack"] = rows
    if not args.skip_goodfellow:
        result["goodfellow"] = []
        for dataset in ("fashion-mnist", "digits"):
            g = goodfellow(dataset, None)
            result["goodfellow"].append(g)
            print(
                f"FGSM eps=0.25 on linear/{dataset}: error {100 * g['fgsm_error']:.2f}% "
                f"(clean {100 * g['clean_error']:.1f}%), mean confidence on errors "
                f"{100 * (g['mean_confidence_on_errors'] or 0):.1f}% — paper (MNIST): 99.9%, 79.3%"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
