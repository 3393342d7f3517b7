"""HTTP overhead: scoring a batch through `advx serve` vs in-process, with advx's client and
with a standard third-party KServe V2 client (tritonclient.http).

For each model (zoo architectures on Fashion-MNIST-sized and digits-sized inputs, saved as
checkpoints), the script starts ``python -m advx serve`` on a free loopback port and times,
interleaved over ``--repeats`` rounds (the methods in a new random order each round), the
scoring of one batch of ``--batch`` rows:

* ``in-process``: ``torch_target(model).scores(x)`` in this process, the whole batch at once
  (the reference of the target: HTTP overhead = time(HTTP) / time(in-process) - 1);
* ``in-process chunked``: the same in the server's chunks of 64 rows (the server's own
  model work, so the protocol's cost can be told apart from the effect of chunking);
* ``advx binary`` / ``advx json``: :class:`advx.adapters.HttpTarget` with the binary tensor
  extension / with plain JSON tensors (what MLServer and most servers speak);
* ``triton binary`` / ``triton json``: ``tritonclient.http.InferenceServerClient`` (a
  standard V2 client; ``bench/setup.sh`` installs it) asking for the same output;
* with ``--threaded``, ``advx binary, threaded server``: a second server that always
  evaluates in a worker thread (``inline_seconds=0``), to show what inline evaluation buys;
* ``advx binary, httpx client``: advx's client sending through httpx (its transport
  before the standard library's keep-alive connections; still used for https);
* with ``--baseline-src DIR``, ``advx binary, baseline server, httpx client`` and
  ``triton binary, baseline server``: a third server run from another checkout's ``src``
  (e.g. the main branch before this work), for before/after in one run.

Both processes use the same number of torch threads (``--threads``, default 1: the
machine is small and shared, and oversubscribed OpenMP threads make timings meaningless).
Wall time is reported on the minimum (least disturbed run), on the median, and as the
median of per-round ratios ("paired": each round times every method back to back, so
they share the machine's load at that moment). CPU time is reported too (this process's
``process_time`` plus the server's threads' time on CPU from ``/proc/PID/task/*/schedstat``):
it does not depend on how busy the machine is, and shows what the protocol costs in work.
Target: <= 10% for a batch of 100 (CNN, binary, median of interleaved runs).

Run: ``nice -n 10 .venv/bin/python bench/http_overhead.py``; writes
bench/results/http_overhead.json.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from advx import models
from advx.adapters import HttpTarget, torch_target
from advx.errors import RemoteError
from advx.serve.client import OipClient
from advx.serve.server import DEFAULT_CHUNK_ROWS

MODELS = {
    "cnn-28": ("cnn", (1, 28, 28)),
    "mlp-28": ("mlp", (1, 28, 28)),
    "mlp-8": ("mlp", (1, 8, 8)),
}
REF = "in-process"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    path: Path, threads: int, *, inline: bool = True, src: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """``advx serve`` on a free port (``inline=False``: a server that always evaluates in
    a worker thread; ``src``: run the advx found there)."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    if inline:
        cmd = [sys.executable, "-m", "advx", "serve", str(path), "--port", str(port)]
        cmd += ["--name", "m"]
    else:
        code = (
            "import sys; from advx import models; from advx.serve.server import serve; "
            "serve(models.load(sys.argv[1]), name='m', port=int(sys.argv[2]), inline_seconds=0)"
        )
        cmd = [sys.executable, "-c", code, str(path), str(port)]
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


def cpu_on_server(pid: int) -> float:
    """Seconds the process ``pid`` (all its threads) has spent on CPU (Linux; else 0)."""
    total = 0
    for f in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(f) as fh:
                total += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that just ended
    return total / 1e9


def triton_methods(url: str, x: np.ndarray) -> dict[str, Callable[[], np.ndarray]]:
    """tritonclient.http calls asking for the scores, binary and JSON (empty if it is
    not installed)."""
    try:
        import tritonclient.http as th
    except ImportError:
        return {}
    client = th.InferenceServerClient(url.removeprefix("http://"))

    def call(binary: bool) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            inp = th.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=binary)
            out = th.InferRequestedOutput("predict_proba", binary_data=binary)
            return client.infer("m", [inp], outputs=[out]).as_numpy("predict_proba")

        return run

    return {"triton binary": call(True), "triton json": call(False)}


def summarise(wall: dict[str, list[float]], cpu: dict[str, list[float]]) -> dict[str, dict]:
    base = wall[REF]
    base_min, base_med = min(base), statistics.median(base)
    base_cpu = statistics.median(cpu[REF])
    out = {}
    for name, ts in wall.items():
        paired = [t / b for t, b in zip(ts, base, strict=True)]
        c = statistics.median(cpu[name])
        out[name] = {
            "min_ms": round(min(ts) * 1e3, 3),
            "median_ms": round(statistics.median(ts) * 1e3, 3),
            "overhead_min": round(min(ts) / base_min - 1, 4),
            "overhead_median": round(statistics.median(ts) / base_med - 1, 4),
            # each round times all methods back to back under the same machine load
            "overhead_paired_median": round(statistics.median(paired) - 1, 4),
            "extra_ms_min": round((min(ts) - base_min) * 1e3, 3),
            "cpu_median_ms": round(c * 1e3, 3),
            "cpu_overhead_median": round(c / base_cpu - 1, 4),
        }
    return out


