"""Summaries of a results file: seed means, trade-off plots, and defenses compared at equal cost.

The question of Orekondy et al. (ICLR 2020, Fig. 5-6) is which defense leaves the attacker
the lowest accuracy *at the same price* for the defender, the price being either the
defender's own accuracy or the mean L1 distortion of its answers. Defenses are measured at
different operating points, so :func:`compare_at_equal` reads each rival's trade-off curve
by piecewise-linear interpolation at the reference defense's operating points (only inside
the range the rival's points cover: nothing is extrapolated).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from stealguard.harness.plots import plot_tradeoff

METRICS = ("defender_accuracy", "attacker_accuracy", "fidelity", "l1_mean", "query_l1_mean", "queries_used", "elapsed_s")
"""Per-row numbers averaged over seeds by :func:`aggregate`."""
GROUP = ["victim", "attack_name", "label"]


def aggregate(rows: pd.DataFrame | Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (victim, attack label, defense setting) of report rows (:func:`report.names.report_frame`, or dicts
    with its columns): metrics averaged over seeds.

    Each output row has ``victim``, ``attack_name``, ``defense``, ``label``,
    ``defense_params``, ``victim_accuracy``, ``seeds`` (sorted), ``n`` and for every metric in
    :data:`METRICS` the mean under its own name and the sample standard deviation under
    ``<metric>_std`` (NaN for one seed: no spread to estimate), and likewise ``defender_loss`` (:func:`_defender_loss`,
    NaN where a row lacks the victim's accuracy). Missing values are left out of means and spreads.
    A cell run twice with the same seed counts once (its latest row). Order: first appearance.
    """
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        return []
    for column in [*METRICS, "defense_params", "victim_accuracy"]:
        if column not in frame:
            frame[column] = None
    frame = frame.drop_duplicates([*GROUP, "seed"], keep="last").copy()
    frame["defender_loss"] = [_defender_loss(row) for row in frame.to_dict("records")]
    numbers = [*METRICS, "defender_loss"]
    frame[numbers] = frame[numbers].apply(pd.to_numeric, errors="coerce")
    groups = frame.groupby(GROUP, sort=False)
    firsts = frame.drop_duplicates(GROUP).set_index(GROUP)[["defense", "defense_params", "victim_accuracy"]]
    means = groups[numbers].mean()
    stds = groups[numbers].std(ddof=1).add_suffix("_std")
    seeds = groups["seed"].agg(lambda s: sorted(int(v) for v in s)).rename("seeds")
    counts = groups.size().rename("n")
    out = pd.concat([firsts, seeds, counts, means, stds], axis=1).reset_index()
    return [{key: _plain(value) for key, value in row.items()} for row in out.to_dict("records")]


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (NaN stays NaN)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, dict)) else value


def _defender_loss(row: dict[str, Any]) -> float:
    """Accuracy the defense costs the defender: the victim's own test accuracy minus the defended one.

    Rounded to 1e-6 (a test set of 10,000 images resolves 1e-4), so that a victim accuracy stored in
    float32 and a defended accuracy counted in float64 give exactly 0 for an unchanged accuracy.
    """
    victim, defended = _float(row.get("victim_accuracy")), _float(row.get("defender_accuracy"))
    if not (math.isfinite(victim) and math.isfinite(defended)):
        return math.nan
    return round(victim - defended, 6)


def _cost(row: dict[str, Any], x_key: str, *, by_loss: bool) -> float:
    """What a defender pays at ``row``: its mean L1, or its lost accuracy.

    Lost accuracy is ``defender_loss`` (victim accuracy minus defended accuracy, so that cells
    against two trainings of one victim compare) when ``by_loss``, else minus the defender accuracy.
    """
    if x_key != "defender_accuracy":
        return float(row[x_key])
    return float(row["defender_loss"]) if by_loss else -float(row[x_key])


def best_at_cost(points: Sequence[tuple[float, float]], cost: float) -> float | None:
    """Lowest attacker accuracy reachable at no more than ``cost``, from measured ``(cost, attacker accuracy)`` points.

    The points' Pareto front (each kept point protects better than every cheaper one) is
    joined piecewise-linearly; above the dearest front point its value holds (a larger
    allowance never forces a worse setting). ``None`` when ``cost`` is below every point's cost.
    """
    finite = sorted((c, a) for c, a in points if math.isfinite(c) and math.isfinite(a))
    front: list[tuple[float, float]] = []
    for c, a in finite:
        if not front or a < front[-1][1]:
            front.append((c, a))
    if not front or cost < front[0][0]:
        return None
    for (c0, a0), (c1, a1) in itertools.pairwise(front):
        if c0 <= cost <= c1:
            return a0 + (a1 - a0) * (cost - c0) / (c1 - c0)
    return front[-1][1]


