"""Evaluation: robust accuracy over a suite of attacks, transfer matrices, red flags.

* :func:`evaluate` (:mod:`~advx.evaluate.runner`) — clean accuracy, then each attack of a
  suite on what is still robust; results stream to JSON Lines, runs resume and shard over
  ``torchrun`` processes.
* :mod:`~advx.evaluate.suites` — suites as data (``quick``, ``standard``, ``thorough``);
  :mod:`~advx.evaluate.escalation` decides who the adaptive steps run on.
* :mod:`~advx.evaluate.flags` — red-flag checks for gradient masking and broken setups;
  :mod:`~advx.evaluate.probe` picks the examples they query the model on.
* :mod:`~advx.evaluate.transfer` — transfer-success matrices across models (non-neural
  sources through :mod:`~advx.evaluate.crafting`) and papers' findings checked on them.

What a run reads and writes, one module each: :mod:`~advx.evaluate.data` (the data
protocol), :mod:`~advx.evaluate.records` (the results file),
:mod:`~advx.evaluate.rundir` (the run directory and resuming it),
:mod:`~advx.evaluate.identity` (what the numbers were computed from),
:mod:`~advx.evaluate.provenance` (versions and command, for the reader),
:mod:`~advx.evaluate.summary` (the headline numbers, from the records alone) and
:mod:`~advx.evaluate.progress`. These modules import each other by full name, never this
package, so there is no loop through this file.

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
