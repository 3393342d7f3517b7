"""Helpers shared by command modules: error reporting and JSON output."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer

from advx.errors import AdvxError
from advx.jsonio import dumps

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn advx's typed errors into a one-line message and exit code 2 (no traceback)."""
    try:
        yield
    except AdvxError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        typer.secho("interrupted", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=130) from None


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout (the contract of every ``--json`` flag); strict
    JSON: NaN/inf values are printed as ``null`` (:mod:`advx.jsonio`)."""
    sys.stdout.write(dumps(obj, indent=None, sort_keys=False, default=str) + "\n")
