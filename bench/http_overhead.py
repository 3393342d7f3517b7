"""HTTP client overhead: scoring a batch through `advx serve` vs in-process.

For each model (zoo architectures on Fashion-MNIST-sized and digits-sized inputs, saved as
checkpoints), the script starts ``python -m advx serve`` on a free loopback port and times,
interleaved over ``--repeats`` rounds, the scoring of one batch of ``--batch`` rows:

* ``in-process``: ``ScoreBox.from_torch(model).scores(x)`` in this process;
* ``http binary``: :class:`advx.adapters.HttpTarget` with the binary tensor extension;
* ``http json``: the same with plain JSON tensors (what MLServer and most servers speak).

Both processes use the same number of torch threads (``--threads``, default 1: the
machine is small and shared, and oversubscribed OpenMP threads make timings meaningless).
Overhead = time(HTTP) / time(in-process) - 1, reported on the minimum (least disturbed
run), on the median, and as the median of per-round ratios ("paired": each round times
every method back to back, so they share the machine's load at that moment); the extra
milliseconds per request (on the minimum) show the fixed cost. Target: <= 10% for a
batch of 100 on loopback (binary); a fixed cost of a few ms per request means the target
holds for models whose batch takes tens of ms (the demo CNN), not for sub-ms models.

Run: ``.venv/bin/python bench/http_overhead.py``; writes bench/results/http_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from advx import models
from advx.adapters import HttpTarget, torch_target
from advx.errors import RemoteError
from advx.serve.client import OipClient

MODELS = {
    "cnn-28": ("cnn", (1, 28, 28)),
    "mlp-28": ("mlp", (1, 28, 28)),
    "mlp-8": ("mlp", (1, 8, 8)),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(path: Path, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "advx", "serve", str(path), "--port", str(port), "--name", "m"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    client = OipClient(url, retries=0)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if client.ready():
                return proc, url
        except RemoteError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"advx serve did not start for {path}")


def time_once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_model(key: str, batch: int, repeats: int, threads: int, workdir: Path) -> dict:
    arch, shape = MODELS[key]
    torch.manual_seed(0)
    clf = models.build(arch, input_shape=shape, num_classes=10).eval()
    path = models.save(clf, workdir / key)
    clf = models.load(path)
    proc, url = start_server(path, threads)
    try:
        x = torch.rand(batch, *shape)
        local = torch_target(clf)
        binary = HttpTarget(url, "m", binary=True, batch_size=batch)
        plain = HttpTarget(url, "m", binary=False, batch_size=batch)
        ref = local.scores(x)
        assert torch.equal(binary.scores(x), ref) and torch.equal(plain.scores(x), ref)
        methods = {
            "in-process": lambda: local.scores(x),
            "http binary": lambda: binary.scores(x),
            "http json": lambda: plain.scores(x),
        }
        times: dict[str, list[float]] = {m: [] for m in methods}
        with local.attacking():
            for fn in methods.values():  # warm-up
                fn()
            for _ in range(repeats):
                for name, fn in methods.items():
                    times[name].append(time_once(fn))
        out = {"model": key, "arch": arch, "input_shape": list(shape), "batch": batch}
        base_min = min(times["in-process"])
        base_med = statistics.median(times["in-process"])
        for name, ts in times.items():
            paired = [t / b for t, b in zip(ts, times["in-process"], strict=True)]
            out[name] = {
                "min_ms": round(min(ts) * 1e3, 3),
                "median_ms": round(statistics.median(ts) * 1e3, 3),
                "overhead_min": round(min(ts) / base_min - 1, 4),
                "overhead_median": round(statistics.median(ts) / base_med - 1, 4),
                # each round times all methods back to back under the same machine load
                "overhead_paired_median": round(statistics.median(paired) - 1, 4),
                "extra_ms_min": round((min(ts) - base_min) * 1e3, 3),
            }
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--models", default="cnn-28,mlp-28,mlp-8", help=f"comma list of {sorted(MODELS)}"
    )
    ap.add_argument("--batch", type=int, default=100, help="rows per scoring call")
    ap.add_argument("--repeats", type=int, default=40, help="interleaved rounds")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in both processes")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "http_overhead.json"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models.split(","):
            r = bench_model(key.strip(), args.batch, args.repeats, args.threads, Path(tmp))
            rows.append(r)
            print(f"{key:8s} batch {args.batch}:", end="")
            for m in ("in-process", "http binary", "http json"):
                s = r[m]
                print(f"  {m} {s['min_ms']:.2f}/{s['median_ms']:.2f} ms", end="")
                if m != "in-process":
                    print(
                        f" (+{s['overhead_min']:.1%} min, +{s['overhead_median']:.1%} median, "
                        f"+{s['overhead_paired_median']:.1%} paired; +{s['extra_ms_min']:.2f} ms)",
                        end="",
                    )
            print()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    record = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg": load,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": args.threads,
        },  # fmt: skip
        "note": "min/median over interleaved rounds; overhead = http / in-process - 1",
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
