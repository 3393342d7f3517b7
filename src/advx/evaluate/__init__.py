"""Evaluation: robust accuracy over a suite of attacks, transfer matrices, red flags.

* :func:`evaluate` — clean accuracy, then each attack of a suite on what is still robust;
  results stream to JSON Lines, runs resume and shard over ``torchrun`` processes.
* :mod:`~advx.evaluate.suites` — suites as data (``quick``, ``standard``, ``thorough``).
* :mod:`~advx.evaluate.flags` — red-flag checks for gradient masking and broken setups.
* :mod:`~advx.evaluate.transfer` — transfer-success matrices across models.

Example:
    >>> from advx.evaluate import evaluate
    >>> report = evaluate(WhiteBox(model), (x, y), eps=0.1, suite="quick")  # doctest: +SKIP
"""

from __future__ import annotations

from advx.evaluate.runner import TensorData, evaluate
from advx.evaluate.suites import SUITES, Suite, SuiteAttack, load_suite
from advx.evaluate.summary import EvalReport, summarize_dir

__all__ = [
    "SUITES",
    "EvalReport",
    "Suite",
    "SuiteAttack",
    "TensorData",
    "evaluate",
    "load_suite",
    "summarize_dir",
]
