"""``advx text``: attack text classifiers (``attack``) and measure transfer (``transfer``).

Thin: parses options, loads the model and the texts, calls :mod:`advx.text`, prints a
table, diffs or JSON.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from advx.cli._common import print_json, user_errors
from advx.cli._model_options import ModelArgs, model_options
from advx.errors import ConfigError, InputError
from advx.jsonio import dumps

app = typer.Typer(
    name="text",
    help="Text adversarial examples: attack a text classifier, or carry its adversarial "
    "texts to other models. Recipes: deepwordbug, pwws, textfooler, hotflip.",
    no_args_is_help=True,
)

SUMMARY_KEYS = (
    "clean_accuracy",
    "robust_accuracy",
    "success_rate",
    "mean_words_changed_pct",
    "mean_queries",
    "seconds",
)


def _open_model(spec: str | Path, model_args: ModelArgs | None = None) -> Any:
    """A text target from a checkpoint, a Hugging Face directory, a module:function
    returning an object with ``predict_proba(list[str])``, or the URL of an Open Inference
    Protocol server whose one model takes texts (BYTES)."""
    from advx.models.external import open_model, spec_kind
    from advx.text.adapters import as_text_target

    spec = str(spec)
    if spec.startswith(("http://", "https://")):  # a text model behind a V2 server
        from advx.text.adapters import HttpTextTarget

        return HttpTextTarget(spec, outputs="auto")
    kind = spec_kind(spec)
    if kind is None:
        raise InputError(
            f"no model at {spec}; train one with `advx train --data tweets-binary --model "
            f"wordcnn --out {spec}`, or give a Hugging Face model directory or module:function"
        )
    if kind not in ("checkpoint", "huggingface", "factory"):
        raise ConfigError(
            f"{spec} is a {kind} model; text attacks need a text classifier: an advx text "
            "checkpoint, a Hugging Face sequence-classification directory, or a "
            "module:function returning an object with predict_proba(list[str])"
        )
    loaded = open_model(spec, model_args.options if model_args else None)
    if model_args is not None and callable(getattr(loaded, "to_device", None)):
        loaded.to_device(model_args.device)  # Hugging Face models; the zoo's run on the CPU
    try:
        return as_text_target(loaded)
    except InputError:
        raise ConfigError(
            f"{spec} gives a {type(loaded).__name__}, not a text classifier (it needs "
            "predict_proba(list[str]) and num_classes)"
        ) from None


def _texts(
    model_dir: str | Path, data: str | None, split: str, n: int
) -> tuple[list[str], Any, str]:
    from advx.cli._targets import target_info
    from advx.data import TextDataset, load

    name = data or target_info(str(model_dir)).get("dataset")
    if not name:
        raise ConfigError(f"{model_dir} names no dataset; pass --data (e.g. tweets-binary)")
    ds = load(name, split)
    if not isinstance(ds, TextDataset):
        raise ConfigError(f"{name!r} is not a text dataset")
    if n < 1:
        raise InputError(f"--n must be >= 1, got {n}")
    ds = ds.head(min(n, len(ds)))
    return list(ds.texts), ds.y, name


def _pct(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


@app.command("attack")
@model_options
def attack(
    model_dir: str = typer.Argument(
        ...,
        metavar="MODEL",
        help="Text model: a directory from `advx train` / `advx import`, a Hugging Face "
        "sequence-classification directory, a module:function returning a text model, or "
        "the URL of an Open Inference Protocol server taking texts (BYTES).",
    ),
    recipe: str = typer.Option(
        "textfooler", "--recipe", "-r", help="Recipe: deepwordbug, pwws, textfooler or hotflip."
    ),
    text: list[str] = typer.Option(
        [], "--text", help="Attack this sentence instead of a data set (repeatable)."
    ),
    label: int | None = typer.Option(
        None, "--label", help="True class of --text (default: the model's prediction)."
    ),
    target: int | None = typer.Option(
        None, "--target", help="Targeted attack: the class to reach."
    ),
    n: int = typer.Option(200, "--n", help="Number of texts (the first N of the split)."),
    max_queries: int | None = typer.Option(
        2000, "--max-queries", help="Per-text budget of model queries (0: unlimited)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the attack's random choices."),
    data: str | None = typer.Option(
        None, "--data", help="Text dataset (default: the model's own)."
    ),
    split: str = typer.Option("test", "--split", help="Split to attack."),
    show: int = typer.Option(5, "--show", help="Print the diffs of this many successful examples."),
    out: Path | None = typer.Option(
        None, "--out", help="Save all per-example results to this JSON file."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print one JSON object (the summary), no table."
    ),
    *,
    model_args: ModelArgs,
) -> None:
    """Attack a text classifier with a recipe; report success, words changed, queries.

    Example: advx text attack runs/tweets-wordcnn --recipe deepwordbug --n 200 --json

    Example: advx text attack runs/tweets-wordcnn --text "I love this car"
    """
    with user_errors():
        import torch
        from rich.console import Console

        from advx.text import recipes
        from advx.text.result import diff_rich

        model = _open_model(model_dir, model_args)
        attack_ = recipes.create(recipe, model=model, max_queries=max_queries or None, seed=seed)
        if text:
            texts = list(text)
            if label is None:
                y = model.predict_proba(texts).argmax(dim=1)
            else:
                y = torch.full((len(texts),), int(label))
            source = "--text"
        else:
            texts, y, source = _texts(model_dir, data, split, n)
        targets = None if target is None else [int(target)] * len(texts)
        console = Console(stderr=json_out)
        from rich.progress import Progress

        with Progress(transient=True, console=Console(stderr=True), disable=len(texts) < 5) as bar:
            task = bar.add_task(f"{recipe} on {len(texts)} texts", total=len(texts))
            with model_args.autocast():
                res = attack_(
                    model, texts, y, targets=targets, progress=lambda i, r: bar.advance(task)
                )
        summary = res.summary()
        if out is not None:
            res.save(out)
    if json_out:
        print_json(
            {k: summary[k] for k in SUMMARY_KEYS}
            | {"recipe": recipe, "n": len(res), "data": source, "model": str(model_dir)}
            | ({"results": str(out)} if out is not None else {})
        )
        return
    shown = 0
    for r in res:
        if (r.succeeded or text) and shown < max(show, len(text)):
            console.print(diff_rich(r, res.class_names))
            console.print()
            shown += 1
    console.print(
        f"[bold]{recipe}[/bold] on {len(res)} texts ({source}): success {_pct(summary['success_rate'])}, "
        f"clean accuracy {_pct(summary['clean_accuracy'])} -> robust {_pct(summary['robust_accuracy'])}, "
        f"words changed {summary['mean_words_changed_pct'] or 0:.1f}%, "
        f"queries {summary['mean_queries'] or 0:.1f}/text, {summary['seconds']:.1f} s"
    )
    if out is not None:
        console.print(f"saved {out}", style="dim")


@app.command("transfer")
def transfer(
    source: list[str] = typer.Option(
        [], "--source", "-s", help="Text model directory to craft on (repeatable)."
    ),
    target: list[str] = typer.Option(
        [],
        "--target",
        "-t",
        help="Text model to evaluate on: a directory, or a server URL (labels suffice; "
        "repeatable).",
    ),
    recipe: str = typer.Option("textfooler", "--recipe", "-r", help="Recipe used on each source."),
    n: int = typer.Option(200, "--n", help="Number of texts (the first N of the split)."),
    max_queries: int | None = typer.Option(
        2000, "--max-queries", help="Per-text budget on each source (0: unlimited)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the attack."),
    data: str | None = typer.Option(
        None, "--data", help="Text dataset (default: the first source's)."
    ),
    split: str = typer.Option("test", "--split", help="Split to use."),
    out: Path | None = typer.Option(None, "--out", help="Save the matrix as JSON here."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object, no table."),
) -> None:
    """Cross-model generalisation: craft adversarial texts on each source, evaluate on each target.

    A cell counts texts that fooled the source and that the target classified correctly
    before; it is the share the target now gets wrong.

    Example: advx text transfer --source runs/tweets-wordcnn --target runs/tweets-lstm
    """
    with user_errors():
        from advx.text.transfer import transfer_matrix

        if not source or not target:
            raise ConfigError("give at least one --source and one --target")
        names = {}
        for spec in [*source, *target]:
            if spec not in names:
                names[spec] = Path(spec).name or spec
        models = {spec: _open_model(spec) for spec in names}
        texts, y, _ = _texts(source[0], data, split, n)
        res = transfer_matrix(
            {names[s]: models[s] for s in source},
            {names[t]: models[t] for t in target},
            texts, y, recipe=recipe, max_queries=max_queries or None, seed=seed,
        )  # fmt: skip
        doc = res.to_json()
        if out is not None:
            from advx.io import atomic_write_text

            atomic_write_text(out, dumps(doc, indent=1))
    if json_out:
        print_json(doc)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"text transfer ({recipe}, n={len(texts)}): rows craft, columns evaluate",
        title_justify="left",
    )
    table.add_column("source \\ target")
    for t in res.targets:
        table.add_column(t, justify="right")
    table.add_column("on itself", justify="right")
    for i, s in enumerate(res.sources):
        table.add_row(s, *[_pct(v) for v in res.matrix[i]], _pct(res.source_success[i]))
    Console().print(table)


def register(root: typer.Typer) -> None:
    """Add ``advx text`` to the CLI."""
    root.add_typer(app, name="text")
