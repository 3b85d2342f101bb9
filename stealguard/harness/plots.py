"""Utility/protection trade-off figures in the style of Orekondy et al., "Prediction
Poisoning" (ICLR 2020, arXiv:1906.10908), Fig. 5: the attacker's accuracy against the
defender's accuracy, and against the mean L1 distortion. Each defense family is one line
through its settings in order of strength (the setting's parameters, e.g. MAD's ε); each setting
is one legend entry under its full spec (``dcp:tau=0.99,beta=1.0``) with its own marker, and its
point is labelled with its parameters. Markers at the same x are drawn a few display points
apart, half transparent, so none hides another; the undefended API is a black star.
"""

from __future__ import annotations

import math
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
MARKERS = "osD^v<>ph8P"
SYMBOLS = {"epsilon": "ε", "beta": "β", "tau": "τ", "gamma": "γ", "noise_multiplier": "σ", "max_grad_norm": "C"}
"""How a parameter is written beside its point."""
NUDGE = 4.0
"""Display points between markers that share an x position."""
MIN_SPAN = {"defender_accuracy": 0.05}
"""Narrowest x range of a panel: defender accuracies one test image apart are not drawn a
panel-width apart (a 5-point window ending just right of the highest point)."""


def x_limits(values: Sequence[float], min_span: float) -> tuple[float, float] | None:
    """``(low, high)`` for an axis whose points span less than ``min_span``, else ``None``
    (matplotlib's own limits): the window ends ``min_span / 20`` right of the largest value and
    is ``min_span`` wide, or wider where that keeps ``min_span / 20`` left of the smallest."""
    finite = [float(v) for v in values if not math.isnan(v)]
    if not finite or max(finite) - min(finite) >= min_span:
        return None
    pad = min_span / 20
    high = max(finite) + pad
    return min(high - min_span, min(finite) - pad), high


def spec_label(row: dict[str, Any]) -> str:
    """The row's defense setting as a spec string (``label``, else ``defense_label``, else the family)."""
    return str(row.get("label") or row.get("defense_label") or row["defense"])


def strength(row: dict[str, Any]) -> tuple[Any, ...]:
    """Sort key of a setting within its family: its numeric parameters in the order the spec writes them."""
    from stealguard.defenses.spec import parse_defense_spec

    try:
        _, params = parse_defense_spec(spec_label(row))
    except ValueError:
        return ()
    return tuple(float(value) for value in params.values() if isinstance(value, (int, float)) and not isinstance(value, bool))


def point_note(row: dict[str, Any]) -> str:
    """The text beside a setting's point: its parameters (``ε=0.5``, ``τ=0.99 β=1.0``); empty for defaults."""
    from stealguard.defenses.spec import parse_defense_spec

    try:
        _, params = parse_defense_spec(spec_label(row))
    except ValueError:
        return ""
    return " ".join(f"{SYMBOLS.get(key, key)}={value}" for key, value in params.items())


def nudges(xs: Sequence[float], *, digits: int = 4) -> list[float]:
    """Horizontal offsets (display points) that spread markers sharing an x value (rounded to ``digits``) around it."""
    groups: dict[float, list[int]] = {}
    for index, x in enumerate(xs):
        groups.setdefault(float("nan") if math.isnan(x) else round(float(x), digits), []).append(index)
    out = [0.0] * len(xs)
    for members in groups.values():
        for rank, index in enumerate(members):
            out[index] = (rank - (len(members) - 1) / 2) * NUDGE
    return out


def plot_tradeoff(rows: Sequence[dict[str, Any]], path: Path, *, title: str | None = None) -> Path:
    """Write the two-panel trade-off PNG of ``rows`` to ``path`` and return it.

    Each row has ``defense`` (the family), ``attacker_accuracy``, ``defender_accuracy``,
    ``l1_mean`` and its setting as ``label`` or ``defense_label`` (a spec string; the family when
    absent). Rows of defense ``none`` are the black star; every other family gets one colour and
    one line through its settings in order of :func:`strength`, each setting a legend entry with
    its own marker and its :func:`point_note` beside the point.
    """
    from matplotlib.transforms import offset_copy

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    families: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        families.setdefault(str(row["defense"]), []).append(row)
    plt = _pyplot()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
    for ax, (x_key, x_label) in zip(axes, PANELS):
        shifts = dict(zip(map(id, rows), nudges([r[x_key] for r in rows], digits=4 if x_key == "defender_accuracy" else 3)))
        marker = 0
        for number, (name, members) in enumerate(families.items()):
            members = sorted(members, key=strength)
            if name == "none":
                for row in members:
                    transform = offset_copy(ax.transData, fig=fig, x=shifts[id(row)], units="points")
                    ax.scatter([row[x_key]], [row["attacker_accuracy"]], marker="*", s=220, color="black", zorder=5,
                               label="none (undefended)", transform=transform)
                continue
            color = colors[number % len(colors)]
            ax.plot([r[x_key] for r in members], [r["attacker_accuracy"] for r in members], color=color, linewidth=1.2, alpha=0.7)
            for row in members:
                transform = offset_copy(ax.transData, fig=fig, x=shifts[id(row)], units="points")
                ax.scatter([row[x_key]], [row["attacker_accuracy"]], marker=MARKERS[marker % len(MARKERS)], s=42, color=color,
                           alpha=0.6, edgecolors=color, linewidths=1.0, zorder=4, label=spec_label(row), transform=transform)
                note = point_note(row)
                if note:
                    ax.annotate(note, (row[x_key], row["attacker_accuracy"]), xytext=(shifts[id(row)] + 4, 4), textcoords="offset points",
                                fontsize=6, color=color)
                marker += 1
        limits = x_limits([r[x_key] for r in rows], MIN_SPAN[x_key]) if x_key in MIN_SPAN else None
        if limits is not None:
            ax.set_xlim(*limits)
        ax.set_xlabel(x_label)
        ax.set_ylabel("attacker accuracy")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(list(unique.values()), list(unique.keys()), loc="outside right upper", fontsize=7)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
