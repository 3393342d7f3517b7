"""White-box PGD: advx against the physical limit and against peer libraries.

One process, one model (the zoo CNN trained on Fashion-MNIST, cached), the same test
images and the same PGD settings for everyone (linf, eps, step size, steps, one random
start). Measured, best of ``--repeats`` runs interleaved across methods (the machine is
shared and noisy, so the minimum is the least disturbed run):

* ``bare loop``: ``k`` forward+backward passes w.r.t. the input with parameters frozen
  and nothing else, the floor any PGD-k implementation must pay;
* ``advx pgd``: advx's PGD-k with a fixed schedule (``early_stop=False``), through the
  full engine (validation, clean check, skipping misclassified, projection, result);
* ``advx pgd (early stop)``: the same, each example stopping at its first success;
* ``torchattacks``, ``ART``, ``Foolbox``: their PGD-k with equal settings.

Robust accuracy is recomputed for every method with the same model on the returned
inputs. Targets: fixed-step advx <= 1.05x the bare loop; early-stopping advx, at equal or
lower robust accuracy, >= 2x faster than the fastest peer.

Run ``bash bench/setup.sh`` once, then ``bench/.venv/bin/python bench/whitebox.py``.
Writes ``bench/results/whitebox.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.metadata as md
import json
import os
import platform
import pstats
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
Runner = Callable[[], tuple[Tensor, float | None]]  # -> (x_adv, mean passes or None)


def get_model(path: Path) -> Any:
    """The zoo CNN on Fashion-MNIST: loaded from ``path``, or trained and saved there."""
    from advx import models, training

    if not (path / "model.json").exists():
        print(f"training the zoo CNN on Fashion-MNIST into {path} (once; a few minutes)")
        res = training.train("cnn", "fashion-mnist", out=path)
        print(training.describe(res))
    return models.load(path)


def bare_loop(model: Any, x: Tensor, y: Tensor, k: int) -> Runner:
    def run() -> tuple[Tensor, float | None]:
        for _ in range(k):
            xr = x.detach().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(xr), y), xr)
        return x, float(k)

    return run


def advx_pgd(
    model: Any, x: Tensor, y: Tensor, eps: float, alpha: float, k: int, early: bool
) -> Runner:
    from advx.attacks import create
    from advx.targets import WhiteBox

    attack = create("pgd", eps=eps, step_size=alpha, steps=k, early_stop=early, seed=0)
    target = WhiteBox(model)

    def run() -> tuple[Tensor, float | None]:
        r = attack(target, x, y)
        return r.x_adv, float(r.queries[r.attacked].float().mean())

    return run


def torchattacks_pgd(model: Any, x: Tensor, y: Tensor, eps: float, alpha: float, k: int) -> Runner:
    import torchattacks

    attack = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=k, random_start=True)
    return lambda: (attack(x, y), None)


def art_pgd(model: Any, x: Tensor, y: Tensor, eps: float, alpha: float, k: int) -> Runner:
    import numpy as np
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    est = PyTorchClassifier(
        model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
        nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu",
    )  # fmt: skip
    attack = ProjectedGradientDescent(
        est, norm=np.inf, eps=eps, eps_step=alpha, max_iter=k, num_random_init=1,
        batch_size=len(x), verbose=False,
    )  # fmt: skip
    xn, yn = x.numpy(), y.numpy()
    return lambda: (torch.from_numpy(attack.generate(xn, yn)), None)


def foolbox_pgd(model: Any, x: Tensor, y: Tensor, eps: float, alpha: float, k: int) -> Runner:
    import foolbox as fb

    fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0), device="cpu")
    attack = fb.attacks.LinfPGD(abs_stepsize=alpha, steps=k, random_start=True)

    def run() -> tuple[Tensor, float | None]:
        _, clipped, _ = attack(fmodel, x, y, epsilons=eps)
        return clipped, None

    return run


def robust_accuracy(model: Any, x_adv: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float((model(x_adv).argmax(1) == y).float().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=ROOT / ".cache" / "bench" / "cnn-fashion-mnist",
                   help="checkpoint directory (trained there if missing)")  # fmt: skip
    p.add_argument("--n", type=int, default=1000, help="test images")
    p.add_argument("--eps", type=float, default=0.1, help="linf budget")
    p.add_argument("--steps", type=int, default=20, help="PGD steps k")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per method (best kept)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument("--clock", choices=("auto", "cpu", "wall"), default="auto",
                   help="timing clock; auto: process CPU time with 1 thread, else wall")  # fmt: skip
    p.add_argument("--only", nargs="*", default=None, help="run only these methods")
    p.add_argument("--profile", action="store_true", help="cProfile advx fixed-step PGD")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "whitebox.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from advx.data import load

    model = get_model(args.model)
    model.eval()
    for q in model.parameters():  # frozen for every method alike
        q.requires_grad_(False)
    ds = load("fashion-mnist", "test", limit=args.n)
    x, y = ds.x, ds.y
    eps, k = args.eps, args.steps
    alpha = 2.5 * eps / k  # Madry et al.'s rule of thumb, for everyone

    methods: dict[str, tuple[str, Runner]] = {
        "bare loop": ("torch", bare_loop(model, x, y, k)),
        "advx pgd": ("advx", advx_pgd(model, x, y, eps, alpha, k, early=False)),
        "advx pgd (early stop)": ("advx", advx_pgd(model, x, y, eps, alpha, k, early=True)),
        "torchattacks pgd": ("torchattacks", torchattacks_pgd(model, x, y, eps, alpha, k)),
        "ART pgd": ("adversarial-robustness-toolbox", art_pgd(model, x, y, eps, alpha, k)),
        "Foolbox pgd": ("foolbox", foolbox_pgd(model, x, y, eps, alpha, k)),
    }
    if args.only:
        methods = {m: v for m, v in methods.items() if m in args.only or m == "bare loop"}

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        methods["advx pgd"][1]()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return

    methods["bare loop"][1]()  # warm-up: allocator, thread pool
    walls: dict[str, list[float]] = {m: [] for m in methods}
    cpus: dict[str, list[float]] = {m: [] for m in methods}
    outputs: dict[str, tuple[Tensor, float | None]] = {}
    for rep in range(args.repeats):
        for name, (_, run) in methods.items():
            w0, c0 = time.perf_counter(), time.process_time()
            outputs[name] = run()
            cpus[name].append(time.process_time() - c0)
            walls[name].append(time.perf_counter() - w0)
        print(f"repeat {rep + 1}/{args.repeats}: " + ", ".join(
            f"{m} {walls[m][-1]:.2f}s wall {cpus[m][-1]:.2f}s cpu" for m in methods), flush=True)  # fmt: skip

    # On a shared machine wall time mostly measures the neighbours; with one torch thread
    # the process CPU time is the work done, so ratios use it (--clock wall to override).
    clock = args.clock
    if clock == "auto":
        clock = "cpu" if torch.get_num_threads() == 1 else "wall"
    times = cpus if clock == "cpu" else walls
    bare = min(times["bare loop"])
    clean = robust_accuracy(model, x, y)
    rows = []
    for name, (lib, _) in methods.items():
        x_adv, passes = outputs[name]
        rows.append({
            "method": name,
            "library": lib,
            "version": md.version(lib) if lib not in ("torch",) else torch.__version__,
            "best_seconds": round(min(times[name]), 4),
            "wall_seconds": [round(t, 4) for t in walls[name]],
            "cpu_seconds": [round(t, 4) for t in cpus[name]],
            "ratio_vs_bare": round(min(times[name]) / bare, 3),
            "robust_accuracy": None if name == "bare loop" else robust_accuracy(model, x_adv, y),
            "mean_passes": passes,
        })  # fmt: skip

    print(f"\nPGD-{k} linf eps={eps} step={alpha:g} on {len(y)} Fashion-MNIST test images, "
          f"clean accuracy {100 * clean:.1f}%, torch threads {torch.get_num_threads()}, "
          f"clock: {clock} time")  # fmt: skip
    print(f"{'method':24} {'best s':>8} {'× bare':>7} {'robust acc':>11} {'passes/ex':>10}")
    for r in rows:
        ra = "—" if r["robust_accuracy"] is None else f"{100 * r['robust_accuracy']:.1f}%"
        ps = "—" if r["mean_passes"] is None else f"{r['mean_passes']:.1f}"
        print(
            f"{r['method']:24} {r['best_seconds']:8.2f} {r['ratio_vs_bare']:7.2f} {ra:>11} {ps:>10}"
        )

    by = {r["method"]: r for r in rows}
    verdict: dict[str, Any] = {}
    if "advx pgd" in by:
        verdict["advx_fixed_vs_bare"] = by["advx pgd"]["ratio_vs_bare"]
        verdict["advx_fixed_within_1.05x"] = by["advx pgd"]["ratio_vs_bare"] <= 1.05
    peers = [r for r in rows if r["library"] not in ("advx", "torch")]
    if peers and "advx pgd (early stop)" in by:
        fastest = min(peers, key=lambda r: r["best_seconds"])
        early = by["advx pgd (early stop)"]
        speedup = fastest["best_seconds"] / early["best_seconds"]
        verdict["fastest_peer"] = fastest["method"]
        verdict["advx_early_speedup_vs_fastest_peer"] = round(speedup, 2)
        verdict["advx_early_robust_acc_not_higher"] = early["robust_accuracy"] <= min(
            r["robust_accuracy"] for r in peers
        )
        verdict["advx_early_at_least_2x"] = speedup >= 2.0
    print("\n" + "\n".join(f"{k_}: {v}" for k_, v in verdict.items()))

    record = {
        "config": {"n": len(y), "eps": eps, "norm": "linf", "steps": k, "step_size": alpha,
                   "random_start": True, "repeats": args.repeats, "clean_accuracy": clean,
                   "model": str(args.model), "clock": clock},
        "env": {"python": platform.python_version(), "torch": torch.__version__,
                "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                "load_average": os.getloadavg(), "machine": platform.machine()},
        "results": rows,
        "verdict": verdict,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
