"""Chapter 2: white-box attacks. It opens with the seed's moment: a real photo, correctly
classified by a pretrained ImageNet model (EfficientNet-Lite0), becomes "ostrich" under a
targeted perturbation of a few /255 per pixel. Then, on chapter 1's model, FGSM flips
predictions with a perturbation too small to matter to a person; targeted, it picks the
wrong class we ask for; PGD drives robust accuracy to about zero.

The ImageNet step runs targeted PGD (10 steps, early stop) at eps 1/255, 2/255 and
4/255 and reports the smallest eps that reached "ostrich" for each photo; all 7 bundled
photos normally, one (chelsea) with ``--quick`` (about 3 s of CPU time on one core).
Measured: every photo reaches "ostrich" at 2/255, five of seven at 1/255. Without the
ImageNet packages (``scripts/setup.sh`` installs them) the step is skipped with a note.

Reads ``ctx.artifacts["model"]`` (a :class:`~advx.models.adapter.Classifier`) and
``ctx.artifacts["test"]`` (an :class:`~advx.data.core.ImageDataset`) from chapter 1.
Leaves ``ctx.artifacts["imagenet"]`` (per photo: clean top-1 and the eps needed; the
figure's path) and ``ctx.artifacts["whitebox"]``: ``eps``, ``n``, ``x``/``y`` (the
attacked inputs), ``results`` and ``summaries`` by run name, ``figures`` by run name, and
``pair`` (the targeted source and target class names).
"""

from __future__ import annotations

from typing import Any, cast

import torch

from advx.demo import DemoContext

TITLE = "2. White-box attacks: a photo becomes an ostrich; FGSM and PGD"

# (source, target) pairs chosen because the story reads well and single-step FGSM already
# succeeds on most examples at the chapter's eps (measured on the demo models).
PAIRS = {"fashion-mnist": ("Sneaker", "Bag"), "digits": ("3", "8")}
EPS = {"fashion-mnist": 0.1, "digits": 0.2}


def _pair(class_names: tuple[str, ...], dataset: str) -> tuple[int, int]:
    src, dst = PAIRS.get(dataset, (class_names[0], class_names[1]))
    if src in class_names and dst in class_names:
        return class_names.index(src), class_names.index(dst)
    return 0, 1


OSTRICH = "ostrich"  # ImageNet class 9, the target of Goodfellow et al.'s figures
IMAGENET_EPS = (1 / 255, 2 / 255, 4 / 255)
IMAGENET_STEPS = 10


def imagenet_moment(ctx: DemoContext) -> dict[str, Any] | None:
    """A real photo, correctly classified by EfficientNet-Lite0, turned into "ostrich";
    returns the numbers (None when the ImageNet packages are missing)."""
    from rich.table import Table

    from advx.attacks import SweepResult, create
    from advx.data.photos import PHOTOS, load_photos
    from advx.errors import DataNotFoundError
    from advx.io import atomic_path
    from advx.models.pretrained import WeightsNotInstalledError, pretrained
    from advx.report.figures import triptych_with_top5
    from advx.targets import WhiteBox

    try:
        clf = pretrained("efficientnet-lite0")
        chosen = ["chelsea"] if ctx.quick else list(PHOTOS)
        photos = load_photos(names=chosen)
    except (WeightsNotInstalledError, DataNotFoundError) as e:
        ctx.console.print(f"[yellow]ImageNet step skipped: {e}[/yellow]")
        return None
    target = WhiteBox(clf, name="efficientnet-lite0")
    names = clf.class_names
    goal = names.index(OSTRICH)
    x, y = photos.x, photos.y
    attack = create("pgd", eps=list(IMAGENET_EPS), steps=IMAGENET_STEPS, seed=ctx.seed)
    sweep = cast(SweepResult, attack(target, x, y, targets=OSTRICH))
    hit = sweep.success_matrix()  # (E, N)
    with torch.no_grad(), clf.frozen_eval():
        before = clf(x).softmax(1)  # (N, 1000)

    table = Table(title=f"EfficientNet-Lite0 on real photos; targeted PGD-{IMAGENET_STEPS} "
                  f"to '{OSTRICH}'")  # fmt: skip
    for col in ("photo", "label", "model says", "eps needed", "passes"):
        table.add_column(col, justify="left" if col != "passes" else "right")
    rows: dict[str, Any] = {}
    for i in range(len(y)):
        first = int(hit[:, i].to(torch.int8).argmax()) if bool(hit[:, i].any()) else None
        needed = None if first is None else IMAGENET_EPS[first]
        passes = None if first is None else int(sweep[first].queries[i])
        p, c = before[i].max(0)
        photo = chosen[i]
        rows[photo] = {
            "label": names[int(y[i])],
            "top1": names[int(c)],
            "top1_prob": round(float(p), 3),
            "eps_needed_255": None if needed is None else round(needed * 255, 2),
        }
        table.add_row(
            photo, names[int(y[i])], f"{names[int(c)]} ({100 * float(p):.0f}%)",
            "—" if needed is None else f"{needed * 255:g}/255", "—" if passes is None else str(passes),
        )  # fmt: skip
    ctx.console.print(table)

    # the figure: the first photo at the smallest eps that reached the goal
    i = 0
    first = (
        int(hit[:, i].to(torch.int8).argmax()) if bool(hit[:, i].any()) else len(IMAGENET_EPS) - 1
    )
    x_adv = sweep[first].x_adv[i : i + 1]
    with torch.no_grad(), clf.frozen_eval():
        after = clf(x_adv).softmax(1)[0]
    eps = IMAGENET_EPS[first]
    fig = triptych_with_top5(
        x[i], x_adv[0], before[i], after, names, target=goal,
        title=f"EfficientNet-Lite0, targeted PGD-{IMAGENET_STEPS}, linf eps = {eps * 255:g}/255",
    )  # fmt: skip
    path = ctx.out / "ch02_imagenet_ostrich.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    photo = chosen[i]
    was, now = names[int(before[i].argmax())], names[int(after.argmax())]
    reached = bool(hit[first, i])
    ctx.console.print(
        f"EfficientNet-Lite0 calls the {photo} photo '{was}' "
        f"({100 * float(before[i].max()):.0f}%); a change of at most {eps * 255:g}/255 per pixel "
        + (f"makes it '{now}' ({100 * float(after.max()):.0f}%)." if reached
           else f"was not enough to reach '{OSTRICH}'.")
        + f" {int(hit[-1].sum())} of {len(y)} photos reach '{OSTRICH}' at "
        f"{IMAGENET_EPS[-1] * 255:g}/255."
    )  # fmt: skip
    ctx.console.print(f"[dim]figure: {path}[/dim]")
    return {
        "model": "efficientnet-lite0",
        "target": OSTRICH,
        "photos": rows,
        "reached_at_4_255": int(hit[-1].sum()),
        "n_photos": len(y),
        "figure": str(path),
    }


def run(ctx: DemoContext) -> None:
    """The ImageNet moment, then chapter 1's model under FGSM (untargeted, targeted) and
    PGD; draw and tabulate."""
    from rich.table import Table

    moment = imagenet_moment(ctx)
    if moment is not None:
        ctx.artifacts["imagenet"] = moment

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
