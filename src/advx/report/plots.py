"""Charts of saved results for reports (matplotlib Agg, imported lazily; PNG bytes).

* :func:`robust_curve` — robust accuracy vs eps, one line per suite step (cumulative),
  the clean accuracy dashed;
* :func:`transfer_heatmap` — the transfer matrix with its percentages written in;
* :func:`png_base64` — embed PNG bytes in HTML.

Figures are drawn on standalone ``matplotlib.figure.Figure`` objects (no pyplot state).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any


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
