"""The ``advx`` command. Thin: each sub-command lives in its own module of this package,
parses its options, calls the library and prints.

Command modules are discovered automatically: any module here defining
``register(app: typer.Typer) -> None`` is added. Command modules must import only cheap
things at module level (heavy imports go inside the command function) so that
``advx --help`` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(
    name="advx",
    help=(
        "Adversarial examples made real: train a model, attack it white-box or black-box, "
        "measure transfer, defend, and report. Start with `advx demo`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """advx: adversarial examples made real."""


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def main() -> None:
    """Entry point of the ``advx`` console script."""
    app()
