"""Papers' qualitative findings about transfer, checked on a measured matrix.

A finding is data (:class:`Finding`): an id, the claim in one sentence, and a small check
that reads the matrix by role (``dnn``, ``lr``, ``svm``, ``dt``, ``knn``: which model of
the matrix plays which technique of the paper) and returns whether the claim holds with
the numbers compared. :data:`PAPERNOT_CHECKS` holds Papernot, McDaniel & Goodfellow
(2016)'s; another paper's findings are another table passed to :func:`check_findings`.
See docs/TRANSFER.md for the measured matrix of the demo against these findings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class TransferMatrix(Protocol):
    """What the findings read of a transfer measurement
    (:class:`advx.evaluate.transfer.TransferMatrix` is one; this module does not import
    it, since that module imports this one)."""

    @property
    def matrix(self) -> list[list[float | None]]:
        """Rates, rows = sources, columns = targets (None: no eligible example)."""
        ...

    @property
    def sources(self) -> tuple[str, ...]:
        """Model names of the rows."""
        ...

    @property
    def targets(self) -> tuple[str, ...]:
        """Model names of the columns."""
        ...


@dataclass(frozen=True)
class RoleRates:
    """A measured matrix read by role (``dnn``, ``lr`` ...): the rates a finding compares.

    Attributes:
        into: role -> mean transfer rate into that role as a target (its column), over
            the other roles' rows (off the diagonal; cells without examples left out).
        out_of: role -> mean transfer rate out of that role as a source (its row), over
            the other roles' columns.
        matrix: the success rates ``[source][target]``.
        sources, targets: role -> row / column index (roles missing from the matrix are
            absent).
    """

    into: dict[str, float]
    out_of: dict[str, float]
    matrix: list[list[float | None]]
    sources: dict[str, int]
    targets: dict[str, int]

    @classmethod
    def of(cls, result: TransferMatrix, roles: Mapping[str, str]) -> RoleRates:
        """Read ``result`` with ``roles`` (role -> model name in the matrix)."""
        m = result.matrix
        src = {r: result.sources.index(nm) for r, nm in roles.items() if nm in result.sources}
        tgt = {r: result.targets.index(nm) for r, nm in roles.items() if nm in result.targets}

        def mean(values: list[float | None]) -> float | None:
            vals = [v for v in values if v is not None]
            return sum(vals) / len(vals) if vals else None

        cols = {r: mean([m[i][tgt[r]] for o, i in src.items() if o != r]) for r in tgt}
        rows = {r: mean([m[src[r]][j] for o, j in tgt.items() if o != r]) for r in src}
        return cls(
            into={r: v for r, v in cols.items() if v is not None},
            out_of={r: v for r, v in rows.items() if v is not None},
            matrix=m,
            sources=src,
            targets=tgt,
        )

    def cell(self, source: str, target: str) -> float | None:
        """The rate from role ``source`` into role ``target`` (None if either is missing
        or the cell has no eligible example)."""
        if source not in self.sources or target not in self.targets:
            return None
        return self.matrix[self.sources[source]][self.targets[target]]


#: ``(holds, evidence)`` of a finding on a matrix, or None when the roles it needs are
#: missing from the matrix.
Verdict = tuple[bool, str] | None


@dataclass(frozen=True)
class Finding:
    """A qualitative claim of a paper and the check that decides it on a measured matrix.

    Attributes:
        id: short stable name (``"dt-vulnerable-target"``).
        claim: the claim in one sentence, as the report prints it.
        check: :class:`RoleRates` -> :data:`Verdict`.
    """

    id: str
    claim: str
    check: Callable[[RoleRates], Verdict]


def _percentages(values: Mapping[str, float]) -> str:
    return ", ".join(f"{r}={v:.0%}" for r, v in sorted(values.items(), key=lambda kv: kv[1]))


def ranked(
    role: str, *, column: bool, highest: bool, within: int
) -> Callable[[RoleRates], Verdict]:
    """A check: ``role``'s mean column (``column=True``: as a target) or row (as a
    source) is among the ``within`` highest (``highest=True``) or lowest of all roles."""
    what = "into each target" if column else "out of each source"

    def check(rates: RoleRates) -> Verdict:
        values = rates.into if column else rates.out_of
        if role not in values:
            return None
        order = sorted(values, key=lambda r: values[r], reverse=highest)
        return order.index(role) < within, f"mean transfer rate {what}: {_percentages(values)}"

    return check


def _lr_fools_svm(rates: RoleRates) -> Verdict:
    v = rates.cell("lr", "svm")
    return None if v is None else (v > 0.5, f"LR -> SVM: {v:.0%}")


def _knn_below_average(rates: RoleRates) -> Verdict:
    if "knn" not in rates.into:
        return None
    knn, avg = rates.into["knn"], sum(rates.into.values()) / len(rates.into)
    return knn < avg, f"kNN column {knn:.0%} vs average {avg:.0%}"


#: The qualitative findings of Papernot, McDaniel & Goodfellow (2016), Section 4 / Fig. 3
#: (cross-technique transferability on MNIST), as advx checks them on a measured matrix
#: whose rows/columns include the roles dnn, lr, svm, dt, knn.
PAPERNOT_CHECKS: tuple[Finding, ...] = (
    Finding(
        "dnn-robust-target",
        "DNN is among the most robust targets: its column is the lowest or second lowest (off the diagonal).",
        ranked("dnn", column=True, highest=False, within=2),
    ),
    Finding(
        "dt-vulnerable-target",
        "DT is the most vulnerable target: its column is the highest (off the diagonal).",
        ranked("dt", column=True, highest=True, within=1),
    ),
    Finding(
        "lr-strong-source",
        "LR samples transfer widely: the LR row (off the diagonal) is the highest or second highest.",
        ranked("lr", column=False, highest=True, within=2),
    ),
    Finding(
        "lr-to-svm",
        "LR samples fool the SVM more often than not (both are linear).",
        _lr_fools_svm,
    ),
    Finding(
        "dt-weak-source",
        "DT samples transfer poorly: the DT row (off the diagonal) is the lowest or second lowest.",
        ranked("dt", column=False, highest=False, within=2),
    ),
    Finding(
        "knn-robust-target",
        "kNN is a robust target: its column (off the diagonal) is below the average column.",
        _knn_below_average,
    ),
)

#: ``(id, claim)`` of each of :data:`PAPERNOT_CHECKS`.
PAPERNOT_FINDINGS: tuple[tuple[str, str], ...] = tuple((f.id, f.claim) for f in PAPERNOT_CHECKS)


def check_findings(
    result: TransferMatrix, roles: Mapping[str, str], findings: Sequence[Finding]
) -> list[dict[str, Any]]:
    """Decide each of ``findings`` on ``result``.

    Args:
        result: a measured matrix.
        roles: role (as the findings name them) -> model name in the matrix.
        findings: the checks, e.g. :data:`PAPERNOT_CHECKS`.

    Returns:
        One dict per finding: ``id``, ``claim``, ``holds`` (True/False, None when the
        roles needed are missing) and ``evidence`` (the numbers compared; ``""`` when
        ``holds`` is None).
    """
    rates = RoleRates.of(result, roles)
    out: list[dict[str, Any]] = []
    for f in findings:
        verdict = f.check(rates)
        holds, evidence = verdict if verdict is not None else (None, "")
        out.append({"id": f.id, "claim": f.claim, "holds": holds, "evidence": evidence})
    return out


def papernot_check(result: TransferMatrix, roles: Mapping[str, str]) -> list[dict[str, Any]]:
    """Check :data:`PAPERNOT_FINDINGS` on ``result``.

    Args:
        result: a matrix whose sources and targets include the models named in ``roles``.
        roles: role (``dnn``, ``lr``, ``svm``, ``dt``, ``knn``) -> model name in the matrix.

    Returns:
        One dict per finding: ``id``, ``claim``, ``holds`` (True/False, None when the
        roles needed are missing) and ``evidence`` (the numbers compared).
    """
    return check_findings(result, roles, PAPERNOT_CHECKS)
