"""Chapter 4: cross-model generalisation. Adversarial examples crafted on one model fool
others — linear, MLP, CNN, RNN and non-neural scikit-learn models alike.

Trains (or reuses, under ``OUT/models/``) every image model of the zoo on the chapter's
dataset, crafts PGD examples on each one (technique-specific routes for the non-neural
ones, see :mod:`advx.evaluate.crafting`), evaluates them on every model, prints the
transfer matrix and compares it with the qualitative findings of Papernot, McDaniel &
Goodfellow (2016). Writes ``OUT/transfer/transfer.json`` (rendered by chapter 9).

Leaves ``ctx.artifacts["transfer"]``: ``dir`` (the run directory), ``result`` (the
:class:`~advx.evaluate.transfer.TransferResult`) and ``findings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TITLE = "4. Transfer: examples crafted on one model fool others"

TORCH = ("linear", "mlp", "cnn", "rnn")
SKLEARN = ("logreg", "svm", "tree", "forest", "knn")
EPS = {"fashion-mnist": 0.1, "digits": 0.2}
#: Papernot et al.'s techniques and the zoo models playing them.
ROLES = {"dnn": "cnn", "lr": "logreg", "svm": "svm", "dt": "tree", "knn": "knn"}


def _reusable(model_dir: Path, arch: str, dataset: str, seed: int) -> bool:
    from advx.errors import CheckpointError
    from advx.models import read_info, verify

    try:
        info = read_info(model_dir)
        verify(model_dir, info)
    except CheckpointError:
        return False
    return info.get("arch") == arch and info.get("dataset") == dataset and info.get("seed") == seed


def _model(ctx: Any, arch: str, dataset: str) -> Any:
    """The zoo model ``arch`` trained on ``dataset`` (trained now, or reused)."""
    from advx.models import load
    from advx.training import default_config, train

    model_dir = ctx.out / "models" / f"{dataset}-{arch}"
    if not _reusable(model_dir, arch, dataset, ctx.seed):
        ctx.console.print(f"training {arch} on {dataset}")
        train(arch, dataset, config=default_config(arch, dataset, seed=ctx.seed), out=model_dir)
    return load(model_dir)


def run(ctx: Any) -> None:
    """Train the zoo, measure the transfer matrix, compare with Papernot et al. (2016)."""
    from rich.table import Table

    from advx.data import load as load_data
    from advx.evaluate.transfer import make_source, papernot_check, transfer_matrix

    dataset = "digits" if ctx.quick else "fashion-mnist"
    test: Any = ctx.artifacts.get("test") or load_data(dataset, "test")
    dataset = str(test.name)
    eps = EPS.get(dataset, 0.1)
    n = 150 if ctx.quick else 500
    models = {arch: _model(ctx, arch, dataset) for arch in (*TORCH, *SKLEARN)}
    train: Any = load_data(dataset, "train")
    train_x = train.x[: 2000 if ctx.quick else 10000]

    settings = {"steps": 10}
    sources = {
        name: make_source(
            m,
            name=name,
            eps=eps,
            attack="pgd",
            settings=settings,
            input_shape=test.input_shape,
            bounds=test.bounds,
            num_classes=test.num_classes,
            substitute_data=train_x,
            seed=ctx.seed,
        )  # fmt: skip
        for name, m in models.items()
    }
    ctx.console.print(f"crafting PGD-10 (eps={eps:g}) on {len(sources)} models, {n} test images")
    res = transfer_matrix(
        sources, models, test, eps=eps, attack="pgd", settings=settings, n=n, seed=ctx.seed,
        meta={"roles": ROLES, "data": dataset, "command": "advx demo (chapter 4)"},
    )  # fmt: skip
    out = ctx.out / "transfer"
    res.save(out)

    table = Table(title=f"transfer success, eps={eps:g} (rows craft, columns evaluate)")
    table.add_column("source \\ target")
    for t in res.targets:
        table.add_column(t, justify="right")
    for i, s in enumerate(res.sources):
        cells = ["—" if v is None else f"{100 * v:.0f}" for v in res.matrix[i]]
        table.add_row(s, *cells)
    ctx.console.print(table)
    ctx.console.print(
        "routes: " + ", ".join(f"{k}: {v}" for k, v in res.routes.items()), style="dim"
    )
    findings = papernot_check(res, ROLES)
    for f in findings:
        mark = {True: "[green]agrees[/green]", False: "[red]differs[/red]", None: "n/a"}[f["holds"]]
        ctx.console.print(f"{mark} {f['claim']} [dim]({f['evidence']})[/dim]")
    from advx.report.story import save_chapter

    save_chapter(
        ctx.out, "ch04", {"transfer_dir": out.name, "dataset": dataset, "eps": eps, "n": n}
    )
    ctx.artifacts["transfer"] = {"dir": out, "result": res, "findings": findings}