def compare_at_equal(
    rows: Sequence[dict[str, Any]], *, reference: str, rivals: Sequence[str], x_key: str
) -> list[dict[str, Any]]:
    """At each operating point of ``reference``, the rivals' attacker accuracy at the same ``x_key``.

    Args:
        rows: :func:`aggregate` rows of one (victim, attack).
        reference: the defense whose points are the comparison points (e.g. ``mad``).
        rivals: defenses read off their curves at those points (e.g. ``reverse_sigmoid``).
        x_key: ``defender_accuracy`` (the cost is the lost accuracy, ``defender_loss``, when every
            row has it: see :func:`_cost`) or ``l1_mean``.

    Returns:
        One dict per reference point, sorted by ``x_key``: ``label``, ``x``,
        ``attacker_accuracy`` (the reference's) and its ``attacker_accuracy_std``, and per
        rival ``<rival>`` = :func:`best_at_cost` over the rival's points and the undefended
        one (the lowest attacker accuracy the rival reaches at no greater cost), or ``None``
        when every rival point costs more.
    """
    by_loss = all(math.isfinite(float(r.get("defender_loss", math.nan))) for r in rows)
    curves = {
        rival: [(_cost(r, x_key, by_loss=by_loss), r["attacker_accuracy"]) for r in rows if r["defense"] in (rival, "none")]
        for rival in rivals
    }
    out = []
    for row in sorted((r for r in rows if r["defense"] == reference), key=lambda r: r[x_key]):
        entry = {
            "label": row["label"],
            "x": row[x_key],
            "attacker_accuracy": row["attacker_accuracy"],
            "attacker_accuracy_std": row.get("attacker_accuracy_std", math.nan),
        }
        for rival, points in curves.items():
            entry[rival] = best_at_cost(points, _cost(row, x_key, by_loss=by_loss))
        out.append(entry)
    return out


def verdict(comparison: Sequence[dict[str, Any]], rival: str, *, margin: float = 0.0) -> tuple[int, int, int]:
    """``(lower, higher, comparable)``: at how many comparison points the reference leaves the
    attacker lower / higher accuracy than ``rival`` by more than ``margin`` (points where the
    rival is out of range are not counted)."""
    lower = higher = comparable = 0
    for entry in comparison:
        other = entry.get(rival)
        if other is None:
            continue
        if entry["attacker_accuracy"] < other - margin:
            lower += 1
        elif entry["attacker_accuracy"] > other + margin:
            higher += 1
        else:
            comparable += 1
    return lower, higher, comparable


