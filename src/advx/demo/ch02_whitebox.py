"""Chapter 2: white-box attacks. FGSM flips predictions with a perturbation too small to
matter to a person; targeted, it picks the wrong class we ask for; PGD then drives robust
accuracy to about zero.

Reads ``ctx.artifacts["model"]`` (a :class:`~advx.models.adapter.Classifier`) and
``ctx.artifacts["test"]`` (an :class:`~advx.data.core.ImageDataset`) from chapter 1.
Leaves ``ctx.artifacts["whitebox"]``: ``eps``, ``n``, ``x``/``y`` (the attacked inputs),
``results`` and ``summaries`` by run name, ``figures`` by run name, and ``pair`` (the
targeted source and target class names).
"""

from __future__ import annotations

from typing import Any, cast

import torch

from advx.demo import DemoContext

TITLE = "2. White-box attacks: FGSM and PGD"

# (source, target) pairs chosen because the story reads well and single-step FGSM already
# succeeds on most examples at the chapter's eps (measured on the demo models).
PAIRS = {"fashion-mnist": ("Sneaker", "Bag"), "digits": ("3", "8")}
EPS = {"fashion-mnist": 0.1, "digits": 0.2}


def _pair(class_names: tuple[str, ...], dataset: str) -> tuple[int, int]:
    src, dst = PAIRS.get(dataset, (class_names[0], class_names[1]))
    if src in class_names and dst in class_names:
        return class_names.index(src), class_names.index(dst)
    return 0, 1


def run(ctx: DemoContext) -> None:
    """Attack chapter 1's model with FGSM (untargeted, targeted) and PGD; draw and tabulate."""
    from rich.table import Table

    from advx.attacks import AttackResult, create
    from advx.metrics import summary
    from advx.report.figures import adversarial_figure
    from advx.targets import WhiteBox

    model, test = ctx.artifacts["model"], ctx.artifacts["test"]
    dataset = str(test.name)
    eps = EPS.get(dataset, 0.1)
    n = 200 if ctx.quick else 500
    x, y = test.x[:n], test.y[:n]
    names = tuple(test.class_names)
    target = WhiteBox(model, name=f"{dataset} {type(model).__name__}")
    src, dst = _pair(names, dataset)
    # the targeted runs use every test image of the source class among the first 5n
    mask = test.y[: 5 * n] == src
    xs, ys = test.x[: 5 * n][mask], test.y[: 5 * n][mask]
    to_dst = torch.full_like(ys, dst)
    pair = f"{names[src]} → {names[dst]}"

    runs: dict[str, tuple[str, Any, torch.Tensor, torch.Tensor, Any]] = {
        "fgsm": ("untargeted", create("fgsm", eps=eps), x, y, None),
        "fgsm-targeted": (pair, create("fgsm", eps=eps), xs, ys, to_dst),
        "pgd": ("untargeted", create("pgd", eps=eps, steps=20, seed=ctx.seed), x, y, None),
        "pgd-targeted": (pair, create("pgd", eps=eps, steps=20, seed=ctx.seed), xs, ys, to_dst),
    }
    results: dict[str, AttackResult] = {}
    figures = {}
    for key, (_, attack, xa, ya, tg) in runs.items():
        r = results[key] = cast(AttackResult, attack(target, xa, ya, targets=tg))  # one eps
        if key != "pgd-targeted":
            figures[key] = adversarial_figure(
                xa, r, names, k=4, path=ctx.out / f"ch02_{key}.png",
                title=f"{key.split('-')[0].upper()}  {pair if tg is not None else 'untargeted'}  "
                f"linf eps={eps:g}",
            )  # fmt: skip

    table = Table(title=f"white-box attacks on the {dataset} model, linf eps={eps:g}")
    for col in ("attack", "goal", "images", "success", "robust acc", "passes", "seconds"):
        left = col in ("attack", "goal")
        table.add_column(col, justify="left" if left else "right", no_wrap=left)
    summaries = {k: summary(r) for k, r in results.items()}
    clean = summaries["fgsm"]["clean_accuracy"]
    table.add_row("none", "—", str(len(y)), "—", f"{100 * clean:.1f}%", "—", "—")
    for key, (goal, *_rest) in runs.items():
        s = summaries[key]
        table.add_row(
            key.split("-")[0].upper(), goal, str(s["n"]), f"{100 * (s['success_rate'] or 0):.1f}%",
            f"{100 * s['robust_accuracy']:.1f}%" if goal == "untargeted" else "—",
            f"{s['mean_queries'] or 0:.1f}", f"{s['seconds']:.2f}",
        )  # fmt: skip
    ctx.console.print(table)
    ctx.console.print(
        f"A change of at most {eps:g} per pixel (on a 0..1 scale) fools the model; "
        f"PGD leaves robust accuracy at {100 * summaries['pgd']['robust_accuracy']:.1f}% "
        f"and reaches '{names[dst]}' from '{names[src]}' "
        f"{100 * (summaries['pgd-targeted']['success_rate'] or 0):.0f}% of the time."
    )
    for f in figures.values():
        ctx.console.print(f"[dim]figure: {f}[/dim]")
    ctx.artifacts["whitebox"] = {
        "eps": eps,
        "n": len(y),
        "x": x,
        "y": y,
        "results": results,
        "summaries": summaries,
        "figures": figures,
        "pair": (names[src], names[dst]),
    }
