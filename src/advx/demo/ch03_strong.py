"""Chapter 3: stronger white-box attacks. Auto-PGD drives robust accuracy to about zero
at the same eps as chapter 2; the minimal-perturbation attacks (DeepFool, Carlini-Wagner
L2) show how *small* a perturbation suffices when there is no budget at all.

Reads ``ctx.artifacts["model"]`` and ``ctx.artifacts["test"]``. Leaves
``ctx.artifacts["strong"]``: ``summaries`` by attack slug.
"""

from __future__ import annotations

from typing import Any, cast

from advx.demo import DemoContext

TITLE = "3. Stronger white-box attacks: APGD, DeepFool, Carlini-Wagner"


def run(ctx: DemoContext) -> None:
    """Run APGD-CE (budgeted) and DeepFool / CW-L2 (minimal) and tabulate."""
    from rich.table import Table

    from advx.attacks import AttackResult, create
    from advx.metrics import summary
    from advx.targets import WhiteBox

    model, test = ctx.artifacts["model"], ctx.artifacts["test"]
    eps = 0.2 if test.name == "digits" else 0.1
    n = 100 if ctx.quick else 200
    x, y = test.x[:n], test.y[:n]
    target = WhiteBox(model)
    runs: dict[str, Any] = {
        "apgd-ce": create("apgd-ce", eps=eps, seed=ctx.seed),
        "deepfool": create("deepfool", norm="l2"),
        "cw-l2": create("cw-l2", steps=50 if ctx.quick else 100, binary_search_steps=5),
    }
    summaries: dict[str, dict[str, Any]] = {}
    rows, minimal = [], {}  # for the report: the table and the minimal attacks' distances
    table = Table(title=f"stronger attacks on {n} {test.name} test images")
    for col in ("attack", "budget", "success", "robust acc", "median L2 / linf", "seconds"):
        table.add_column(col, justify="left" if col in ("attack", "budget") else "right")
    for slug, attack in runs.items():
        r = cast(AttackResult, attack(target, x, y))
        s = summaries[slug] = summary(r)
        dist = s["median_distance"]
        rows.append(
            {**s, "attack": slug, "budget": f"linf {eps:g}" if slug == "apgd-ce" else "none"}
        )
        if slug != "apgd-ce":
            minimal[slug] = {"norm": r.threat.norm, "distance": r.distance.tolist(),
                             "succeeded": r.succeeded.tolist(),
                             "correct": (r.pred_clean == r.y).tolist()}  # fmt: skip
        table.add_row(
            slug,
            f"linf {eps:g}" if slug == "apgd-ce" else "none (minimal)",
            f"{100 * (s['success_rate'] or 0):.1f}%",
            f"{100 * s['robust_accuracy']:.1f}%",
            f"{dist:.3f} ({r.threat.norm})" if dist is not None else "—",
            f"{s['seconds']:.1f}",
        )
    ctx.console.print(table)
    ctx.console.print(
        "With no budget every image can be flipped; the median L2 distance the minimal "
        "attacks need is what 'imperceptible' means for this model."
    )
    from advx.report.story import save_chapter

    save_chapter(ctx.out, "ch03", {"dataset": test.name, "eps": eps, "n": n, "runs": rows,
                                   "minimal": minimal})  # fmt: skip
    ctx.artifacts["strong"] = {"summaries": summaries, "eps": eps}
