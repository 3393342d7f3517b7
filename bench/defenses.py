"""Adversarial training on Fashion-MNIST: clean and PGD-20 accuracy, and wall time, of
the zoo CNN trained standard, FGSM, FGSM-RS, PGD-AT and TRADES at linf eps=0.1; then the
clean-accuracy effect of adversarial training at small eps (Goodfellow et al. 2015 saw
FGSM training improve clean MNIST accuracy).

Every run is ``advx.defenses.adversarial_training.adversarial_train`` (the same code as
``advx train --adv``) with the registry's training defaults for the CNN except ``--epochs``,
one torch thread by default (the machine is shared). Robust accuracy: PGD-20, step
2.5*eps/20, one random start, on the first ``--n-robust`` test images, through
``advx.attacks.create("pgd")``; clean accuracy on the whole test split.

Anchors: Song et al. 2019 ("Improving the generalization of adversarial training with
domain adaptation") report on Fashion-MNIST at eps=0.1 PGD-AT 90.9% clean / 68.1% PGD and
TRADES 90.9% / 72.4%. Targets here: one recipe with clean >= 90% and PGD-20 >= 72%;
FGSM-RS within 2 points of PGD-AT's robust accuracy at <= 1/3 of its time.

Detectors (``--detectors``): on a standard Fashion-MNIST CNN (``--model DIR``, default
the 5-epoch ``standard`` run above, ``bench/runs/defenses/standard-e5``), each detector
kind is fitted on ``--n-fit`` training images (calibrated at 5% false alarms on a
held-out quarter of them) and evaluated on ``--n-test`` test images: detection rate and
defended accuracy under PGD-20 crafted on the bare model, and under the adaptive attack
(PGD on the defended system, BPDA for squeezing); plus parameters and latency against
the bare model. Writes ``bench/results/detectors.json``.

Resumable: each finished run appends one JSON line to ``--results``; runs already there
(same name, epochs and settings) are skipped. Checkpoints go to
``bench/runs/defenses/NAME-eEPOCHS[-sSTEPS]``. ``python bench/defenses.py --epochs 5``
takes hours on a busy 2-core machine (run it in the background); the reduced schedule
measured so far is ``--epochs 3 --steps 5`` (PGD-5 and TRADES-5 inner maximisation).
``--only NAME`` (repeatable) restricts the runs; ``--table`` prints the table from the
results file without training.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]

# (run name, adversary or None, settings): eps=0.1 comparison (the targets' runs first,
# FGSM-RS cheapest, so a killed run keeps the most), then the small-eps study.
# ``--steps K`` overrides the inner PGD steps of pgd/trades (step 2.5*eps/K); the row
# records the settings actually used.
RUNS: list[tuple[str, str | None, dict[str, Any]]] = [
    ("fgsm-rs", "fgsm-rs", {"eps": 0.1}),
    ("pgd", "pgd", {"eps": 0.1, "steps": 10}),
    ("trades", "trades", {"eps": 0.1, "steps": 10, "beta": 6.0}),
    ("fgsm", "fgsm", {"eps": 0.1}),
    ("standard", None, {}),
    ("fgsm-eps0.03", "fgsm", {"eps": 0.03}),
    ("standard-seed1", None, {"seed": 1}),
    ("fgsm-eps0.02", "fgsm", {"eps": 0.02}),
    ("fgsm-eps0.05", "fgsm", {"eps": 0.05}),
    ("fgsm-rs-eps0.02", "fgsm-rs", {"eps": 0.02}),
    ("fgsm-rs-eps0.05", "fgsm-rs", {"eps": 0.05}),
]


def settings_for(settings: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """``settings`` with ``--steps`` applied to multi-step adversaries."""
    if args.steps is not None and "steps" in settings:
        return settings | {"steps": args.steps}
    return dict(settings)


def run_key(row: dict[str, Any]) -> tuple[str, int, str]:
    """What makes two rows the same run: name, epochs and settings."""
    return row["run"], row["epochs"], json.dumps(row.get("settings", {}), sort_keys=True)


def robust_accuracy(model: Any, x: torch.Tensor, y: torch.Tensor, eps: float) -> float:
    """PGD-20 accuracy (advx's PGD, random start, step 2.5*eps/20)."""
    from advx.attacks import AttackResult, create
    from advx.metrics import robust_accuracy as racc
    from advx.targets import WhiteBox

    attack = create("pgd", eps=eps, steps=20, seed=0)
    results = []
    for i in range(0, len(y), 500):
        r = attack(WhiteBox(model), x[i : i + 500], y[i : i + 500])
        assert isinstance(r, AttackResult)
        results.append(r)
    return racc(AttackResult.concat(results))


def run_one(name: str, adv: str | None, settings: dict[str, Any], args: argparse.Namespace) -> dict:
    import advx.models  # noqa: F401  (import order: models before targets)
    from advx.data import load
    from advx.defenses.adversarial_training import adversarial_train, create_adversary
    from advx.training import default_config, train

    seed = int(settings.get("seed", 0))
    config = default_config("cnn", "fashion-mnist", epochs=args.epochs, seed=seed)
    test = load("fashion-mnist", "test")
    steps = f"-s{settings['steps']}" if "steps" in settings else ""
    out = ROOT / "bench" / "runs" / "defenses" / f"{name}-e{args.epochs}{steps}"
    checks: list[dict[str, Any]] = []
    t0, c0 = time.perf_counter(), time.process_time()

    def progress(info: Any) -> None:
        if info.step % 50 == 0 or info.step == info.steps:
            print(
                f"  {name} epoch {info.epoch + 1}/{info.epochs} step {info.step}/{info.steps} "
                f"loss {info.loss:.3f} acc {info.accuracy:.3f} {info.images_per_s:.0f} img/s "
                f"[{time.perf_counter() - t0:.0f}s]",
                flush=True,
            )

    def on_check(record: dict[str, Any]) -> None:
        checks.append(record)
        print(f"  {name} {record}", flush=True)

    if adv is None:
        res = train("cnn", "fashion-mnist", test=test, config=config, out=out, on_step=progress)
    else:
        adversary = create_adversary(adv, **{k: v for k, v in settings.items() if k != "seed"})
        res = adversarial_train(
            "cnn", "fashion-mnist", adversary=adversary, test=test, config=config, out=out,
            on_step=progress,
            on_check=on_check,
        )  # fmt: skip
    train_seconds = res.history.seconds
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = args.n_robust
    eps = float(settings.get("eps", 0.1))
    t1 = time.perf_counter()
    robust = robust_accuracy(res.model, test.x[:n], test.y[:n], 0.1)
    own = None
    if adv is not None:
        own = robust if eps == 0.1 else robust_accuracy(res.model, test.x[:n], test.y[:n], eps)
    eval_seconds = time.perf_counter() - t1
    row = {
        "run": name,
        "adv": adv or "none",
        "settings": settings,
        "epochs": args.epochs,
        "threads": torch.get_num_threads(),
        "clean_accuracy": res.test_accuracy,
        "pgd20_accuracy_eps0.1": robust,
        "pgd20_accuracy_own_eps": own,
        "n_robust": n,
        "schedule": {
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "lr": config.lr,
            "optimizer": config.optimizer,
            "schedule": config.schedule,
            # the overfit guard holds 512 training images out of adversarial runs
            "train_examples": 60000 - (512 if adv is not None else 0),
        },  # fmt: skip
        "train_seconds": round(train_seconds, 1),
        "wall_seconds": round(wall, 1),  # training, checkpoint and guard checks
        "eval_seconds": round(eval_seconds, 1),  # PGD-20 evaluation(s)
        "cpu_seconds": round(cpu, 1),  # less sensitive than wall time to a busy machine
        "stopped": res.history.stopped,
        "overfit_checks": checks,
        "host": platform.node(),
    }
    return row


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'run':18} {'ep':>2} {'steps':>5} {'clean':>7} {'PGD-20@0.1':>10} {'PGD-20@own':>10} {'train s':>8} "
        f"{'cpu s':>7}  stopped"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        own = r.get("pgd20_accuracy_own_eps")
        lines.append(
            f"{r['run']:18} {r['epochs']:2d} {r.get('settings', {}).get('steps', ''):>5} "
            f"{100 * r['clean_accuracy']:6.2f}% "
            f"{100 * r['pgd20_accuracy_eps0.1']:9.2f}% "
            f"{'' if own is None else f'{100 * own:9.2f}%':>10} {r['train_seconds']:8.0f} "
            f"{r.get('cpu_seconds', float('nan')):7.0f}  "
            f"{r.get('stopped') or ''}"
        )
    return "\n".join(lines)


