"""Chapter 5: black-box. The demo model goes behind an HTTP endpoint speaking the Open
Inference Protocol (``advx serve``, in a background thread on a free loopback port); the
attacker sees only probabilities, then only labels, under a query budget.

Reads ``ctx.artifacts["model"]`` and ``ctx.artifacts["test"]`` from chapter 1. Leaves
``ctx.artifacts["blackbox"]``: ``summaries`` by run name and the server's URL.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, cast

from advx.demo import DemoContext

TITLE = "5. Black-box: attacking a model over HTTP with only its outputs"

#: HopSkipJump's L2 budget: each image stops once within it (so its query count is the
#: budget it needed); about the L2 size of a typical successful linf perturbation here.
L2_EPS = {"digits": 1.0, "fashion-mnist": 1.5}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(ctx: DemoContext) -> None:
    """Serve the demo model, attack it with Square (scores) and HopSkipJump (labels)."""
    import uvicorn
    from rich.table import Table

    from advx.adapters import HttpTarget
    from advx.attacks import AttackResult, create
    from advx.metrics import summary
    from advx.serve.server import create_app

    model, test = ctx.artifacts["model"], ctx.artifacts["test"]
    n = 20 if ctx.quick else 100
    budget = 300 if ctx.quick else 1000
    eps = 0.2 if test.name == "digits" else 0.1
    x, y = test.x[:n], test.y[:n]

    port = _free_port()
    app = create_app(model, name="demo", max_queries=None, dataset=str(test.name))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the demo server did not start")
            time.sleep(0.05)
        ctx.console.print(f"serving the demo model at [bold]{url}/v2/models/demo[/bold]")
        scores = HttpTarget(url, "demo", outputs="scores", name="demo over HTTP")
        labels = HttpTarget(url, "demo", outputs="labels", name="demo over HTTP (labels)")
        runs: dict[str, tuple[Any, Any]] = {
            "square (scores)": (
                create("square", eps=eps, max_queries=budget, seed=ctx.seed),
                scores,
            ),
            "hopskipjump (labels)": (
                create(
                    "hopskipjump",
                    norm="l2",
                    eps=L2_EPS.get(str(test.name), 1.5),
                    max_queries=budget,
                    seed=ctx.seed,
                ),
                labels,
            ),
        }
        summaries: dict[str, dict[str, Any]] = {}
        rows: list[
            dict[str, Any]
        ] = []  # for the report, with the per-image queries its curve is drawn from
        table = Table(title=f"black-box attacks over HTTP, {budget} queries per image")
        for col in ("attack", "sees", "success", "mean queries", "median distance", "seconds"):
            table.add_column(col, justify="left" if col in ("attack", "sees") else "right")
        for key, (attack, target) in runs.items():
            r = cast(AttackResult, attack(target, x, y))
            s = summaries[key] = summary(r)
            rows.append(
                {
                    **s,
                    "attack": key.split(" ")[0],
                    "sees": "probabilities" if "scores" in key else "labels",
                    "queries": r.queries.tolist(),
                    "succeeded": r.succeeded.tolist(),
                    "attacked": r.attacked.tolist(),
                }
            )
            dist = s["median_distance"]
            table.add_row(
                key,
                "probabilities" if "scores" in key else "labels only",
                f"{100 * (s['success_rate'] or 0):.1f}%",
                f"{s['mean_queries']:.0f}" if s["mean_queries"] is not None else "—",
                f"{dist:.3f} ({r.threat.norm})" if dist is not None else "—",
                f"{s['seconds']:.1f}",
            )
        ctx.console.print(table)
        ctx.console.print(
            f"Square needs no gradients: at linf eps={eps:g} it fools the model on "
            f"{100 * (summaries['square (scores)']['success_rate'] or 0):.0f}% of the images "
            "it attacks, asking the server only for probabilities."
        )
        from advx.report.story import save_chapter

        save_chapter(ctx.out, "ch05", {"budget": budget, "eps": eps, "n": n, "runs": rows})
        ctx.artifacts["blackbox"] = {"summaries": summaries, "url": url, "budget": budget}
    finally:
        server.should_exit = True
        thread.join(timeout=10)
