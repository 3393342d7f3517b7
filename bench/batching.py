"""What the library's batching path costs and what it guarantees, side by side in one run.

1. Overhead: fixed-step PGD through ``attack_dataset`` vs the same batches attacked by a
   bare loop of direct calls (CPU time ratio; 1.00 means free).
2. Peak memory (max RSS of a fresh process) attacking N = 64, 256, 1024 streamed images
   with ``keep="records"`` (and ``keep="all"`` as the control that does grow).
3. Batch-size invariance: robust accuracy and bitwise equality of the adversarials at
   batch sizes 16 and 100 (PGD with random start, Square).

Run: ``python bench/batching.py`` (from the repository root, PYTHONPATH=src).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]

_PEAK = """
import resource, sys, torch
from torch import nn
from advx.attacks import attack_dataset, create
from advx.models.adapter import Classifier
from advx.targets import WhiteBox
n, keep, side = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                    nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(256, 10))
clf = Classifier(net, input_shape=(3, side, side), num_classes=10)
def stream():
    g = torch.Generator().manual_seed(1)
    for i in range(0, n, 32):
        yield torch.rand(32, 3, side, side, generator=g), torch.randint(0, 10, (32,), generator=g)
def reset_peak():  # peak RSS of the loop, not of the imports (Linux: clear_refs 5)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
def peak_kib():
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
reset_peak()
attack_dataset(create("pgd", eps=4/255, steps=2, early_stop=False), WhiteBox(clf), stream(),
               batch_size=32, keep=keep, progress=False)
print(peak_kib())
"""


def peak_mib(n: int, keep: str, side: int, fixed_threshold: bool) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    if fixed_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    out = subprocess.run([sys.executable, "-c", _PEAK, str(n), keep, str(side)], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return int(out.stdout.split()[-1]) / 1024


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip


def overhead(n: int, bs: int, repeats: int) -> dict[str, float]:
    from advx.attacks import attack_dataset, create
    from advx.data import load
    from advx.models.adapter import Classifier
    from advx.targets import WhiteBox

    d = load("fashion-mnist", split="test")
    x, y = d.x[:n], d.y[:n]
    clf = Classifier(small_cnn(), input_shape=(1, 28, 28), num_classes=10).eval()
    with torch.no_grad():  # untrained: label by its own predictions so every example is attacked
        y = clf(x).argmax(dim=1)
    target = WhiteBox(clf)
    atk = create("pgd", eps=0.1, steps=10, early_stop=False)
    loop, lib = [], []
    for _ in range(repeats):
        t = time.process_time()
        for i in range(0, n, bs):
            atk(target, x[i : i + bs], y[i : i + bs], index=i)
        loop.append(time.process_time() - t)
        t = time.process_time()
        attack_dataset(atk, target, (x, y), batch_size=bs, progress=False)
        lib.append(time.process_time() - t)
    return {"loop_s": min(loop), "attack_dataset_s": min(lib), "ratio": min(lib) / min(loop)}


def invariance() -> dict[str, object]:
    from advx.attacks import attack_dataset, create
    from advx.data import load
    from advx.metrics import summary
    from advx.models.adapter import Classifier
    from advx.targets import WhiteBox
    from advx.training import TrainConfig, train

    trained = train("cnn", "digits", config=TrainConfig(epochs=5, seed=0))
    model = trained.model if hasattr(trained, "model") else trained
    if not isinstance(model, Classifier):
        raise SystemExit("unexpected training result")
    d = load("digits", split="test")
    x, y = d.x[:300], d.y[:300]
    out: dict[str, object] = {}
    for slug, kw, scores in (
        ("pgd", {"eps": 0.1, "steps": 10}, False),
        ("square", {"eps": 0.1, "max_queries": 300}, True),
    ):
        target = WhiteBox(model).as_scores() if scores else WhiteBox(model)
        atk = create(slug, **kw)
        rs = {bs: attack_dataset(atk, target, (x, y), batch_size=bs, progress=False)
              for bs in (16, 100)}  # fmt: skip
        out[slug] = {
            "robust_accuracy_bs16": summary(rs[16])["robust_accuracy"],
            "robust_accuracy_bs100": summary(rs[100])["robust_accuracy"],
            "bitwise_equal": bool(torch.equal(rs[16].x_adv, rs[100].x_adv)),
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=512, help="examples for the overhead run")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--side", type=int, default=96, help="image side for the memory run")
    a = p.parse_args()
    torch.set_num_threads(1)
    res: dict[str, object] = {"overhead": overhead(a.n, a.batch_size, a.repeats)}
    print(json.dumps(res), flush=True)
    mem = {}
    for keep in ("records", "all"):
        for fixed in (True, False):
            for n in (64, 256, 1024):
                mem[f"{keep}-{'fixed' if fixed else 'adaptive'}-mmap-{n}"] = round(
                    peak_mib(n, keep, a.side, fixed), 1
                )
    res["peak_rss_mib"] = mem
    print(json.dumps({"peak_rss_mib": mem}), flush=True)
    res["invariance"] = invariance()
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
