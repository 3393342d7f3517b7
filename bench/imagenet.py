"""PGD on a real ImageNet model: advx against the bare loop and peer libraries.

One process, one model (EfficientNet-Lite0 from ``advx.models.pretrained``, frozen, eval
mode), the same images and PGD settings for everyone: linf, eps 4/255, 10 steps of
1/255 (2.5 * eps / steps), one random start. Images: the 7 bundled photos plus synthetic
ones (random crops, flips and brightness changes of the 8 bundled photos, seeded), labelled
with the model's own clean prediction so every image is attacked.

Measured (CPU time with one torch thread; the machine is shared, so wall time mostly
measures the neighbours):

* ``bare loop``: 10 forward+backward passes w.r.t. the input, nothing else;
* ``advx pgd``: advx's PGD-10 with a fixed schedule (``early_stop=False``), full engine;
* ``advx pgd (early stop)``: the default, each example stopping at its first success;
* ``torchattacks``, ``ART``, ``Foolbox``: their PGD-10 with equal settings (from
  ``bench/.venv``; missing ones are reported as such);
* targeted to "ostrich" (class 9) at 4/255 with advx's default PGD-10;
* peak memory (resident set size sampled every 5 ms, in a fresh process) of advx's default PGD-10 over N images
  streamed in chunks of ``--chunk`` (synthesised per chunk, only per-example numbers kept),
  and of one call on the whole batch, for contrast.

Run ``bash bench/setup.sh`` once, then
``nice -n 10 bench/.venv/bin/python bench/imagenet.py`` (add ``--memory-n 64 256 1024``
for the full memory sweep; 1024 images cost minutes of CPU). Writes
``bench/results/imagenet.json``.

On a GPU: ``--device cuda`` (``scripts/gpu-check.sh`` passes it). Times are then wall
seconds between ``torch.cuda.synchronize()`` calls (CPU time means nothing there), every
method is warmed up once on the whole batch and timed ``--repeats`` times (best kept),
a bfloat16-autocast row (``WhiteBox(amp=True)``) is added, and the memory sweep records
the peak CUDA memory allocated (``torch.cuda.max_memory_allocated``) next to the RSS.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
EPS = 4 / 255
STEPS = 10
ALPHA = 2.5 * EPS / STEPS
OSTRICH = 9
Runner = Callable[[], tuple[Tensor, float | None]]  # -> (x_adv, mean passes or None)


def get_model(device: str = "cpu") -> Any:
    from advx.models import pretrained

    model = pretrained("efficientnet-lite0").to(device)
    model.eval()
    for q in model.parameters():  # frozen for every method alike
        q.requires_grad_(False)
    return model


def synthetic(n: int, seed: int, size: int = 224) -> Tensor:
    """``n`` images: random 224 crops (scale 0.5-1), flips and brightness changes of
    the 8 bundled photos, deterministic in ``seed``."""
    from PIL import Image

    from advx.data.files import _to_mode
    from advx.data.photos import PHOTOS, UNLABELLED, photo_array, resize_center_crop

    base = [
        resize_center_crop(_to_mode(Image.fromarray(photo_array(p)), "RGB"), 320, 1.0)
        for p in (*PHOTOS, *UNLABELLED)
    ]
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        im = base[int(torch.randint(len(base), (1,), generator=g))]
        side = int(320 * (0.5 + 0.5 * float(torch.rand(1, generator=g))))
        left = int(torch.randint(320 - side + 1, (1,), generator=g))
        top = int(torch.randint(320 - side + 1, (1,), generator=g))
        crop = im.crop((left, top, left + side, top + side)).resize(
            (size, size), Image.Resampling.BICUBIC
        )
        t = torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255.0)
        t = t.permute(2, 0, 1)
        if float(torch.rand(1, generator=g)) < 0.5:
            t = t.flip(2)
        t = (t * (0.8 + 0.4 * float(torch.rand(1, generator=g)))).clamp(0, 1)
        out.append(t)
    return torch.stack(out)


def images(n: int, seed: int = 0) -> Tensor:
    """The 7 photos first, then synthetic images up to ``n``."""
    from advx.data.photos import load_photos

    photos = load_photos().x
    if n <= len(photos):
        return photos[:n]
    return torch.cat([photos, synthetic(n - len(photos), seed)])


def predict(model: Any, x: Tensor, batch: int = 32) -> Tensor:
    dev = next(model.parameters()).device
    with torch.no_grad():
        return torch.cat(
            [model(x[i : i + batch].to(dev)).argmax(1) for i in range(0, len(x), batch)]
        )


def clock(device: str) -> float:
    """Process CPU time on the CPU (the work, not the neighbours); on a GPU, wall time
    after waiting for the queued kernels."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


