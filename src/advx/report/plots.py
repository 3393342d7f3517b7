"""Charts of saved results for reports (matplotlib Agg, imported lazily; PNG bytes).

* :func:`robust_curve` — robust accuracy vs eps, one line per suite step (cumulative),
  the clean accuracy dashed;
* :func:`transfer_heatmap` — the transfer matrix with its percentages written in;
* :func:`accuracy_vs_eps` — robust accuracy vs eps, all models (or attacks) on one plot;
* :func:`success_vs_queries` — black-box success rate vs queries per example;
* :func:`roc_figure` — a detector's ROC against plain and adaptive attacks;
* :func:`training_curves` — clean and robust accuracy across training epochs;
* :func:`png_base64` — embed PNG bytes in HTML.

Each figure function is pure: plain numbers in (as saved in results files), PNG bytes
out; the helpers :func:`accuracy_at_eps`, :func:`success_by_queries` and
:func:`roc_points` turn per-example results into the curves. The HTML report and the
playground share them. Figures are drawn on standalone ``matplotlib.figure.Figure``
objects (no pyplot state, safe in threads and servers).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from advx.errors import InputError


def _png(fig: Any, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def png_base64(data: bytes) -> str:
    """``data:`` URI of PNG bytes, for ``<img src=...>`` in a self-contained page."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def robust_curve(
    eps: Sequence[float],
    per_attack: Mapping[str, Mapping[float, float]],
    robust: Mapping[float, float],
    clean: float,
    *,
    title: str = "",
    norm: str = "linf",
) -> bytes:
    """Robust accuracy (%) against eps: one line per suite step (cumulative: after that
    step and all earlier ones), the worst case in bold, the clean accuracy dashed.

    Args:
        eps: the eps values (x axis).
        per_attack: step label -> eps -> cumulative robust accuracy (0..1).
        robust: eps -> robust accuracy of the whole suite.
        clean: clean accuracy (0..1).
    """
    from matplotlib.figure import Figure

    xs = sorted(float(e) for e in eps)
    fig = Figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.subplots()
    if not math.isnan(clean):
        ax.axhline(100 * clean, ls="--", color="0.5", lw=1, label="clean")
    for label, vals in per_attack.items():
        ys = [100 * vals[e] if vals.get(e) is not None else math.nan for e in xs]
        ax.plot(xs, ys, marker="o", ms=4, lw=1.2, label=f"after {label}")
    ax.plot(xs, [100 * robust[e] for e in xs], color="black", lw=2.4, marker="s", ms=5,
            label="robust (worst case)")  # fmt: skip
    ax.set_xlabel(f"eps ({norm})")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    return _png(fig)


