"""Chapter 6: text. A few character edits flip a sentiment classifier.

Trains (or reuses) a small bag-of-embeddings sentiment model on ``tweets-binary``, then
runs DeepWordBug (Gao et al. 2018) on negative tweets about self-driving cars until one
flips to positive with one or two edited words, and shows the word-level diff. A short
run over the first test tweets gives the attack's success rate, words changed and
queries per tweet.

Writes ``OUT/ch06.html`` (the diffs) and ``OUT/ch06-results.json`` (every record).
Leaves in ``ctx.artifacts``: ``text_model_dir``, ``text_results`` (the
:class:`~advx.text.result.TextAttackResults` of the short run) and ``text_example``
(the shown :class:`~advx.text.result.TextAttackResult`).
"""

from __future__ import annotations

import html
import re
from typing import Any

TITLE = "6. Text: a few character edits flip a sentiment classifier"

ARCH = "bow"
CARS = re.compile(r"self[- ]?driving|driverless|autonomous|google car", re.IGNORECASE)


def _settings(quick: bool) -> dict[str, Any]:
    # quick: a small model on 3000 tweets (seconds); otherwise all 18k training tweets
    return (
        {"limit": 3000, "epochs": 4, "n": 40} if quick else {"limit": None, "epochs": 6, "n": 200}
    )


def run(ctx: Any) -> None:
    """Train (or reuse) a tweet sentiment model and flip a self-driving-car tweet."""
    from advx.data import TextDataset
    from advx.data import load as load_data
    from advx.demo.ch01_train import reusable
    from advx.errors import DataError
    from advx.io import atomic_write_text
    from advx.text import recipes
    from advx.text.models import load
    from advx.text.result import diff_html, diff_rich
    from advx.text.training import train
    from advx.training import default_config

    s = _settings(ctx.quick)
    dataset = "tweets-binary"
    config = default_config(ARCH, dataset, seed=ctx.seed, epochs=s["epochs"], limit=s["limit"])
    model_dir = ctx.out / "models" / f"{dataset}-{ARCH}{'-quick' if ctx.quick else ''}"
    if reusable(model_dir, arch=ARCH, dataset=dataset, epochs=config.epochs, seed=ctx.seed):
        ctx.console.print(f"reusing {model_dir}")
    else:
        ctx.console.print(
            f"training a {ARCH} sentiment model on {dataset} ({config.epochs} epochs)"
        )
        trained = train(ARCH, dataset, config=config, out=model_dir)
        ctx.console.print(f"test accuracy [bold]{100 * trained.test_accuracy:.1f}%[/bold]")
    model = load(model_dir)
    test = load_data(dataset, "test")
    if not isinstance(test, TextDataset):
        raise DataError(f"{dataset} did not load as a text dataset")
    names = model.class_names

    # 1. one tweet about self-driving cars, negative, flipped by one or two edits
    neg = names.index("negative")
    pool = [
        t for t, y in zip(test.texts, test.y.tolist(), strict=True) if y == neg and CARS.search(t)
    ]
    attack = recipes.create("deepwordbug", max_queries=300, seed=ctx.seed, max_words_share=0.25)
    shown = None
    for start in range(0, len(pool), 20):
        res = attack(model, pool[start : start + 20], [neg] * len(pool[start : start + 20]))
        hits = sorted((r for r in res if r.succeeded and r.words_changed <= 2),
                      key=lambda r: (r.words_changed, -r.conf_clean))  # fmt: skip
        if hits:
            shown = hits[0]
            break
    if shown is None:
        ctx.console.print("no self-driving-car tweet flipped within two edits this time")
    else:
        ctx.console.print("A negative tweet about self-driving cars, after DeepWordBug:")
        ctx.console.print(diff_rich(shown, names))

    # 2. the attack over the first test tweets
    texts, labels = list(test.texts[: s["n"]]), test.y[: s["n"]]
    run_res = recipes.create("deepwordbug", max_queries=500, seed=ctx.seed)(model, texts, labels)
    summ = run_res.summary()
    ctx.console.print(
        f"DeepWordBug on {len(run_res)} test tweets: success [bold]{100 * summ['success_rate']:.0f}%"
        f"[/bold], accuracy {100 * summ['clean_accuracy']:.0f}% -> "
        f"{100 * summ['robust_accuracy']:.0f}%, {summ['mean_words_changed_pct'] or 0:.0f}% of words "
        f"changed, {summ['mean_queries'] or 0:.0f} queries per tweet"
    )
    run_res.save(ctx.out / "ch06-results.json")
    examples = [r for r in run_res if r.succeeded][:8]
    blocks = [diff_html(r, names) for r in ([shown] if shown else []) + examples]
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        ".advx-diff{border:1px solid #ddd;border-radius:4px;padding:.3em 1em;margin:.6em 0}"
        ".advx-del{color:#b00;text-decoration:line-through}.advx-ins{color:#070;"
        "text-decoration:none;font-weight:bold}.advx-pred{color:#666;font-size:90%}"
    )
    page = ctx.out / "ch06.html"
    atomic_write_text(
        page,
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Chapter 6: text</title><style>{style}</style></head><body>"
        f"<h1>Chapter 6: character edits flip a sentiment classifier</h1>"
        f"<p>{html.escape(ARCH)} model on {dataset}; DeepWordBug (Gao et al. 2018). "
        f"Success {100 * summ['success_rate']:.0f}% on {len(run_res)} test tweets.</p>"
        + "".join(blocks)
        + "</body></html>\n",
    )
    ctx.console.print(f"[dim]page: {page}[/dim]")
    from advx.report.story import save_chapter

    save_chapter(ctx.out, "ch06", {
        "dataset": dataset, "arch": ARCH, "recipe": "DeepWordBug", "summary": summ,
        "class_names": list(names), "shown": shown.to_dict() if shown else None,
        "results_file": "ch06-results.json",
    })  # fmt: skip
    ctx.artifacts["text_model_dir"] = model_dir
    ctx.artifacts["text_results"] = run_res
    ctx.artifacts["text_example"] = shown