# ------------------------------------------------------------------------ methods
def bare_loop(model: Any, x: Tensor, y: Tensor) -> Runner:
    def run() -> tuple[Tensor, float | None]:
        for _ in range(STEPS):
            xr = x.detach().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(xr), y), xr)
        return x, float(STEPS)

    return run


def advx_pgd(
    model: Any, x: Tensor, y: Tensor, early: bool, targets: Any = None, amp: bool = False
) -> Runner:
    from advx.attacks import create
    from advx.targets import WhiteBox

    attack = create("pgd", eps=EPS, step_size=ALPHA, steps=STEPS, early_stop=early, seed=0)
    target = WhiteBox(model, amp=amp)

    def run() -> tuple[Tensor, float | None]:
        r = attack(target, x, y, targets=targets)
        return r.x_adv, float(r.queries[r.attacked].float().mean())

    return run


def torchattacks_pgd(model: Any, x: Tensor, y: Tensor) -> Runner:
    import torchattacks

    attack = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)
    return lambda: (attack(x, y), None)


def art_pgd(model: Any, x: Tensor, y: Tensor) -> Runner:
    import numpy as np
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    est = PyTorchClassifier(
        model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
        nb_classes=1000, clip_values=(0.0, 1.0),
        device_type="gpu" if x.device.type == "cuda" else "cpu",
    )  # fmt: skip
    attack = ProjectedGradientDescent(
        est, norm=np.inf, eps=EPS, eps_step=ALPHA, max_iter=STEPS, num_random_init=1,
        batch_size=len(x), verbose=False,
    )  # fmt: skip
    xn, yn = x.cpu().numpy(), y.cpu().numpy()
    return lambda: (torch.from_numpy(attack.generate(xn, yn)).to(x.device), None)


def foolbox_pgd(model: Any, x: Tensor, y: Tensor) -> Runner:
    import foolbox as fb

    fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0), device=x.device)
    attack = fb.attacks.LinfPGD(abs_stepsize=ALPHA, steps=STEPS, random_start=True)

    def run() -> tuple[Tensor, float | None]:
        _, clipped, _ = attack(fmodel, x, y, epsilons=EPS)
        return clipped, None

    return run


# ------------------------------------------------------------------------ memory child
class PeakRss:
    """Samples this process's resident set size every 5 ms in a thread; ``peak`` is the
    largest value seen (bytes) between ``start()`` and ``stop()``."""

    def __init__(self) -> None:
        import threading

        import psutil

        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def start(self) -> PeakRss:
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        return self.peak


