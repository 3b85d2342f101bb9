"""Utility/protection trade-off figures in the style of Orekondy et al., "Prediction
Poisoning" (ICLR 2020, arXiv:1906.10908), Fig. 5: the attacker's accuracy against the
defender's accuracy, and against the mean L1 distortion, one curve per defense with its
operating points ordered by distortion; the undefended API is a black star.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, imported on first use (matplotlib is the ``plots`` extra).

    Raises:
        ModuleNotFoundError: matplotlib is not installed (``pip install 'stealguard[plots]'``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


PANELS = (("defender_accuracy", "defender accuracy"), ("l1_mean", "mean L1 distortion"))
MARKERS = "osD^v<>ph*"
MIN_SPAN = {"defender_accuracy": 0.05}
"""Narrowest x range of a panel: defender accuracies one test image apart are not drawn a
panel-width apart (a 5-point window ending just right of the highest point)."""


def x_limits(values: Sequence[float], min_span: float) -> tuple[float, float] | None:
    """``(low, high)`` for an axis whose points span less than ``min_span``, else ``None``
    (matplotlib's own limits): the window ends ``min_span / 20`` right of the largest value and
    is ``min_span`` wide, or wider where that keeps ``min_span / 20`` left of the smallest."""
    finite = [float(v) for v in values if v == v]
    if not finite or max(finite) - min(finite) >= min_span:
        return None
    pad = min_span / 20
    high = max(finite) + pad
    return min(high - min_span, min(finite) - pad), high


def plot_tradeoff(rows: Sequence[dict[str, Any]], path: Path, *, title: str | None = None) -> Path:
    """Write the two-panel trade-off PNG of ``rows`` (each with ``defense``, ``attacker_accuracy``,
    ``defender_accuracy``, ``l1_mean``) to ``path`` and return it.

    Rows of defense ``none`` are drawn as a black star (the no-defense point); every other
    defense gets one line with markers through its rows, sorted by ``l1_mean``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row["defense"]), []).append(row)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for ax, (x_key, x_label) in zip(axes, PANELS):
        style = 0
        for name, members in groups.items():
            members = sorted(members, key=lambda r: (r["l1_mean"], -r["defender_accuracy"]))
            xs = [r[x_key] for r in members]
            ys = [r["attacker_accuracy"] for r in members]
            if name == "none":
                ax.scatter(xs, ys, marker="*", s=220, color="black", zorder=5, label="none (undefended)")
                continue
            ax.plot(xs, ys, marker=MARKERS[style % len(MARKERS)], linewidth=1.5, markersize=6, label=name)
            style += 1
        limits = x_limits([r[x_key] for r in rows], MIN_SPAN[x_key]) if x_key in MIN_SPAN else None
        if limits is not None:
            ax.set_xlim(*limits)
        ax.set_xlabel(x_label)
        ax.set_ylabel("attacker accuracy")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
