"""The adaptive verdict: each defense's protection against the best attacker that knows it.

Input: the results tables of the adaptive grid blocks (``benchmarks/configs/adaptive-*.toml``), one
row per cell and seed. Every attacker is one of :data:`ATTACKERS`, read from the attack's parameters:

* ``naive``: trains on the answers as served;
* ``argmax``: trains on the answers' top-1 labels only (``train_on=argmax``);
* ``repeat``: sends each input several times and trains on the mean answer (``repeat=n``, same budget);
* ``invert-estimated``: inverts each answer knowing the defense's name only, its parameters
  estimated from the answers (``invert=<name>``);
* ``invert-known``: inverts knowing the defense's full spec (``invert=<name>:<params>``);
* ``invert-estimated-argmax``, ``invert-known-argmax``: inverts as above, then trains on the
  recovered posteriors' top-1 labels only (``invert=...`` with ``train_on=argmax``).

Intervals: a 95% Student-t interval over seeds for a mean (``mean ± t(0.975, n-1) · s / sqrt(n)``),
and Welch's interval for a difference of two means (Welch-Satterthwaite degrees of freedom); a
headline protection, whose setting is chosen on the same seeds, a Bonferroni one over the settings
it was chosen from (:func:`headline`). Seeds
draw the attacker's queries and replica initialisation and the defender's own seed; the victim is
the same in every cell of a block.

"At ≤ 1 point of defender loss": a setting qualifies when the undefended victim's test accuracy
minus its defended accuracy (mean over seeds) is at most :data:`DEFENDER_LOSS` plus a tolerance,
the larger of the test set's resolution (1 / its size) and the half-width of the defended
accuracy's interval over seeds (nonzero for randomised defenses).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from scipy import stats

from stealguard.harness.ray_grid import GridConfig
from stealguard.harness.run_table import RunTable
from stealguard.runspec import DPVariant, RunResult, VictimSpec

from report.names import Names, defense_of

ATTACKERS = ("naive", "argmax", "repeat", "invert-estimated", "invert-known", "invert-estimated-argmax", "invert-known-argmax")
"""Attacker kinds, the naive one first."""
DEFENDER_LOSS = 0.01
"""The defender-accuracy budget of the headline table: one point."""
CONFIDENCE = 0.95
FAMILIES = (
    "mad", "mad_argmax", "reverse_sigmoid", "dcp", "dcp (authors)", "random_noise", "random_noise (logit)",
    "adaptive_misinformation", "mad_keyed", "reverse_sigmoid_keyed", "dp_sgd",
)
"""Report order of the defense families (others follow, by name)."""
CELL_COLUMNS = (
    "block", "victim", "attack", "family", "defense", "defense_label", "defense_params", "attacker", "inverter", "seed",
    "test_size", "defender_accuracy", "attacker_accuracy", "fidelity", "l1_mean", "key",
)
"""Columns of :func:`cell_frame` (one row per cell and seed)."""


ATTACKER_OPTIONS = frozenset({"branch", "tol", "memory", "support", "select", "variant"})
"""Inverter parameters that are the attacker's own choices or name the algorithm (`variant`), not knowledge of its parameters."""


def attacker_of(params: dict[str, Any]) -> tuple[str, str]:
    """``(attacker kind, inverter spec)`` of an attack's parameters (the spec is '' without inversion).

    An inverter spec naming any defense parameter (beyond :data:`ATTACKER_OPTIONS`) is ``invert-known``.
    """
    invert = params.get("invert")
    if invert:
        _, _, rest = str(invert).partition(":")
        keys = {item.split("=", 1)[0].strip() for item in rest.replace(";", ",").split(",") if item.strip()}
        kind = "invert-known" if keys - ATTACKER_OPTIONS else "invert-estimated"
        return (f"{kind}-argmax" if params.get("train_on") == "argmax" else kind), str(invert)
    if params.get("train_on") == "argmax":
        return "argmax", ""
    if int(params.get("repeat", 1)) > 1:
        return "repeat", ""
    return "naive", ""


def family_of(defense: str, params: dict[str, Any]) -> str:
    """The defense family a setting belongs to: its name, with a ``variant`` or ``space`` parameter in brackets.

    ``dcp:variant=authors,beta=0.5`` is ``dcp (authors)``, a family of its own (DCP's two
    parameterisations are compared separately); ``random_noise:space=logit,...`` is ``random_noise (logit)``.
    """
    for key in ("variant", "space"):
        if key in params:
            return f"{defense} ({params[key]})"
    return defense


def cell_row(result: RunResult, block: str, names: Names) -> dict[str, Any]:
    """One :data:`CELL_COLUMNS` row of a successful grid result."""
    spec = result.run_spec()
    attacker, inverter = attacker_of(dict(spec.attack.params))
    defense, label = defense_of(spec)
    params = json.loads(result.defense_params)
    if isinstance(spec.victim, VictimSpec) and isinstance(spec.victim.variant, DPVariant):
        params = spec.victim.variant.model_dump(exclude={"kind"})
    return {
        "block": block, "victim": names.victim(spec.victim), "attack": spec.attack.name, "family": family_of(defense, params),
        "defense": defense, "defense_label": label, "defense_params": json.dumps(params, sort_keys=True), "attacker": attacker,
        "inverter": inverter, "seed": result.seed, "test_size": result.test_size, "defender_accuracy": result.defender_accuracy,
        "attacker_accuracy": result.attacker_accuracy, "fidelity": result.fidelity, "l1_mean": result.l1_mean, "key": result.key,
    }