def memory_child(n: int, chunk: int, whole: bool, device: str = "cpu") -> dict[str, Any]:
    """In a fresh process: advx default PGD-10 over ``n`` synthetic images, streamed in
    chunks (only per-example numbers kept) or as one call; peak RSS during the attack,
    and on a GPU the peak CUDA memory allocated too."""
    from advx.attacks import create
    from advx.targets import WhiteBox

    torch.set_num_threads(1)
    cuda = device.startswith("cuda")
    model = get_model(device)
    target = WhiteBox(model)
    attack = create("pgd", eps=EPS, step_size=ALPHA, steps=STEPS, seed=0)
    warm = synthetic(2, seed=1).to(device)
    attack(target, warm, predict(model, warm))  # warm-up
    mb = 1024 * 1024
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    cuda_base = torch.cuda.memory_allocated() if cuda else 0
    sampler = PeakRss()
    base = sampler.proc.memory_info().rss
    sampler.start()
    c0 = clock(device)
    fooled = 0
    size = n if whole else chunk
    for start in range(0, n, size):
        xb = synthetic(min(size, n - start), seed=1000 + start).to(device)
        yb = predict(model, xb)
        r = attack(target, xb, yb)
        fooled += int(r.succeeded.sum())
        del xb, yb, r
    seconds = clock(device) - c0
    peak = sampler.stop()
    row: dict[str, Any] = {
        "n": n,
        "mode": "one call" if whole else f"chunks of {chunk}",
        "device": device,
        "rss_before_mb": round(base / mb, 1),
        "peak_rss_mb": round(peak / mb, 1),
        "peak_over_before_mb": round((peak - base) / mb, 1),
        "success_rate": round(fooled / n, 4),
        ("wall_seconds" if cuda else "cpu_seconds"): round(seconds, 2),
    }
    if cuda:
        row["cuda_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / mb, 1)
        row["cuda_peak_over_before_mb"] = round(
            (torch.cuda.max_memory_allocated() - cuda_base) / mb, 1
        )
    return row


def run_memory(
    ns: list[int], chunk: int, whole_ns: list[int], device: str = "cpu"
) -> list[dict[str, Any]]:
    rows = []
    jobs = [(n, False) for n in ns] + [(n, True) for n in whole_ns]
    for n, whole in jobs:
        cmd = [sys.executable, __file__, "--memory-child", str(n), "--chunk", str(chunk)]
        cmd += ["--device", device]
        if whole:
            cmd.append("--whole")
        out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if out.returncode != 0:
            rows.append({"n": n, "whole": whole, "error": out.stderr[-2000:]})
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"memory: {rows[-1]}", flush=True)
    return rows