DETECTORS: list[tuple[str, str, dict[str, Any]]] = [
    ("squeeze", "squeeze", {}),  # the paper's MNIST squeezers: bits:1 + median 2x2
    ("squeeze-bits4", "squeeze", {"squeezers": ["bits:4", "median:2"]}),
    ("binary", "binary", {}),
    ("mahalanobis", "mahalanobis", {}),
]


def detectors(args: argparse.Namespace) -> None:
    import advx.models  # noqa: F401  (import order: models before targets)
    from advx.data import load
    from advx.defenses.adaptive import evaluate_detector
    from advx.defenses.detectors import train_detector

    model_dir = args.model or ROOT / "bench" / "runs" / "defenses" / "standard-e5"
    model = advx.models.load(model_dir)
    train_ds = load("fashion-mnist", "train").head(args.n_fit)
    test = load("fashion-mnist", "test").head(args.n_test)
    rows = []
    for name, kind, settings in DETECTORS:
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        det = train_detector(model, train_ds.x, train_ds.y, kind=kind, eps=0.1, seed=0, **settings)
        fit_s = time.perf_counter() - t0
        rep = evaluate_detector(model, det, test.x, test.y, eps=0.1, steps=20, adaptive_steps=50)
        row = {"detector": name, "settings": det.settings(), "fit_seconds": round(fit_s, 1),
               "model": str(model_dir), **rep.to_json()}  # fmt: skip
        rows.append(row)
        na, ad = rep.non_adaptive, rep.adaptive
        assert ad is not None  # evaluate_detector runs the adaptive attack by default
        print(
            f"{name:14} FPR {rep.clean_false_positive_rate:.1%}  PGD: fools {na.fooled_model:.1%} "
            f"detected {na.detection_rate:.1%} defended {na.defended_accuracy:.1%} | adaptive: "
            f"fools {ad.fooled_model:.1%} detected {ad.detection_rate:.1%} defended "
            f"{ad.defended_accuracy:.1%} | params +{rep.cost['detector_parameters']} latency "
            f"x{rep.cost['latency_ratio']:.2f} | fit {fit_s:.0f}s",
            flush=True,
        )
    out = ROOT / "bench" / "results" / "detectors.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=5, help="training epochs of every run")
    p.add_argument("--n-robust", type=int, default=2000, help="test images for PGD-20")
    p.add_argument("--steps", type=int, default=None, help="inner PGD steps of pgd/trades")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--only", action="append", default=[], help="run only these names")
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "defenses.jsonl")
    p.add_argument("--table", action="store_true", help="print the table and exit")
    p.add_argument("--detectors", action="store_true", help="measure the detectors instead")
    p.add_argument("--model", type=Path, default=None, help="--detectors: the model directory")
    p.add_argument("--n-fit", type=int, default=5000, help="--detectors: training images")
    p.add_argument("--n-test", type=int, default=1000, help="--detectors: test images")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.detectors:
        detectors(args)
        return
    args.results.parent.mkdir(parents=True, exist_ok=True)

    def finished() -> dict[tuple[str, int, str], dict[str, Any]]:  # several processes may share it
        rows: dict[tuple[str, int, str], dict[str, Any]] = {}
        if args.results.exists():
            for line in args.results.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    rows[run_key(row)] = row
        return rows

    def key(name: str, settings: dict[str, Any]) -> tuple[str, int, str]:
        return run_key({"run": name, "epochs": args.epochs, "settings": settings})

    done = finished()
    if not args.table:
        for name, adv, settings in RUNS:
            settings = settings_for(settings, args)
            done = finished()
            if (args.only and name not in args.only) or key(name, settings) in done:
                continue
            print(f"== {name} ({args.epochs} epochs, {settings})", flush=True)
            row = run_one(name, adv, settings, args)
            with args.results.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done[key(name, settings)] = row
            print(table([row]), flush=True)
    print(table(list(done.values())))


if __name__ == "__main__":
    main()