def bench_model(key: str, args: argparse.Namespace, workdir: Path) -> dict:
    arch, shape = MODELS[key]
    torch.manual_seed(0)
    clf = models.build(arch, input_shape=shape, num_classes=10).eval()
    path = models.save(clf, workdir / key)
    clf = models.load(path)
    servers = {"": start_server(path, args.threads)}
    if args.threaded:
        servers["threaded"] = start_server(path, args.threads, inline=False)
    if args.baseline_src:
        servers["baseline"] = start_server(path, args.threads, src=args.baseline_src)
    try:
        x = torch.rand(args.batch, *shape)
        xn = x.numpy()
        local = torch_target(clf)
        url, pid = servers[""][1], servers[""][0].pid
        binary = HttpTarget(url, "m", binary=True, batch_size=args.batch)
        plain = HttpTarget(url, "m", binary=False, batch_size=args.batch)
        ref = local.scores(x)
        assert torch.equal(binary.scores(x), ref) and torch.equal(plain.scores(x), ref)
        methods: dict[str, Callable[[], object]] = {
            REF: lambda: local.scores(x),
            "in-process chunked": lambda: [
                local.scores(x[i : i + DEFAULT_CHUNK_ROWS])
                for i in range(0, len(x), DEFAULT_CHUNK_ROWS)
            ],
            "advx binary": lambda: binary.scores(x),
            "advx json": lambda: plain.scores(x),
        }
        pids = {name: pid for name in methods}
        for name, fn in triton_methods(url, xn).items():
            np.testing.assert_allclose(fn(), ref.numpy(), rtol=1e-6, atol=1e-7)
            methods[name], pids[name] = fn, pid
        import httpx

        for variant, (proc, vurl) in servers.items():
            where = f", {variant} server" if variant else ""
            # httpx: the client's transport before the standard library's (and for https)
            clients = {"": None, ", httpx client": httpx.Client()}
            if variant == "threaded":
                clients.pop(", httpx client")
            elif not variant:
                clients.pop("")
            for how, http in clients.items():
                target = HttpTarget(vurl, "m", binary=True, batch_size=args.batch, http_client=http)
                assert torch.equal(target.scores(x), ref)
                name = f"advx binary{where}{how}"
                methods[name] = lambda t=target: t.scores(x)
                pids[name] = proc.pid
            if variant == "baseline":
                for name, fn in triton_methods(vurl, xn).items():
                    if "binary" in name:
                        methods[f"{name}{where}"], pids[f"{name}{where}"] = fn, proc.pid
        wall: dict[str, list[float]] = {m: [] for m in methods}
        cpu: dict[str, list[float]] = {m: [] for m in methods}
        names = list(methods)
        with local.attacking():
            for fn in methods.values():  # warm-up
                fn()
                fn()
            order = random.Random(0)
            for _ in range(args.repeats):
                order.shuffle(names)  # no method always runs after the same one
                for name in names:
                    fn, spid = methods[name], pids[name]
                    s0, c0 = cpu_on_server(spid), time.process_time()
                    t0 = time.perf_counter()
                    fn()
                    t1 = time.perf_counter()
                    c1, s1 = time.process_time(), cpu_on_server(spid)
                    wall[name].append(t1 - t0)
                    cpu[name].append(c1 - c0 + (s1 - s0))
        out = {"model": key, "arch": arch, "input_shape": list(shape), "batch": args.batch}
        return {**out, **summarise(wall, cpu)}
    finally:
        for proc, _ in servers.values():
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
        "--threaded", action="store_true", help="also time a server that never evaluates inline"
    )
    ap.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="also time a server run from this advx source folder (e.g. main's src/)",
    )
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "http_overhead.json"
    )
    args = ap.parse_args()
    # a terminated run still stops its servers and removes its checkpoints (finally blocks)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models.split(","):
            r = bench_model(key.strip(), args, Path(tmp))
            rows.append(r)
            print(f"{key} batch {args.batch}: wall min/median ms, overhead vs {REF}")
            for name, s in r.items():
                if not isinstance(s, dict):
                    continue
                print(
                    f"  {name:34s} {s['min_ms']:8.2f} {s['median_ms']:8.2f}"
                    f"  {s['overhead_min']:+7.1%} min {s['overhead_median']:+7.1%} median"
                    f" {s['overhead_paired_median']:+7.1%} paired"
                    f" | cpu {s['cpu_median_ms']:7.2f} ms {s['cpu_overhead_median']:+7.1%}"
                )
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    versions = {}
    for pkg in ("tritonclient", "geventhttpclient", "httpx", "uvicorn"):
        try:
            import importlib.metadata as md

            versions[pkg] = md.version(pkg)
        except Exception:  # noqa: BLE001 - not installed
            versions[pkg] = None
    record = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg": load,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": args.threads,
            **versions,
        },  # fmt: skip
        "note": (
            "min/median over interleaved rounds (methods shuffled each round); overhead = method / "
            "in-process - 1; paired = median of per-round ratios; cpu = this process's CPU "
            "time plus the server's, per call"
        ),
        "args": {"repeats": args.repeats, "batch": args.batch},
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