def cell_frame(tables: Iterable[Path], names: Names | None = None) -> pd.DataFrame:
    """Every successful row of the results ``tables`` (``.../grid-<block>/results.csv``) as :data:`CELL_COLUMNS`,
    named by ``names`` (default: each table's :meth:`~report.names.Names.for_results`).

    A cell stored twice counts once (its latest row). Rows are sorted by block, victim, attack,
    family, setting, attacker and seed, so the frame does not depend on the order cells finished in.
    """
    rows = []
    for path in tables:
        block = Path(path).parent.name.removeprefix("grid-")
        table_names = names if names is not None else Names.for_results(path)
        rows.extend(cell_row(result, block, table_names) for result in RunTable(path).results() if result.status == "ok")
    frame = pd.DataFrame(rows, columns=list(CELL_COLUMNS)).drop_duplicates("key", keep="last")
    attacker_rank = {name: i for i, name in enumerate(ATTACKERS)}
    order = pd.DataFrame({
        "_family": [family_rank(name) for name in frame["family"]],
        "_setting": [setting_rank(params) for params in frame["defense_params"]],
        "_attacker": frame["attacker"].map(attacker_rank),
    }, index=frame.index)
    keys = ["block", "victim", "attack", "_family", "_setting", "_attacker", "seed"]
    frame = pd.concat([frame, order], axis=1).sort_values(keys, kind="stable")
    return frame.drop(columns=list(order.columns)).reset_index(drop=True)


def family_rank(family: str) -> tuple[int, str]:
    """Sort key of a family: ``none`` first, then :data:`FAMILIES` in order, then the others by name."""
    if family == "none":
        return -1, family
    return (FAMILIES.index(family), family) if family in FAMILIES else (len(FAMILIES), family)


def setting_rank(params_json: str) -> str:
    """Sort key of a setting within its family: its parameters, numbers zero-padded so that 2.0 < 8.0 < 17.5."""
    params = json.loads(params_json)
    return json.dumps({key: f"{value:020.6f}" if isinstance(value, (int, float)) else str(value) for key, value in sorted(params.items())})


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """``(mean, half-width)`` of the Student-t interval of the mean of ``values`` (half-width NaN for one value)."""
    series = pd.Series(values, dtype=float).dropna()
    n = len(series)
    if n == 0:
        return math.nan, math.nan
    mean = float(series.mean())
    if n < 2:
        return mean, math.nan
    return mean, float(stats.t.ppf(0.5 + confidence / 2, n - 1) * series.std(ddof=1) / math.sqrt(n))


