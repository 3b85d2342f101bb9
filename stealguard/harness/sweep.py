"""One attack against several defenses (or one defense at several settings) -> results table, JSON and trade-off plot.

Every defense setting is one :class:`~stealguard.runspec.RunSpec` of the same victim, attack,
query set, budget and seeds, run by :func:`stealguard.harness.run.run`; the results are
:class:`~stealguard.runspec.RunResult` rows, so a sweep's ``results.csv`` has the columns of a
grid's (:class:`~stealguard.harness.run_table.RunTable`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from stealguard import models
from stealguard.artifacts import build_defense
from stealguard.device import DeviceLike
from stealguard.harness.plots import plot_tradeoff
from stealguard.harness.run import run
from stealguard.harness.run_table import RunTable
from stealguard.harness.tables import write_json
from stealguard.runspec import AttackSpec, Env, RunResult, RunSpec

RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
PLOT_PNG = "tradeoff.png"


def sweep_specs(
    *,
    victim: Path | str,
    defenses: Sequence[str],
    attack: str = "knockoff",
    attack_params: dict[str, Any] | None = None,
    queryset: str | None = None,
    budget: int,
    seed: int = 0,
    defense_seed: int | None = None,
    include_none: bool = True,
) -> list[RunSpec]:
    """The specs of a sweep, in order (``none`` first when ``include_none`` and no spec names it).

    Raises:
        ValueError: ``defenses`` is empty or not a list; a spec that does not validate (pydantic's
            error names the field: an unknown defense or attack, a parameter it does not take).
        TypeError: a defense that is not a spec string.
    """
    if isinstance(defenses, str) or not defenses:
        raise ValueError("defenses must be a non-empty list of defense specs")
    bad = [type(spec).__name__ for spec in defenses if not isinstance(spec, str)]
    if bad:
        raise TypeError(f"defenses must be spec strings like 'mad:epsilon=0.5', got a {bad[0]}")
    specs = list(defenses)
    if include_none and not any(spec.strip().partition(":")[0].strip() == "none" for spec in specs):
        specs.insert(0, "none")
    attack_spec = AttackSpec(name=attack, params=dict(attack_params or {}))
    return [
        RunSpec(
            victim=str(victim), defense=spec, attack=attack_spec, queryset=queryset, budget=budget, seed=seed, defense_seed=defense_seed
        )
        for spec in specs
    ]


def sweep(
    *,
    victim: Path | str,
    defenses: Sequence[str],
    attack: str = "knockoff",
    attack_params: dict[str, Any] | None = None,
    queryset: str | None = None,
    data_root: Path | str | None = None,
    budget: int,
    budgets: Sequence[int] | None = None,
    seed: int = 0,
    defense_seed: int | None = None,
    device: DeviceLike = "auto",
    progress: bool = True,
    out_dir: Path | str,
    include_none: bool = True,
    download: bool = False,
    overwrite: bool = False,
) -> list[RunResult]:
    """Run one :class:`RunSpec` per defense setting (:func:`sweep_specs`) and save the results.

    Every spec is validated, and every defense built once on the victim (so a parameter out of
    range fails, and adaptive misinformation's model is trained and saved beside the victim)
    before the first attack runs. Writes into ``out_dir``: ``results.csv`` (one
    :class:`RunResult` row per setting), ``results.json`` (the same rows) and ``tradeoff.png``
    (:func:`~stealguard.harness.plots.plot_tradeoff`). torch's thread setting is left as it is.

    Args:
        victim: the victim's directory (``stealguard train --out DIR``).
        queryset: the attacker's data-set spec; None: the victim's default.
        budgets: several budgets: one query run per setting at the largest
            (:func:`~stealguard.harness.budgets.run_budgets`), one row per budget, and
            ``budget_curve.png`` (attacker accuracy against queries); ``budget`` must be their largest.
        data_root, download, device, progress: as :class:`~stealguard.runspec.Env`.
        overwrite: replace a ``results.csv`` already in ``out_dir`` (else it is refused).

    Returns:
        One :class:`RunResult` per defense setting, in order.

    Raises:
        As :func:`sweep_specs` and :func:`stealguard.harness.run.run`; FileExistsError: ``out_dir``
        already holds a ``results.csv`` and ``overwrite`` is False (checked before any work).
    """
    if budgets is not None:
        from stealguard.harness.budgets import parse_budgets

        budgets = parse_budgets(budgets)
        if budget != budgets[-1]:
            raise ValueError(f"budget {budget} must be the largest of budgets {list(budgets)}")
    specs = sweep_specs(
        victim=victim, defenses=defenses, attack=attack, attack_params=attack_params, queryset=queryset, budget=budget,
        seed=seed, defense_seed=defense_seed, include_none=include_none,
    )
    out_dir = Path(out_dir)
    table = RunTable(out_dir / RESULTS_CSV)
    if table.path.exists() and not overwrite:
        raise FileExistsError(f"{table.path} exists; give another --out folder or pass --overwrite")
    folder = Path(victim)
    card = models.load_card(folder)
    for spec in specs:
        build_defense(
            str(spec.defense), card=card, seed=spec.defense_seed, victim_dir=folder, data_root=data_root, download=download,
            device=device, progress=progress,
        )
    env = Env(
        data_root=None if data_root is None else str(data_root), download=download, device="auto" if device is None else str(device),
        progress=progress, threads=None,
    )
    table.path.unlink(missing_ok=True)
    results = []
    for spec in tqdm(specs, desc="sweep", unit="defense", disable=not progress):
        if budgets is None:
            batch = [run(spec, env)]
        else:
            from stealguard.harness.budgets import run_budgets

            batch = run_budgets(spec, env, budgets=budgets)
        for result in batch:
            table.append(result)
        results.extend(batch)
    top = [result for result in results if result.budget == budget]
    save_results(top, out_dir, title=f"{attack} vs {card.arch} on {card.dataset}, budget {budget}", table=False)
    if budgets is not None:
        from stealguard.harness.budgets import CURVE_PNG, plot_budget_curve
        from stealguard.harness.tables import write_json as write_rows

        write_rows([result.to_row() for result in results], out_dir / RESULTS_JSON)
        plot_budget_curve([result.to_row() for result in results], out_dir / CURVE_PNG, title=f"{attack} vs {card.arch} on {card.dataset}")
    return results


def save_results(results: Sequence[RunResult], out_dir: Path | str, *, title: str | None = None, table: bool = True) -> dict[str, Path]:
    """Write ``results.csv`` (unless ``table`` is False: already appended), ``results.json`` and ``tradeoff.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    if table:
        store = RunTable(out_dir / RESULTS_CSV)
        for result in results:
            store.append(result)
    rows = [result.to_row() for result in results]
    return {
        "csv": out_dir / RESULTS_CSV,
        "json": write_json(rows, out_dir / RESULTS_JSON),
        "png": plot_tradeoff(rows, out_dir / PLOT_PNG, title=title),
    }