def transfer_heatmap(
    sources: Sequence[str],
    targets: Sequence[str],
    matrix: Sequence[Sequence[float | None]],
    *,
    title: str = "",
) -> bytes:
    """Heatmap of transfer success rates (rows: sources, columns: targets), each cell
    annotated with its percentage ("—" where no example was eligible)."""
    import numpy as np
    from matplotlib.figure import Figure

    data = np.array(
        [[math.nan if v is None else 100 * v for v in row] for row in matrix], dtype=float
    )
    w = max(4.0, 0.9 * len(targets) + 2.2)
    h = max(2.5, 0.6 * len(sources) + 1.6)
    fig = Figure(figsize=(w, h), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(data, vmin=0, vmax=100, cmap="magma_r", aspect="auto")
    ax.set_xticks(range(len(targets)), [str(t) for t in targets], rotation=30, ha="right")
    ax.set_yticks(range(len(sources)), [str(s) for s in sources])
    ax.set_xlabel("target (evaluated on)")
    ax.set_ylabel("source (crafted on)")
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            v = data[i, j]
            txt = "—" if math.isnan(v) else f"{v:.0f}"
            ax.text(j, i, txt, ha="center", va="center", fontsize=8,
                    color="white" if not math.isnan(v) and v > 55 else "black")  # fmt: skip
    fig.colorbar(im, ax=ax, label="transfer success (%)")
    if title:
        ax.set_title(title, fontsize=10)
    return _png(fig)


# ----------------------------------------------------------------- curves from saved data
# Pure functions: per-example numbers a run saved in, points to plot out. The report and
# the playground draw from them, so neither recomputes an attack.


def accuracy_at_eps(
    distance: Sequence[float],
    succeeded: Sequence[bool],
    correct: Sequence[bool],
    eps: Sequence[float],
) -> list[float]:
    """Robust accuracy at each budget in ``eps`` from one minimal attack's per-example
    results: an example counts as robust at ``e`` when the model classified it correctly
    and the attack either failed or needed a perturbation larger than ``e``.

    Args:
        distance: per-example perturbation size of the attack's adversarial input.
        succeeded: per-example success of the attack (no budget).
        correct: per-example clean correctness (skipped examples are not correct).
        eps: the budgets to read off.

    Returns:
        One accuracy in [0, 1] per ``eps`` (NaN for zero examples).

    Example:
        >>> accuracy_at_eps([0.5, 1.5], [True, True], [True, True], [0, 1, 2])
        [1.0, 0.5, 0.0]
    """
    n = len(distance)
    if not (len(succeeded) == len(correct) == n):
        raise InputError("distance, succeeded and correct need one value per example")
    if n == 0:
        return [math.nan for _ in eps]
    out = []
    for e in eps:
        robust = sum(
            1
            for d, s, c in zip(distance, succeeded, correct, strict=True)
            if c and not (s and d <= e)
        )
        out.append(robust / n)
    return out


def success_by_queries(
    queries: Sequence[int], succeeded: Sequence[bool], attacked: Sequence[bool]
) -> tuple[list[int], list[float]]:
    """Success rate as a function of the query budget, from one early-stopping attack's
    per-example queries: with budget ``q`` an example counts as fooled when the attack
    succeeded on it within ``q`` queries (each example stops at its first success, so
    its query count is the budget it needed).

    Returns ``(budgets, rates)``: the sorted distinct query counts of successful examples
    (starting at 0) and the share of attacked examples fooled within each, a step curve.

    Example:
        >>> success_by_queries([10, 30, 100], [True, True, False], [True, True, True])
        ([0, 10, 30], [0.0, 0.3333333333333333, 0.6666666666666666])
    """
    if not (len(queries) == len(succeeded) == len(attacked)):
        raise InputError("queries, succeeded and attacked need one value per example")
    n = sum(1 for a in attacked if a)
    hits = sorted(int(q) for q, s, a in zip(queries, succeeded, attacked, strict=True) if s and a)
    xs, ys = [0], [0.0]
    for i, q in enumerate(hits, start=1):
        if q == xs[-1]:
            ys[-1] = i / n
        else:
            xs.append(q)
            ys.append(i / n)
    return xs, ys


def roc_points(
    negatives: Sequence[float], positives: Sequence[float]
) -> tuple[list[float], list[float], float]:
    """ROC curve of a score that should be higher on ``positives`` (e.g. a detector's
    anomaly score on adversarial inputs) than on ``negatives`` (clean inputs).

    Returns ``(false_positive_rates, true_positive_rates, auc)``, one point per distinct
    threshold from "flag nothing" (0, 0) to "flag everything" (1, 1); the area under the
    curve counts ties as half (the Mann-Whitney statistic).

    Example:
        >>> roc_points([0.1, 0.2], [0.3, 0.4])[2]
        1.0
    """
    if not negatives or not positives:
        raise InputError("a ROC curve needs at least one negative and one positive score")
    scored = sorted(
        [(float(s), 0) for s in negatives] + [(float(s), 1) for s in positives], reverse=True
    )
    n_neg, n_pos = len(negatives), len(positives)
    fpr, tpr = [0.0], [0.0]
    tp = fp = 0
    auc = 0.0
    i = 0
    while i < len(scored):
        thr = scored[i][0]
        dtp = dfp = 0
        while i < len(scored) and scored[i][0] == thr:
            dtp += scored[i][1]
            dfp += 1 - scored[i][1]
            i += 1
        auc += dfp * (tp + dtp / 2)
        tp, fp = tp + dtp, fp + dfp
        fpr.append(fp / n_neg)
        tpr.append(tp / n_pos)
    return fpr, tpr, auc / (n_neg * n_pos)


# ------------------------------------------------------------------------------- figures
def accuracy_vs_eps(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    clean: Mapping[str, float] | None = None,
    xlabel: str = "eps",
    title: str = "",
    marked: float | None = None,
) -> bytes:
    """Robust accuracy (%) against the budget, all curves on one plot (one per model or
    attack). PNG bytes.

    Args:
        curves: label -> (eps values, accuracies in [0, 1]).
        clean: label -> clean accuracy, drawn as a dotted line in the curve's colour.
        xlabel: x-axis label, e.g. ``"eps (linf)"``.
        marked: an eps to mark with a vertical line (the chapter's budget).

    Example:
        >>> png = accuracy_vs_eps({"cnn": ([0, .1, .2], [.98, .4, .02])}, marked=0.1)
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.subplots()
    for i, (label, (xs, ys)) in enumerate(curves.items()):
        color = f"C{i}"
        ax.plot(list(xs), [100 * float(v) for v in ys], marker="o", ms=3, lw=1.8,
                color=color, label=label)  # fmt: skip
        if clean and label in clean and not math.isnan(clean[label]):
            ax.axhline(100 * clean[label], ls=":", lw=1, color=color)
    if marked is not None:
        ax.axvline(marked, color="0.6", lw=1, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy under attack (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    return _png(fig)


def success_vs_queries(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    *,
    budget: int | None = None,
    title: str = "",
) -> bytes:
    """Success rate (%) against queries per example, one step curve per attack (from
    :func:`success_by_queries`), log-scaled x axis. PNG bytes.

    Args:
        curves: label -> (query budgets, success rates in [0, 1]).
        budget: the per-example query budget, marked with a vertical line and used as
            the axis end (each curve is held flat up to it).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.subplots()
    for label, (xs, ys) in curves.items():
        px, py = [max(1, int(q)) for q in xs], [100 * float(v) for v in ys]
        if budget is not None and px and px[-1] < budget:
            px, py = [*px, budget], [*py, py[-1]]
        ax.step(px, py, where="post", lw=1.8, label=label)
    if budget is not None:
        ax.axvline(budget, color="0.6", lw=1, ls="--", label=f"budget ({budget})")
    ax.set_xscale("log")
    ax.set_xlabel("queries per image")
    ax.set_ylabel("images fooled (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    return _png(fig)


def roc_figure(
    negatives: Sequence[float],
    positives: Mapping[str, Sequence[float]],
    *,
    threshold: float | None = None,
    title: str = "",
) -> bytes:
    """ROC curves of a detector: clean inputs (``negatives``) against each set of
    adversarial inputs (label -> scores, e.g. the plain attack and the adaptive one),
    AUC in the legend, the chance diagonal dashed, and the operating point at
    ``threshold`` (score above it = flagged) marked on each curve. PNG bytes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 100], [0, 100], ls="--", color="0.7", lw=1)
    for i, (label, pos) in enumerate(positives.items()):
        if not pos:
            continue
        fpr, tpr, auc = roc_points(negatives, pos)
        color = f"C{i}"
        ax.plot([100 * v for v in fpr], [100 * v for v in tpr], lw=1.8, color=color,
                label=f"{label} (AUC {auc:.2f})")  # fmt: skip
        if threshold is not None:
            fp = sum(1 for s in negatives if s > threshold) / len(negatives)
            tp = sum(1 for s in pos if s > threshold) / len(pos)
            ax.plot([100 * fp], [100 * tp], marker="o", ms=7, color=color, mec="black")
    ax.set_xlabel("clean inputs flagged (false alarms, %)")
    ax.set_ylabel("adversarial inputs flagged (%)")
    ax.set_xlim(-1, 101)
    ax.set_ylim(-1, 101)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    return _png(fig)


def training_curves(
    epochs: Sequence[int],
    series: Mapping[str, Sequence[float]],
    *,
    reference: Mapping[str, float] | None = None,
    title: str = "",
) -> bytes:
    """Accuracies (%) across training epochs, one line per series (e.g. clean and PGD
    accuracy of the adversarially trained model), with dashed horizontal reference lines
    (e.g. the standard model's clean and PGD accuracy). PNG bytes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.subplots()
    for i, (label, ys) in enumerate(series.items()):
        ax.plot(list(epochs), [100 * float(v) for v in ys], marker="o", ms=4, lw=1.8,
                color=f"C{i}", label=label)  # fmt: skip
    for j, (label, v) in enumerate((reference or {}).items()):
        ax.axhline(100 * v, ls="--", lw=1.2, color=f"C{j}", alpha=0.6, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    if len(epochs):
        ax.set_xticks(list(epochs))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    return _png(fig)
