"""Where a result came from, for a person reading it later: versions and the command.

Recorded in ``run.json`` and ``transfer.json`` (the report's "reproduce" section) and
never compared: what ``--resume`` compares is the run's identity
(:mod:`advx.evaluate.identity`: model weights, data, advx source).
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import torch


def versions() -> dict[str, str]:
    """Versions of the pieces that decide the numbers (for the reproduce section)."""
    import numpy

    import advx

    out = {
        "advx": advx.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }
    try:
        import sklearn

        out["scikit-learn"] = sklearn.__version__
    except ImportError:  # pragma: no cover - sklearn is a dependency
        pass
    return out


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that started this process, as a user would type it again:
    ``advx eval ...`` (or ``torchrun --nproc_per_node N -m advx eval ...``)."""
    args = list(sys.argv if argv is None else argv)
    if not args:
        return ""
    prog = Path(args[0]).name
    if prog in ("advx", "__main__.py"):
        args = args[1:]
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1:
            return shlex.join(["torchrun", "--nproc_per_node", str(world), "-m", "advx", *args])
        return shlex.join(["advx", *args])
    return shlex.join(args)
