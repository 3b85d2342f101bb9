"""Several defenses (or one defense at several settings) against one attack -> CSV + PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from stealguard import data as sgdata
from stealguard.defenses.base import Defense
from stealguard.device import DeviceLike
from stealguard.harness.experiment import Victim, build_defense, load_victim, queryset_spec, run_attack
from stealguard.harness.plots import plot_tradeoff
from stealguard.harness.tables import write_csv, write_json
from stealguard.seeds import defense_seed_for

RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
PLOT_PNG = "tradeoff.png"


def sweep(
    *,
    victim: Victim,
    defenses: Sequence[str | Defense],
    attack: str = "knockoff",
    attack_params: dict[str, Any] | None = None,
    queryset: str | Any,
    data_root: Path | str | None = None,
    budget: int,
    seed: int = 0,
    defense_seed: int | None = None,
    device: DeviceLike = "auto",
    progress: bool = True,
    out_dir: Path | str,
    test_set: Any | None = None,
    include_none: bool = True,
    download: bool = False,
) -> list[dict[str, Any]]:
    """Run :func:`~stealguard.harness.experiment.run_attack` once per defense and save the results.

    Victim, query set and test set are loaded once. Every spec is built (and so checked)
    before the first attack runs. With ``include_none`` the undefended API is added first
    when no spec names ``none``, so the plot always has its reference point.

    Writes ``results.csv``, ``results.json`` and ``tradeoff.png`` (attacker accuracy vs
    defender accuracy and vs mean L1 distortion) into ``out_dir``.

    Returns:
        One :func:`run_attack` dict per defense, in order.

    Raises:
        As :func:`run_attack`; ValueError when ``defenses`` is empty.
    """
    if isinstance(defenses, (str, Defense)) or not defenses:
        raise ValueError("defenses must be a non-empty list of defense specs")
    specs = list(defenses)
    model, card = load_victim(victim)
    victim_dir = None if isinstance(victim, tuple) else Path(victim)
    for spec in specs:
        build_defense(
            spec, card=card, seed=defense_seed_for(seed, defense_seed), victim_model=model, victim_dir=victim_dir,
            data_root=data_root, download=download, device=device,
        )
    if include_none and not any(isinstance(s, str) and s.strip().partition(":")[0].strip() == "none" for s in specs):
        specs.insert(0, "none")
    if isinstance(queryset, str):
        queryset = sgdata.load_queryset(queryset_spec(queryset, card.dataset), root=data_root, input_shape=tuple(card.input_shape), split="train", download=download)
    if test_set is None:
        test_set = sgdata.load_dataset(card.dataset, root=data_root, split="test", download=download)
    rows = []
    for spec in tqdm(specs, desc="sweep", unit="defense", disable=not progress):
        rows.append(
            run_attack(
                victim=(model, card) if victim_dir is None else victim_dir,
                defense=spec,
                attack=attack,
                attack_params=attack_params,
                queryset=queryset,
                data_root=data_root,
                budget=budget,
                seed=seed,
                defense_seed=defense_seed,
                device=device,
                progress=progress,
                test_set=test_set,
                download=download,
            )
        )
    save_results(rows, Path(out_dir), title=f"{attack} vs {card.arch} on {card.dataset}, budget {budget}")
    return rows


def save_results(rows: Sequence[dict[str, Any]], out_dir: Path, *, title: str | None = None) -> dict[str, Path]:
    """Write ``results.csv``, ``results.json`` and ``tradeoff.png`` of ``rows`` into ``out_dir``."""
    out_dir = Path(out_dir)
    return {
        "csv": write_csv(rows, out_dir / RESULTS_CSV),
        "json": write_json(list(rows), out_dir / RESULTS_JSON),
        "png": plot_tradeoff(rows, out_dir / PLOT_PNG, title=title),
    }