def welch_interval(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """``(mean(a) - mean(b), half-width)`` of Welch's interval for the difference of two means.

    Half-width NaN when either side has fewer than two values; 0 when neither side varies.
    """
    x, y = pd.Series(a, dtype=float).dropna(), pd.Series(b, dtype=float).dropna()
    if x.empty or y.empty:
        return math.nan, math.nan
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return diff, math.nan
    vx, vy = float(x.var(ddof=1)) / len(x), float(y.var(ddof=1)) / len(y)
    if vx + vy == 0.0:
        return diff, 0.0
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    return diff, float(stats.t.ppf(0.5 + confidence / 2, df) * math.sqrt(vx + vy))


Planned = dict[tuple[str, str], set[str]]
"""``{(block, defense label): attacker kinds}`` a grid config runs (:func:`planned_attackers`)."""


def planned_attackers(configs: dict[str, GridConfig]) -> Planned:
    """The attacker kinds each block's config runs against each defense setting (``{block: config}``)."""
    out: Planned = {}
    for block, config in configs.items():
        for spec in config.specs():
            kind, _ = attacker_of(dict(spec.attack.params))
            out.setdefault((block, defense_of(spec)[1]), set()).add(kind)
    return out


def grid_progress(configs: dict[str, GridConfig], cells: pd.DataFrame) -> str:
    """One sentence: how many of each block's planned cells (``{block: config}``) have a successful
    result in ``cells`` (:func:`cell_frame`), and whether the grid is complete."""
    parts, complete = [], True
    for block, config in configs.items():
        wanted = {spec.key() for spec in config.specs()}
        stored = len(wanted & set(cells.loc[cells["block"] == block, "key"]))
        complete = complete and stored == len(wanted)
        parts.append(f"`{block}` {stored} of {len(wanted)}")
    state = "complete" if complete else "not complete: until it is, these tables are not a verdict"
    return f"Grid cells with a result: {', '.join(parts)} ({state})."


def _pending(planned: Planned | None, block: str, label: str, present: Iterable[str]) -> list[str]:
    """Attacker kinds planned for a setting and not yet in the results, in :data:`ATTACKERS` order."""
    if planned is None:
        return []
    wanted = planned.get((block, label), set())
    return [kind for kind in ATTACKERS if kind in wanted and kind not in set(present)]


SETTING = ["block", "victim", "attack", "family", "defense", "defense_label"]
"""Columns that name one defense setting of one block."""


def summary_frame(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per setting and attacker: seeds, and mean and interval half-width of the accuracies.

    Columns: :data:`SETTING`, ``attacker``, ``n``, ``seeds`` ('0 1 2'), ``defender_accuracy``,
    ``defender_accuracy_ci``, ``attacker_accuracy``, ``attacker_accuracy_ci``, ``fidelity``,
    ``fidelity_ci``, ``l1_mean``, ``test_size``.
    """
    rows = []
    for key, group in cells.groupby([*SETTING, "attacker"], sort=False):
        row = dict(zip([*SETTING, "attacker"], key))
        row["n"] = len(group)
        row["seeds"] = " ".join(str(int(s)) for s in sorted(group["seed"]))
        for metric in ("defender_accuracy", "attacker_accuracy", "fidelity"):
            row[metric], row[f"{metric}_ci"] = t_interval(group[metric].tolist())
        row["l1_mean"] = float(group["l1_mean"].mean())
        row["test_size"] = int(group["test_size"].max())
        rows.append(row)
    return pd.DataFrame(rows)


def _undefended(cells: pd.DataFrame, block: str) -> pd.DataFrame:
    members = cells[(cells["block"] == block) & (cells["defense"] == "none") & (cells["attacker"] == "naive")]
    if members.empty:
        raise ValueError(f"block {block!r} has no undefended naive cell: the protection has no baseline")
    return members


def has_baseline(cells: pd.DataFrame, block: str) -> bool:
    """Whether ``block`` has a naive cell against the undefended victim (what every protection is measured from)."""
    return bool(((cells["block"] == block) & (cells["defense"] == "none") & (cells["attacker"] == "naive")).any())


def undefended_attackers(cells: pd.DataFrame, block: str) -> dict[str, list[float]]:
    """Attacker accuracies against ``block``'s undefended victim, per attacker kind run there (naive first).

    Raises:
        ValueError: no naive cell against the undefended victim.
    """
    _undefended(cells, block)
    members = cells[(cells["block"] == block) & (cells["defense"] == "none")]
    return {
        kind: members.loc[members["attacker"] == kind, "attacker_accuracy"].tolist()
        for kind in ATTACKERS if (members["attacker"] == kind).any()
    }


LABEL_ATTACKERS = frozenset({"argmax", "invert-estimated-argmax", "invert-known-argmax"})
"""Attacker kinds that train on top-1 labels; the others train on posteriors."""


def trains_on(kind: str) -> str:
    """``"labels"`` or ``"posteriors"``: what an attacker kind trains its replica on."""
    return "labels" if kind in LABEL_ATTACKERS else "posteriors"


def strongest(accuracies: dict[str, list[float]]) -> str:
    """The attacker (a kind, or ``kind@learner``) with the highest mean accuracy; on ties a naive
    one, then the first."""
    return max(accuracies, key=lambda name: (sum(accuracies[name]) / len(accuracies[name]), name.split("@", 1)[0] == "naive"))


def runner_up_margin(accuracies: dict[str, list[float]]) -> tuple[str, str, float, float] | None:
    """``(strongest, runner_up, mean margin, Welch half-width)`` among ``accuracies`` (:func:`strongest`
    ranks them), or ``None`` with fewer than two attackers.

    The undefended baseline is the strongest attacker, chosen on the seeds its interval comes from;
    when its margin over the runner-up is within noise that choice favours the defense (a higher
    baseline credits it with more protection), so the readouts report this margin.
    """
    if len(accuracies) < 2:
        return None
    top = strongest(accuracies)
    rest = {name: values for name, values in accuracies.items() if name != top}
    second = strongest(rest)
    return (top, second, *welch_interval(accuracies[top], rest[second]))


def margin_clause(margin: tuple[str, str, float, float] | None) -> str:
    """``", 1.85 ± 0.78 points ahead of argmax@adam (beyond noise)"`` for :func:`runner_up_margin`'s result ("" for ``None``)."""
    if margin is None:
        return ""
    _, second, mean, half = margin
    verdict = "one seed: no interval" if math.isnan(half) else "beyond noise" if mean - half > 0 else "within noise"
    return f", {pct(mean, half)} points ahead of {second} ({verdict})"


def settings(cells: pd.DataFrame, block: str) -> list[dict[str, Any]]:
    """Every defense setting of ``block`` against the undefended victim and the naive attacker.

    Each dict: the setting's :data:`SETTING` names, ``defender_loss`` (points of accuracy, undefended
    minus defended, means over seeds), ``tolerance`` (see the module doc), ``qualifies`` (loss within
    :data:`DEFENDER_LOSS` + tolerance), ``reached`` (``{kind: attacker accuracy per seed}``),
    ``attackers`` (``{kind: (mean, half-width, n)}``), ``best`` (the kind with the highest mean
    attacker accuracy, :func:`strongest`), and the protections as
    ``(mean drop, Welch half-width)``: ``naive_protection``, the naive attacker's accuracy against the
    undefended victim minus its accuracy here; ``best_protection``, the best attacker's accuracy
    against the undefended victim (the strongest kind run there, :func:`undefended_attackers`) minus
    the best attacker's here. An attacker that beats the naive one without any defense (training
    on labels can) is the undefended baseline too, so a defense is not credited with its margin;
    but only where an attacker that trains the same way (labels or posteriors, :func:`trains_on`)
    met the setting, since a setting is not credited with an attacker it never met either.
    ``baseline`` names the undefended attacker kind the protection left is measured from.
    """
    base = _undefended(cells, block)
    base_defender = float(base["defender_accuracy"].mean())
    undefended = undefended_attackers(cells, block)
    out = []
    block_cells = cells[(cells["block"] == block) & (cells["defense"] != "none")]
    for key, group in block_cells.groupby(SETTING, sort=False):
        naive = group[group["attacker"] == "naive"]
        if naive.empty:
            continue
        defended, defended_half = t_interval(naive["defender_accuracy"].tolist())
        tolerance = max(1.0 / int(group["test_size"].max()), 0.0 if math.isnan(defended_half) else defended_half)
        loss = base_defender - defended
        reached = {
            kind: group.loc[group["attacker"] == kind, "attacker_accuracy"].tolist()
            for kind in ATTACKERS if (group["attacker"] == kind).any()
        }
        attackers = {kind: (*t_interval(values), len(values)) for kind, values in reached.items()}
        best = strongest(reached)
        met = {trains_on(kind) for kind in attackers}
        baseline = strongest({kind: values for kind, values in undefended.items() if trains_on(kind) in met})
        out.append({
            **dict(zip(SETTING, key)), "defender_accuracy": defended, "defender_loss": loss, "tolerance": tolerance,
            "qualifies": loss <= DEFENDER_LOSS + tolerance, "reached": reached, "attackers": attackers, "best": best,
            "naive_protection": welch_interval(undefended["naive"], reached["naive"]),
            "best_protection": welch_interval(undefended[baseline], reached[best]),
            "baseline": baseline,
        })
    return out


def headline(cells: pd.DataFrame, block: str) -> list[dict[str, Any]]:
    """Per defense family of ``block``: the qualifying setting that leaves the best attacker the least
    (largest protection against it, point estimate), or the family's cheapest setting with
    ``qualifies`` False when none qualifies. One dict per family (see :func:`settings`), in first-appearance order.

    The setting is chosen on the same seeds the intervals come from, so a chosen setting's
    ``naive_protection`` and ``best_protection`` are Bonferroni intervals over the ``chosen_from``
    qualifying settings of its family (confidence ``1 - (1 - CONFIDENCE) / chosen_from``): they
    cover all of those settings' protections at once with at least :data:`CONFIDENCE`, so the one
    picked too. ``setting_protection`` keeps the chosen setting's own 95% interval of the
    protection left. The best attacker is chosen on those seeds too: the highest mean accuracy, so the
    protection left against any other attacker run there is at least as large (point estimates).
    """
    undefended = undefended_attackers(cells, block)
    out = []
    for chosen, chosen_from in _choose_per_family(settings(cells, block)):
        if not chosen_from:
            out.append({**chosen, "chosen_from": 0})
            continue
        confidence = 1 - (1 - CONFIDENCE) / chosen_from
        reached = chosen["reached"]
        out.append({
            **chosen, "chosen_from": chosen_from, "setting_protection": chosen["best_protection"],
            "naive_protection": welch_interval(undefended["naive"], reached["naive"], confidence),
            "best_protection": welch_interval(undefended[chosen["baseline"]], reached[chosen["best"]], confidence),
        })
    return out


def _choose_per_family(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """Per defense family of ``rows`` (settings with ``family``, ``qualifies``, ``defender_loss`` and
    ``best_protection``), in first-appearance order: ``(the qualifying row with the largest protection
    left, how many qualified)``, or ``(the cheapest row, 0)`` when none qualifies."""
    by_family: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_family.setdefault(row["family"], []).append(row)
    out = []
    for members in by_family.values():
        qualifying = [row for row in members if row["qualifies"]]
        if qualifying:
            out.append((max(qualifying, key=lambda row: row["best_protection"][0]), len(qualifying)))
        else:
            out.append((min(members, key=lambda row: row["defender_loss"]), 0))
    return out


def pct(mean: float, half: float = math.nan, n: int | None = None) -> str:
    """``mean ± half`` in percent with 2 decimals (``± ?`` for one seed, ``n=`` when fewer than 3 seeds)."""
    if math.isnan(mean):
        return "–"
    text = f"{100 * mean:.2f}" + ("" if half is None else (" ± ?" if math.isnan(half) else f" ± {100 * half:.2f}"))
    return text if n is None or n >= 3 else f"{text} (n={n})"


def baseline_line(cells: pd.DataFrame, block: str) -> str:
    """One sentence: the block's victim, attack, undefended defender accuracy and each attacker's accuracy there.

    With more than one attacker run against the undefended victim, the sentence names the
    strongest: the protection left against the best attacker is measured from it. The
    argmax-only attacker reaches against any defense that keeps every answer's top class what it
    reaches against the undefended victim.
    """
    base = _undefended(cells, block)
    undefended = undefended_attackers(cells, block)

    def reach(kind: str) -> str:
        values = undefended[kind]
        return f"{pct(*t_interval(values))}% ({len(values)} seed{'s' if len(values) > 1 else ''})"

    text = (
        f"Block `{block}`: victim `{base['victim'].iloc[0]}` ({100 * float(base['defender_accuracy'].mean()):.2f}% test accuracy), "
        f"attack `{base['attack'].iloc[0]}`; undefended, the naive attacker reaches {reach('naive')}"
    )
    others = [kind for kind in undefended if kind != "naive"]
    if not others:
        return text + "."
    named = ", ".join(f"the {'argmax-only' if kind == 'argmax' else kind} attacker {reach(kind)}" for kind in others)
    return (
        f"{text}, {named}; protection left is measured from the strongest of them, {strongest(undefended)}"
        f"{margin_clause(runner_up_margin(undefended))} "
        "(the argmax-only attacker reaches as much against any defense that keeps the top class of every answer)."
    )


def _baseline_note(row: dict[str, Any], strongest_kind: str) -> str:
    """A remark when a setting's protection left is measured from a weaker undefended attacker than the block's strongest."""
    if row["baseline"] == strongest_kind:
        return ""
    return f" (from undefended {row['baseline']}: no attacker training on {trains_on(strongest_kind)} met it)"


def headline_table(cells: pd.DataFrame, block: str, planned: Planned | None = None) -> str:
    """Markdown: :func:`headline` of ``block``, accuracies in % (95% intervals over seeds), protections in
    % (intervals over seeds simultaneous over the settings the row was chosen from, :func:`headline`).

    With ``planned`` (:func:`planned_attackers`), a best attacker chosen while some planned attackers
    have no result yet says which.
    """
    lines = [
        ("| defense | setting (≤ 1 pt defender loss; chosen from) | defender loss (pts) | naive attacker | best attacker | "
        "protection vs naive | protection left vs best |"),
        "|---|---|---|---|---|---|---|",
    ]
    top = strongest(undefended_attackers(cells, block))
    for row in headline(cells, block):
        naive, best = row["attackers"]["naive"], row["attackers"][row["best"]]
        if not row["qualifies"]:
            lines.append(
                f"| {row['family']} | none qualifies (cheapest: `{row['defense_label']}`) | {100 * row['defender_loss']:.2f} "
                "| – | – | – | – |"
            )
            continue
        pending = _pending(planned, block, row["defense_label"], row["attackers"])
        waiting = f" (not yet run: {', '.join(pending)})" if pending else ""
        lines.append(
            f"| {row['family']} | `{row['defense_label']}` (of {row['chosen_from']}) | {100 * row['defender_loss']:.2f} | {pct(*naive)} "
            f"| {row['best']}: {pct(*best)}{waiting} | {pct(*row['naive_protection'])} | {pct(*row['best_protection'])}"
            f"{_baseline_note(row, top)} |"
        )
    return "\n".join(lines)


def labels_unchanged(cells: pd.DataFrame, block: str) -> dict[tuple[str, str], bool]:
    """Per ``(family, setting label)`` of ``block`` the argmax-only attacker met: whether its replica
    is the one it trains against the undefended victim (equal attacker accuracy and fidelity at every
    seed both met: the answers' top classes, so the labels and the replica, are the undefended
    ones). In first-appearance order; settings that share no seed with the undefended cells are left out.
    """
    block_cells = cells[(cells["block"] == block) & (cells["attacker"] == "argmax")]
    undefended = {
        int(row.seed): (row.attacker_accuracy, row.fidelity)
        for row in block_cells[block_cells["defense"] == "none"].itertuples()
    }
    out: dict[tuple[str, str], bool] = {}
    for (family, label), group in block_cells[block_cells["defense"] != "none"].groupby(["family", "defense_label"], sort=False):
        shared = [row for row in group.itertuples() if int(row.seed) in undefended]
        if shared:
            out[(str(family), str(label))] = all(undefended[int(row.seed)] == (row.attacker_accuracy, row.fidelity) for row in shared)
    return out


def labels_pass_through(cells: pd.DataFrame, block: str) -> dict[str, tuple[int, int]]:
    """Per defense family of ``block``: :func:`labels_unchanged` counted, as ``{family: (equal, met)}``."""
    out: dict[str, tuple[int, int]] = {}
    for (family, _label), same in labels_unchanged(cells, block).items():
        equal, met = out.get(family, (0, 0))
        out[family] = (equal + int(same), met + 1)
    return out


def readout(cells: pd.DataFrame, block: str, planned: Planned | None = None) -> str:
    """Markdown bullets that read :func:`headline` of ``block``: which defenses show protection left
    against their best attacker (the whole interval above zero, simultaneous over the settings chosen from), which do not, which cost the
    defender too much; and :func:`labels_pass_through`. With ``planned``, a setting some of whose
    planned attackers have not run yet says which (its best attacker may still change)."""
    protections, costly = [], []
    for row in headline(cells, block):
        if not row["qualifies"]:
            costly.append(f"{row['family']} ({100 * row['defender_loss']:.2f} pts at its cheapest)")
            continue
        pending = _pending(planned, block, row["defense_label"], row["attackers"])
        protections.append((row, pending))
    lines = _protection_bullets(
        protections, costly, "Protection left against the best attacker, its whole interval above zero (95%, simultaneous "
        "over the settings chosen from)", "No setting within one point of defender loss",
    )
    passing = labels_pass_through(cells, block)
    if passing:
        equal = [f"{family} ({same} of {met})" for family, (same, met) in passing.items() if same]
        moved = [family for family, (same, _met) in passing.items() if not same]
        lines.append(
            "- Settings where the argmax-only attacker's replica equals its undefended one at every seed (the defense "
            "leaves every answer's top class, so the labels, as they were), per defense: "
            + (", ".join(equal) if equal else "none")
            + (f"; at none of {', '.join(moved)}" if moved else "") + "."
        )
    return "\n".join(lines)


def _reach_by_learner(frame: pd.DataFrame, learners: dict[str, str]) -> dict[str, list[float]]:
    """``{"kind@learner": attacker accuracy per seed}`` over the rows of ``frame`` in the blocks of ``learners``."""
    out: dict[str, list[float]] = {}
    for block, learner in learners.items():
        members = frame[frame["block"] == block]
        for kind in ATTACKERS:
            values = members.loc[members["attacker"] == kind, "attacker_accuracy"].tolist()
            if values:
                out[f"{kind}@{learner}"] = values
    return out


def across_learners(cells: pd.DataFrame, learners: dict[str, str]) -> list[dict[str, Any]]:
    """Protection left against the best attacker over several blocks that differ only in how the
    attackers train their replicas (``{block: learner name}``, e.g. ``{"mnist": "sgd", "mnist-adam":
    "adam"}``): the attacker picks its optimizer, so the best attacker is the best over all of them.

    One dict per defense setting that every block met, in the first block's order: the
    :data:`SETTING` names, ``defender_loss`` and ``qualifies`` (from the first block,
    :func:`settings`), ``baseline`` and ``best`` (``"kind@learner"``: the strongest attacker
    against the undefended victim, and at the setting, over every block), their
    ``(mean, half-width, n)`` as ``baseline_accuracy`` and ``best_accuracy``, and
    ``best_protection`` (Welch's interval of the difference), and the per-seed accuracies behind
    them as ``baseline_values`` and ``best_values``.

    Empty until every block has a naive cell against the undefended victim.
    """
    def kind(name: str) -> str:
        return name.split("@", 1)[0]

    blocks = list(learners)
    if not all(has_baseline(cells, block) for block in blocks):
        return []
    undefended = _reach_by_learner(cells[cells["defense"] == "none"], learners)
    out = []
    for setting in settings(cells, blocks[0]):
        label = setting["defense_label"]
        members = cells[(cells["defense_label"] == label) & (cells["defense"] != "none")]
        if not all((members["block"] == block).any() for block in blocks):
            continue
        attackers = _reach_by_learner(members, learners)
        best = strongest(attackers)
        met = {trains_on(kind(name)) for name in attackers}
        baseline = strongest({name: values for name, values in undefended.items() if trains_on(kind(name)) in met})
        out.append({
            **{name: setting[name] for name in SETTING}, "defender_loss": setting["defender_loss"],
            "qualifies": setting["qualifies"], "baseline": baseline, "best": best,
            "baseline_accuracy": (*t_interval(undefended[baseline]), len(undefended[baseline])),
            "best_accuracy": (*t_interval(attackers[best]), len(attackers[best])),
            "best_protection": welch_interval(undefended[baseline], attackers[best]),
            "baseline_values": undefended[baseline], "best_values": attackers[best],
        })
    return out


def across_learners_table(cells: pd.DataFrame, learners: dict[str, str], planned: Planned | None = None) -> str:
    """Markdown: :func:`across_learners`, accuracies and protections in % (95% intervals over seeds);
    with ``planned``, a setting some of whose planned attackers have not run yet in some block says which."""
    rows = across_learners(cells, learners)
    if not rows:
        return "No defense setting has been met in every block yet."
    lines = [
        "| defense | setting | defender loss (pts) | undefended baseline | best attacker | protection left vs best |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        loss = f"{100 * row['defender_loss']:.2f}" + ("" if row["qualifies"] else " (over 1 pt)")
        pending = _learners_pending(cells, learners, planned, row["defense_label"])
        waiting = f" (not yet run: {', '.join(pending)})" if pending else ""
        lines.append(
            f"| {row['family']} | `{row['defense_label']}` | {loss} | {row['baseline']}: {pct(*row['baseline_accuracy'])} "
            f"| {row['best']}: {pct(*row['best_accuracy'])}{waiting} | {pct(*row['best_protection'])} |"
        )
    return "\n".join(lines)


def view_headline(cells: pd.DataFrame, learners: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per defense family, the verdict of one view of the grid (a victim and an attack, its blocks
    ``{block: learner}``, best attacker over all of them, :func:`across_learners`): the qualifying
    setting with the largest protection left against the best attacker, as in :func:`headline`
    (its ``best_protection`` a Bonferroni interval over the ``chosen_from`` qualifying settings of
    the family), or the family's cheapest setting with ``chosen_from`` 0 when none qualifies.
    ``{family: row}`` in the order of the first block's settings; empty while a block has no baseline.
    """
    out = {}
    for chosen, chosen_from in _choose_per_family(across_learners(cells, learners)):
        if not chosen_from:
            out[chosen["family"]] = {**chosen, "chosen_from": 0}
            continue
        confidence = 1 - (1 - CONFIDENCE) / chosen_from
        out[chosen["family"]] = {
            **chosen, "chosen_from": chosen_from,
            "best_protection": welch_interval(chosen["baseline_values"], chosen["best_values"], confidence),
        }
    return out


def views_table(cells: pd.DataFrame, views: dict[str, dict[str, str]]) -> str:
    """Markdown: one column per view (``{title: {block: learner}}``, see :func:`view_headline`), one
    row per defense family: the protection left against the best attacker over the view's learners
    at the family's chosen setting (95%, Bonferroni over the settings chosen from), or why there is none.
    The first row gives each view's undefended baseline (its strongest attacker)."""
    heads = {title: view_headline(cells, learners) for title, learners in views.items()}
    families = sorted({family for head in heads.values() for family in head}, key=family_rank)
    lines = [
        "| defense | " + " | ".join(views) + " |",
        "|---|" + "---|" * len(views),
    ]
    baselines = []
    for title, learners in views.items():
        undefended = _reach_by_learner(cells[cells["defense"] == "none"], learners)
        top = strongest(undefended) if heads[title] and undefended else None
        baselines.append(f"{top}: {pct(*t_interval(undefended[top]))}" if top else "pending")
    lines.append("| undefended (best attacker, accuracy %) | " + " | ".join(baselines) + " |")
    for family in families:
        texts = []
        for title in views:
            row = heads[title].get(family)
            if not heads[title]:
                texts.append("pending")
            elif row is None:
                texts.append("not run")
            elif not row["chosen_from"]:
                texts.append(f"none qualifies ({100 * row['defender_loss']:.2f} pts at `{row['defense_label']}`)")
            else:
                of = f", of {row['chosen_from']}" if row["chosen_from"] > 1 else ""
                texts.append(f"{pct(*row['best_protection'])} (`{row['defense_label']}`{of}; {row['best']})")
        lines.append(f"| {family} | " + " | ".join(texts) + " |")
    return "\n".join(lines)


def _learners_pending(cells: pd.DataFrame, learners: dict[str, str], planned: Planned | None, label: str) -> list[str]:
    """``kind@learner`` for each attacker planned at setting ``label`` in some block of ``learners`` with no result yet."""
    return [
        f"{kind}@{learner}" for block, learner in learners.items()
        for kind in _pending(planned, block, label, set(
            cells.loc[(cells["block"] == block) & (cells["defense_label"] == label), "attacker"]))
    ]


def victim_accuracies(cells: pd.DataFrame, learners: dict[str, str]) -> dict[str, float]:
    """``{block: test accuracy of its undefended victim}`` for the blocks of ``learners`` that have one
    (the mean over its undefended cells, to 6 decimals: float noise is no difference)."""
    return {
        block: round(float(_undefended(cells, block)["defender_accuracy"].mean()), 6)
        for block in learners if has_baseline(cells, block)
    }


def across_learners_readout(cells: pd.DataFrame, learners: dict[str, str], planned: Planned | None = None) -> str:
    """Markdown bullets that read :func:`across_learners`: the settings whose protection left against
    the best attacker over every learner has its whole 95% interval above zero, those whose interval
    reaches zero, those without an interval yet, and those that cost the defender over one point.
    With ``planned``, a setting some of whose planned attackers have not run yet says which."""
    protections, costly = [], []
    rows = across_learners(cells, learners)
    if not rows:
        return ""
    undefended = _reach_by_learner(cells[cells["defense"] == "none"], learners)
    top = strongest(undefended)
    baseline = (
        f"- Undefended, the strongest attacker over the learners is {top} ({pct(*t_interval(undefended[top]))}%)"
        f"{margin_clause(runner_up_margin(undefended))}: the protections are measured from it."
    )
    victims = victim_accuracies(cells, learners)
    if len(set(victims.values())) > 1:
        baseline += "\n" + (
            "- The blocks' victims differ: " + ", ".join(f"`{block}` {100 * acc:.2f}%" for block, acc in victims.items())
            + " test accuracy (each block trained its victim from the same spec, and training did not reproduce it bit for "
            "bit), so the comparison across blocks is between attacks on two victims of one recipe."
        )
    for row in rows:
        if not row["qualifies"]:
            costly.append(f"{row['family']} ({100 * row['defender_loss']:.2f} pts at `{row['defense_label']}`)")
            continue
        protections.append((row, _learners_pending(cells, learners, planned, row["defense_label"])))
    return "\n".join([baseline, *_protection_bullets(
        protections, costly, "Protection left against the best attacker over the learners, its whole 95% interval above zero",
        "Over one point of defender loss",
    )])


def _protection_bullets(
    protections: list[tuple[dict[str, Any], list[str]]], costly: list[str], shown_heading: str, costly_heading: str,
) -> list[str]:
    """Bullets sorting ``(row, attackers not yet run)`` pairs by whether the row's ``best_protection``
    interval is above zero, reaches it, or has no width yet; then ``costly`` under ``costly_heading``."""
    shown, unshown, single = [], [], []
    for row, pending in protections:
        mean, half = row["best_protection"]
        waiting = f"; not yet run: {', '.join(pending)}" if pending else ""
        text = f"{row['family']} {pct(mean, half)} (`{row['defense_label']}`, best attacker {row['best']}{waiting})"
        (single if math.isnan(half) else shown if mean - half > 0 else unshown).append(text)
    lines = [
        f"- {shown_heading}: " + ("; ".join(shown) if shown else "none") + ".",
        "- Interval reaching zero or below (no protection shown): " + ("; ".join(unshown) if unshown else "none") + ".",
    ]
    if single:
        lines.append("- No interval yet (one seed of the best attacker or of its undefended baseline): " + "; ".join(single) + ".")
    if costly:
        lines.append(f"- {costly_heading}: " + "; ".join(costly) + ".")
    return lines


def settings_table(cells: pd.DataFrame, block: str, planned: Planned | None = None) -> str:
    """Markdown: every setting of ``block``, the attacker accuracy of each attacker kind (%, 95% intervals);
    with ``planned``, "pending" marks an attacker the config runs there that has no result yet."""
    lines = [
        "| setting | defender acc. | loss (pts) | " + " | ".join(ATTACKERS) + " | best | protection left vs best |",
        "|---|---|---|" + "---|" * len(ATTACKERS) + "---|---|",
    ]
    base = _undefended(cells, block)
    undefended = undefended_attackers(cells, block)
    top = strongest(undefended)
    marks = " | ".join(pct(*t_interval(undefended[kind]), len(undefended[kind])) if kind in undefended else "–" for kind in ATTACKERS)
    lines.append(f"| `none` | {100 * float(base['defender_accuracy'].mean()):.2f} | 0.00 | {marks} | {top} | 0 |")
    for row in settings(cells, block):
        attackers = row["attackers"]
        pending = set(_pending(planned, block, row["defense_label"], attackers))
        marks = " | ".join(
            pct(*attackers[kind]) if kind in attackers else ("pending" if kind in pending else "–") for kind in ATTACKERS
        )
        lines.append(
            f"| `{row['defense_label']}` | {100 * row['defender_accuracy']:.2f} | {100 * row['defender_loss']:.2f} | {marks} "
            f"| {row['best']} | {pct(*row['best_protection'])}{_baseline_note(row, top)} |"
        )
    return "\n".join(lines)


PLOT_LOSS = 0.25
"""Settings that cost the defender more than this much accuracy are left out of the plot (and counted in its title)."""


def _bar(value: float) -> list[float] | None:
    return None if math.isnan(value) else [100 * value]


def _best_adaptive(row: dict[str, Any]) -> tuple[str, tuple[float, float, int]] | None:
    adaptive = {kind: value for kind, value in row["attackers"].items() if kind != "naive"}
    if not adaptive:
        return None
    kind = max(adaptive, key=lambda k: adaptive[k][0])
    return kind, adaptive[kind]


def plot_block(cells: pd.DataFrame, block: str, path: Path) -> Path:
    """Two panels for ``block``, written as a PNG to ``path``.

    Left: attacker accuracy against defender accuracy for every setting that costs the defender at
    most :data:`PLOT_LOSS`: the naive attacker (filled circle) and the best adaptive attacker (open
    triangle, where one was run), 95% interval bars, one colour per defense family, the undefended
    victim as a black star (hollow: its best attacker, when that is not the naive one). Right: the same attacker accuracies per setting (every setting), since
    most settings keep the defender's accuracy and overlap on the left.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    rows = settings(cells, block)
    fig, (ax, dots) = plt.subplots(1, 2, figsize=(15, max(6.0, 0.28 * len(rows) + 2)), layout="constrained",
                                   gridspec_kw={"width_ratios": [1.1, 1]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"] + ["#000080", "#808000", "#008080"]
    base = _undefended(cells, block)
    base_mean, base_half = t_interval(base["attacker_accuracy"].tolist())
    ax.errorbar([100 * base["defender_accuracy"].mean()], [100 * base_mean], yerr=_bar(base_half), fmt="*", color="black",
                markersize=14, capsize=3, label="none (undefended)")
    undefended = undefended_attackers(cells, block)
    top = strongest(undefended)
    top_mean, top_half = t_interval(undefended[top])
    if top != "naive":
        ax.errorbar([100 * base["defender_accuracy"].mean()], [100 * top_mean], yerr=_bar(top_half), fmt="*", color="black",
                    markersize=14, capsize=3, markerfacecolor="none", label=f"none, best attacker ({top})")
    families: dict[str, str] = {}
    shown = [row for row in rows if row["defender_loss"] <= PLOT_LOSS]
    for row in rows:
        families.setdefault(row["family"], colors[len(families) % len(colors)])
    for row in shown:
        color, x, naive = families[row["family"]], 100 * row["defender_accuracy"], row["attackers"]["naive"]
        ax.errorbar([x], [100 * naive[0]], yerr=_bar(naive[1]), fmt="o", color=color, capsize=3, markersize=6)
        best = _best_adaptive(row)
        if best is not None:
            mean, half, _ = best[1]
            ax.errorbar([x], [100 * mean], yerr=_bar(half), fmt="^", color=color, capsize=3, markersize=7, markerfacecolor="none")
            ax.plot([x, x], [100 * naive[0], 100 * mean], color=color, linewidth=0.6, alpha=0.6)
    for family, color in families.items():
        ax.plot([], [], "s", color=color, label=family)
    ax.plot([], [], "o", color="grey", label="naive attacker")
    ax.plot([], [], "^", color="grey", markerfacecolor="none", label="best adaptive attacker")
    ax.set_xlabel("defender accuracy on the test set (%)")
    ax.set_ylabel("attacker (replica) accuracy on the test set (%)")
    left_out = len(rows) - len(shown)
    note = f"\n{left_out} setting(s) costing the defender > {100 * PLOT_LOSS:.0f} pts not shown here" if left_out else ""
    ax.set_title(f"{block}: {base['victim'].iloc[0]}, {base['attack'].iloc[0]}; 95% intervals over seeds{note}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")

    labels = ["none"]
    dots.errorbar([100 * base_mean], [0], xerr=_bar(base_half), fmt="*", color="black", markersize=12, capsize=3)
    for y, row in enumerate(rows, start=1):
        color, naive = families[row["family"]], row["attackers"]["naive"]
        dots.errorbar([100 * naive[0]], [y], xerr=_bar(naive[1]), fmt="o", color=color, capsize=3, markersize=5)
        best = _best_adaptive(row)
        if best is not None:
            mean, half, _ = best[1]
            dots.errorbar([100 * mean], [y], xerr=_bar(half), fmt="^", color=color, capsize=3, markersize=6, markerfacecolor="none")
        labels.append(f"{row['defense_label']}  ({round(100 * row['defender_loss'], 2) + 0.0:.2f} pts)")
    dots.axvline(100 * base_mean, color="black", linewidth=0.6, linestyle=":")
    if top != "naive":
        dots.errorbar([100 * top_mean], [0], xerr=_bar(top_half), fmt="*", color="black", markersize=12, capsize=3, markerfacecolor="none")
        dots.axvline(100 * top_mean, color="black", linewidth=0.6, linestyle="--")
    dots.set_yticks(range(len(labels)), labels, fontsize=7)
    dots.invert_yaxis()
    dots.set_xlabel("attacker (replica) accuracy on the test set (%)")
    dots.set_title("per setting (defender loss in brackets)", fontsize=10)
    dots.grid(alpha=0.3, axis="x")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