def _pct(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{100 * value:.1f}"


def pct_spread(mean: float, std: float | None) -> str:
    """``mean ± std`` in %, one decimal; just the mean when ``std`` is unknown (one seed)."""
    if std is None or not math.isfinite(std):
        return _pct(mean)
    return f"{_pct(mean)} ± {_pct(std)}"


def summary_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of :func:`aggregate` rows: one line per defense setting, mean ± std over seeds (in %;
    the mean alone for one seed)."""
    lines = [
        "| victim | attack | defense setting | seeds | defender acc | attacker acc | fidelity | mean L1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        attacker = pct_spread(r["attacker_accuracy"], r["attacker_accuracy_std"])
        lines.append(
            f"| {r['victim']} | {r['attack_name']} | `{r['label']}` | {r['n']} | {_pct(r['defender_accuracy'])} | "
            f"{attacker} | {_pct(r['fidelity'])} | {r['l1_mean']:.3f} |"
        )
    return "\n".join(lines)


def _pct2(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{100 * value:.2f}%"


def _float(value: Any) -> float:
    return math.nan if value is None or value == "" else float(value)


def _l1(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.3f}"


def pair_rows(rows: Sequence[dict[str, Any]], victim: str, attack: str) -> list[dict[str, Any]]:
    """The :func:`aggregate` rows of one (victim, attack label): ``none`` first, then by defense and setting."""
    return sorted(
        (r for r in rows if r["victim"] == victim and r["attack_name"] == attack),
        key=lambda r: (r["defense"] != "none", r["defense"], r["label"]),
    )


def pair_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of the :func:`aggregate` rows of one (victim, attack), one line per defense setting.

    Columns: the victim's own test accuracy (that of the training the cell attacked: rows of two
    trainings of one victim show it), defender and attacker accuracy and fidelity (seed means, in % with
    two decimals; the attacker's with ``± std`` over seeds where there are several), the attacker's accuracy as a
    share of the undefended (``none``) row's, mean L1 distortion on the test set and on the
    attacker's own queries, queries answered, and the mean wall time of one cell in minutes.
    Shares are ``–`` when the pair has no ``none`` row.
    """
    undefended = next((r["attacker_accuracy"] for r in rows if r["defense"] == "none"), None)
    lines = [
        ("| defense setting | seeds | victim acc | defender acc | attacker acc | attacker / undefended | fidelity "
         "| mean L1, test set | mean L1, attacker's queries | queries | cell time |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        attacker = _pct2(r["attacker_accuracy"])
        if math.isfinite(r.get("attacker_accuracy_std", math.nan)):
            attacker += f" ± {100 * r['attacker_accuracy_std']:.2f}"
        share = "–" if not undefended else f"{100 * r['attacker_accuracy'] / undefended:.1f}%"
        queries = r.get("queries_used", math.nan)
        minutes = r.get("elapsed_s", math.nan) / 60
        lines.append(
            f"| `{r['label']}` | {r['n']} | {_pct2(_float(r.get('victim_accuracy')))} | {_pct2(r['defender_accuracy'])} | {attacker} | {share} | {_pct2(r['fidelity'])} "
            f"| {_l1(r['l1_mean'])} | {_l1(r.get('query_l1_mean', math.nan))} "
            f"| {'–' if not math.isfinite(queries) else f'{queries:,.0f}'} | {'–' if not math.isfinite(minutes) else f'{minutes:.0f} min'} |"
        )
    return "\n".join(lines)


def trainings_note(rows: Sequence[dict[str, Any]]) -> str | None:
    """A warning when the :func:`aggregate` rows of one pair attacked more than one training of the victim.

    Trainings are told apart by the victim's own test accuracy (``victim_accuracy``, recorded in
    every row). Across trainings, absolute defender accuracies (the plot's x axis) and the
    ``attacker / undefended`` shares mix two models; the at-equal-cost comparisons stay sound
    because they charge each row its own defender loss. Returns ``None`` for a single training.
    """
    accuracies = (_float(r.get("victim_accuracy")) for r in rows)
    trainings = Counter(round(accuracy, 6) for accuracy in accuracies if math.isfinite(accuracy))
    if len(trainings) < 2:
        return None
    listed = ", ".join(f"{_pct2(acc)} ({count} setting{'s' if count > 1 else ''})" for acc, count in sorted(trainings.items(), reverse=True))
    return (
        f"These rows attack {len(trainings)} trainings of the victim (victim acc {listed}). Absolute defender "
        "accuracies, the plot's x axis and the `attacker / undefended` shares mix them; the comparisons at equal "
        "cost below charge each row its own defender loss (victim acc − defender acc)."
    )


def comparison_table(comparison: Sequence[dict[str, Any]], *, x_key: str, reference: str, rivals: Sequence[str]) -> str:
    """Markdown table of :func:`compare_at_equal` output (accuracies in %)."""
    x_title = "defender acc" if x_key == "defender_accuracy" else "mean L1"
    head = f"| {reference} setting | {x_title} | {reference} attacker acc | " + " | ".join(f"best {r} at no greater cost" for r in rivals) + " |"
    lines = [head, "|" + "---|" * (3 + len(rivals))]
    for entry in comparison:
        x = _pct(entry["x"]) if x_key == "defender_accuracy" else f"{entry['x']:.3f}"
        ref = pct_spread(entry["attacker_accuracy"], entry["attacker_accuracy_std"])
        rival_cells = " | ".join("no setting as cheap" if entry[r] is None else _pct(entry[r]) for r in rivals)
        lines.append(f"| `{entry['label']}` | {x} | {ref} | {rival_cells} |")
    return "\n".join(lines)


def write_plots(rows: Sequence[dict[str, Any]], out_dir: Path | str) -> list[Path]:
    """One trade-off PNG per (victim, attack) of :func:`aggregate` rows: ``<victim>-<attack>.png``."""
    out_dir = Path(out_dir)
    pairs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        pairs.setdefault((row["victim"], row["attack_name"]), []).append(row)
    paths = []
    for (victim, attack), members in pairs.items():
        seeds = max(r["n"] for r in members)
        title = f"{attack} vs {victim} (mean of {seeds} seed{'s' if seeds > 1 else ''})"
        paths.append(plot_tradeoff(members, out_dir / f"{victim}-{attack}.png", title=title))
    return paths
