"""Helpers shared by command modules: error reporting, JSON output, number parsing."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer

from advx.errors import AdvxError, ConfigError
from advx.jsonio import dumps

F = TypeVar("F", bound=Callable[..., Any])
_FRACTION = re.compile(r"^\s*([-+]?[0-9.eE+-]+)\s*/\s*([0-9.eE+-]+)\s*$")


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


def parse_float(raw: str) -> float:
    """A float from the command line; accepts fractions like ``8/255`` and ``inf``."""
    m = _FRACTION.match(raw)
    try:
        if m:
            return float(m.group(1)) / float(m.group(2))
        return float(raw)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"{raw!r} is not a number (examples: 0.1, 8/255)") from None
