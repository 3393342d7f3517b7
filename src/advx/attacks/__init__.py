"""Attacks on images and tabular inputs (text attacks live in :mod:`advx.text`).

Each attack is a plain function holding the math (``fgsm``, ``pgd``...) plus a thin,
frozen, keyword-only class holding validated settings, registered by slug::

    from advx.attacks import create
    from advx.targets import WhiteBox
    result = create("pgd", eps=0.1, steps=20)(WhiteBox(model), x, y)
"""

from __future__ import annotations

from advx.attacks.base import Attack
from advx.attacks.dataset import attack_dataset
from advx.attacks.registry import create, entries, get, names, register
from advx.attacks.result import AttackResult, Status, SweepResult

__all__ = [
    "Attack",
    "AttackResult",
    "Status",
    "SweepResult",
    "attack_dataset",
    "create",
    "entries",
    "get",
    "names",
    "register",
]
