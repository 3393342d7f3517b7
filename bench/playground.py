"""The playground as a person uses it: click-to-result time and server memory.

Starts ``advx playground`` in its own process (the small models on digits, the ImageNet
models), then with headless Chromium (Debian's ``/usr/bin/chromium``):

1. times click -> result on the Image tab for FGSM and PGD-10 on efficientnet-lite0
   (one photo, eps 4/255, targeted "ostrich"), ``--repeats`` times each (median, min);
2. runs ``--attacks`` FGSM attacks (the 7 photos in turn) in a row through the same HTTP API the page
   uses and reports the server's resident memory (RSS) after a warm-up and after them;
3. saves a screenshot of each tab (``--screenshots DIR``) after running its view.

Usage: ``python bench/playground.py [--attacks 50] [--repeats 5] [--screenshots DIR]``;
prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, small: str) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("advx")
    cmd = [str(exe), "playground", "--port", str(port), "--small", small, "--time-limit", "600"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(600):
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the playground did not start")


def click_to_result(page: Any, attack: str, steps: int) -> float:
    page.select_option("#attack", attack)
    if attack != "fgsm":
        page.fill("#steps", str(steps))
    page.eval_on_selector("#eps", "e => { e.value = 4; e.dispatchEvent(new Event('input')); }")
    page.eval_on_selector("#image-results", "e => { e.hidden = true; }")
    t0 = time.perf_counter()
    page.click("#run")
    page.wait_for_selector(
        "#image-results:not([hidden]), #run-error:not([hidden])", timeout=600_000
    )
    dt = time.perf_counter() - t0
    if page.is_visible("#run-error"):
        raise SystemExit(page.text_content("#run-error"))
    return dt


def run_view(page: Any, tab: str, button: str, done: str) -> None:
    page.click(f'#tabs button[data-tab="{tab}"]')
    page.click(button)
    page.wait_for_selector(
        f"{done}:not([hidden]), #tab-{tab} .controls > .error:not([hidden])", timeout=600_000
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--attacks", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--small", default="digits")
    ap.add_argument("--screenshots", type=Path, default=None)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(port, args.small)
    out: dict[str, Any] = {"cpu_count": os.cpu_count()}
    try:
        server = psutil.Process(proc.pid)
        with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=ARGS,
                viewport={"width": 1300, "height": 1000},
            )  # fmt: skip
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.goto(url)
            page.wait_for_selector("#photos .thumb img")
            page.check("#goal-targeted")
            page.fill("#target-class", "ostrich")
            click_to_result(page, "fgsm", 1)  # warm-up: loads the model
            for attack, steps in (("fgsm", 1), ("pgd", 10)):
                times = [click_to_result(page, attack, steps) for _ in range(args.repeats)]
                out[f"click_to_result_s_{attack}{steps if attack == 'pgd' else ''}"] = {
                    "median": statistics.median(times), "min": min(times), "runs": times,
                }  # fmt: skip
            if args.screenshots:
                args.screenshots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.screenshots / "playground-image.png"), full_page=True)
                views = [("defense", "#def-run", "#def-results"), ("text", "#text-run", "#text-results"),
                         ("transfer", "#tr-run", "#tr-results"), ("robustness", "#rb-run", "#rb-results")]  # fmt: skip
                for tab, button, done in views:
                    run_view(page, tab, button, done)
                    page.screenshot(
                        path=str(args.screenshots / f"playground-{tab}.png"), full_page=True
                    )
            cookies = {c["name"]: c["value"] for c in ctx.cookies()}
            ctx.close()
        # many attacks in a row through the page's own API (one client, one at a time)
        with httpx.Client(base_url=url, cookies=cookies, timeout=600) as c:

            def attack(i: int) -> None:
                body = {"model": "efficientnet-lite0", "image": {"photo": f"imagenet:{i % 7}"},
                        "attack": "fgsm", "eps_255": 4, "target": 9}  # fmt: skip
                job = c.post("/api/run/image", json=body).json()["id"]
                while True:
                    j = c.get(f"/api/jobs/{job}").json()
                    if j["state"] not in ("queued", "running"):
                        break
                    time.sleep(0.05)
                if j["state"] != "done":
                    raise SystemExit(f"attack {i}: {j}")

            for i in range(5):
                attack(i)
            rss0 = server.memory_info().rss
            t0 = time.perf_counter()
            rss = []
            for i in range(args.attacks):
                attack(i)
                if (i + 1) % 10 == 0:
                    rss.append(server.memory_info().rss / 2**20)
            out["attacks_in_a_row"] = args.attacks
            out["attacks_seconds"] = time.perf_counter() - t0
            out["rss_mib_after_warmup"] = rss0 / 2**20
            out["rss_mib_every_10"] = rss
            out["rss_growth_ratio"] = rss[-1] / (rss0 / 2**20)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