# ------------------------------------------------------------------------ main
def version(lib: str) -> str | None:
    try:
        return md.version(lib)
    except md.PackageNotFoundError:
        return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=32, help="images in the speed comparison")
    p.add_argument("--repeats", type=int, default=2, help="timed runs of bare loop and advx")
    p.add_argument("--memory-n", type=int, nargs="*", default=[64, 256])
    p.add_argument("--memory-whole", type=int, nargs="*", default=[32, 64])
    p.add_argument("--chunk", type=int, default=32)
    p.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--whole", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--skip", nargs="*", default=[], help="methods to leave out")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "imagenet.json")
    p.add_argument("--device", default="cpu", help="cpu (CPU time, 1 thread) or cuda (wall)")
    args = p.parse_args()
    dev = args.device
    cuda = dev.startswith("cuda")
    if args.memory_child is not None:
        print(json.dumps(memory_child(args.memory_child, args.chunk, args.whole, dev)))
        return
    torch.set_num_threads(1)  # CPU time then measures the work, not the neighbours

    model = get_model(dev)
    x = images(args.n).to(dev)
    y = predict(model, x)
    from advx.data.photos import load_photos

    photo_labels = load_photos().y
    photos_right = int((y[:7].cpu() == photo_labels[: min(7, len(y))]).sum())
    print(f"{len(x)} images; clean top-1 on the photos {photos_right}/7", flush=True)

    methods: dict[str, tuple[str, Callable[[], Runner]]] = {
        "bare loop": ("torch", lambda: bare_loop(model, x, y)),
        "advx pgd": ("advx", lambda: advx_pgd(model, x, y, early=False)),
        "advx pgd (early stop)": ("advx", lambda: advx_pgd(model, x, y, early=True)),
        "torchattacks pgd": ("torchattacks", lambda: torchattacks_pgd(model, x, y)),
        "ART pgd": ("adversarial-robustness-toolbox", lambda: art_pgd(model, x, y)),
        "Foolbox pgd": ("foolbox", lambda: foolbox_pgd(model, x, y)),
    }
    if cuda:  # autocast only does something on the GPU
        methods["advx pgd (early stop, bf16 autocast)"] = (
            "advx",
            lambda: advx_pgd(model, x, y, early=True, amp=True),
        )
    runners: dict[str, Runner] = {}
    missing: dict[str, str] = {}
    for name, (_, make) in methods.items():
        if name in args.skip:
            continue
        try:
            runners[name] = make()
        except ImportError as e:
            missing[name] = f"not installed ({e.name}); run bash bench/setup.sh"
    bare_loop(model, x[:2], y[:2])()  # warm-up
    if cuda:  # kernel selection and caching allocator growth, untimed, for everyone
        for run in runners.values():
            run()
    cpu: dict[str, list[float]] = {m: [] for m in runners}  # the clock's seconds
    wall: dict[str, list[float]] = {m: [] for m in runners}
    outputs: dict[str, tuple[Tensor, float | None]] = {}
    unit = "s wall" if cuda else "s cpu"
    for rep in range(args.repeats):
        for name, run in runners.items():
            if not cuda and rep > 0 and not name.startswith(("bare loop", "advx")):
                continue  # peers once on the CPU: each costs as much as the bare loop
            w0, c0 = time.perf_counter(), clock(dev)
            outputs[name] = run()
            cpu[name].append(clock(dev) - c0)
            wall[name].append(time.perf_counter() - w0)
            print(f"repeat {rep + 1}: {name} {cpu[name][-1]:.3f}{unit}", flush=True)

    bare = min(cpu["bare loop"])
    rows = []
    for name in runners:
        x_adv, passes = outputs[name]
        lib = methods[name][0]
        rows.append({
            "method": name,
            "library": lib,
            "version": torch.__version__ if lib == "torch" else version(lib),
            "best_cpu_seconds": round(min(cpu[name]), 3),
            "cpu_seconds": [round(c, 3) for c in cpu[name]],
            "wall_seconds": [round(w, 3) for w in wall[name]],
            "ratio_to_bare_loop": round(min(cpu[name]) / bare, 3),
            "robust_accuracy": round(float((predict(model, x_adv) == y).float().mean()), 4),
            "max_linf": round(float((x_adv.to(x.device) - x).abs().max()), 6),
            "mean_passes": passes,
        })  # fmt: skip
    peers = [r for r in rows if r["library"] not in ("torch", "advx")]
    early = next((r for r in rows if r["method"] == "advx pgd (early stop)"), None)
    fastest_peer = min(peers, key=lambda r: r["best_cpu_seconds"]) if peers else None

    c0 = clock(dev)
    tx, tpasses = advx_pgd(model, x, y, early=True, targets=OSTRICH)()
    keep = y != OSTRICH
    reached = predict(model, tx) == OSTRICH
    targeted = {
        "target": "ostrich (9)",
        "n": int(keep.sum()),
        "success_rate": round(float(reached[keep].float().mean()), 4),
        "mean_passes": tpasses,
        "seconds": round(clock(dev) - c0, 2),
        "max_linf": round(float((tx - x).abs().max()), 6),
    }
    print(f"targeted: {targeted}", flush=True)

    memory = run_memory(args.memory_n, args.chunk, args.memory_whole, dev)
    result = {
        "bench": "imagenet",
        "model": "efficientnet-lite0 (advx.models.pretrained)",
        "images": {
            "n": len(x),
            "photos": min(7, len(x)),
            "synthetic": max(0, len(x) - 7),
            "labels": "model's clean prediction",
            "photos_top1_correct": photos_right,
        },  # fmt: skip
        "settings": {
            "norm": "linf",
            "eps": EPS,
            "steps": STEPS,
            "step_size": ALPHA,
            "random_start": True,
            "threads": 1,
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "clock": "wall time between torch.cuda.synchronize() calls, after one warm-up"
            " run of each method"
            if cuda
            else "process CPU time",
            "torch": torch.__version__,
        },  # fmt: skip
        "rows": rows,
        "missing": missing,
        "advx_fixed_over_bare": next(
            (r["ratio_to_bare_loop"] for r in rows if r["method"] == "advx pgd"), None
        ),
        "fastest_peer": fastest_peer and fastest_peer["method"],
        "fastest_peer_over_advx_default": (
            round(fastest_peer["best_cpu_seconds"] / early["best_cpu_seconds"], 2)
            if fastest_peer and early
            else None
        ),
        "targeted": targeted,
        "memory": memory,
        "machine": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average": os.getloadavg(),
        },  # fmt: skip
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(f"{r['method']:<24} {r['best_cpu_seconds']:>8.3f}{unit}  x{r['ratio_to_bare_loop']:.3f}"
              f"  robust {100 * r['robust_accuracy']:.1f}%  passes {r['mean_passes']}")  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
