"""A short end-to-end demonstration on the built-in ``digits`` data (no files needed).

The digits training split is cut into two disjoint, stratified halves with
``split_dataset``: the victim (an ``mlp``) trains on one, the other is the attacker's
Knockoff query set, so the attacker never queries the victim's training images (Knockoff
Nets assume an attacker without the victim's training data). The halves come from the same
distribution, so this is the attacker's easiest case. Knockoff then steals the victim once per defense in :data:`DEMO_DEFENSES`,
each at one operating point where the defenses visibly differ, with :data:`DEMO_BUDGET`
queries. Everything is evaluated on the digits test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from stealguard import data as sgdata
from stealguard._checks import check_int
from stealguard.device import DeviceLike
from stealguard.harness.experiment import run_attack
from stealguard.harness.plots import plot_tradeoff
from stealguard.harness.tables import write_csv, write_json
from stealguard.harness.train import fit_victim

DEMO_DEFENSES: tuple[str, ...] = (
    "none",
    "mad:epsilon=0.5",
    "mad_argmax:epsilon=1.7",
    "dcp:tau=0.99,beta=1.0",
    "reverse_sigmoid:beta=0.5,gamma=0.3",
    "random_noise:epsilon=0.5",
    "label_only",
)
"""Defense specs the demo runs, in table order. ``mad`` and ``random_noise`` share the L1
budget 0.5, so their rows compare a targeted with an untargeted perturbation of the same
size; ``mad_argmax`` needs a large budget to hurt a soft-label attacker because it keeps
every top-1 label; the detector-gated ``dcp`` perturbs the less confident answers."""

DEMO_BUDGET = 300
"""Queries per attack: a budget where the soft information in the answers still matters
(with the whole query half, label-only answers teach the replica almost as much)."""

VICTIM_FRACTION = 0.5
"""Share of the digits training split the victim trains on; the rest is the query set."""

DEMO_ATTACK_PARAMS: dict[str, Any] = {"epochs": 30, "batch_size": 32, "lr": 1e-3, "optimizer": "adam"}
"""Knockoff's training settings in the demo (the replica is an ``mlp`` like the victim)."""


def demo(
    *,
    out_dir: Path | str,
    seed: int = 0,
    device: DeviceLike = "auto",
    progress: bool = True,
    defenses: tuple[str, ...] = DEMO_DEFENSES,
    threads: int = 1,
) -> list[dict[str, Any]]:
    """Train a digits victim, attack it behind each defense, save and return the results.

    Writes into ``out_dir``: ``victim/`` (the model), ``results.csv``, ``results.json`` and
    ``tradeoff.png``. Seeded: the same ``seed`` gives the same numbers on the CPU
    (latencies aside). The models are tiny, so torch runs on ``threads`` intra-op threads
    (default 1) for the duration (restored afterwards): on a busy 2-core machine intra-op
    threads fight for the cores and make each step ten times slower. Print the returned rows with
    :func:`stealguard.harness.tables.format_table`.

    Returns:
        One :func:`~stealguard.harness.experiment.run_attack` dict per defense.
    """
    check_int("seed", seed, low=0)
    check_int("threads", threads, low=1)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _demo(Path(out_dir), seed=seed, device=device, progress=progress, defenses=defenses)
    finally:
        torch.set_num_threads(before)


def _demo(
    out_dir: Path, *, seed: int, device: DeviceLike, progress: bool, defenses: tuple[str, ...]
) -> list[dict[str, Any]]:
    train = sgdata.load_dataset("digits", split="train")
    test = sgdata.load_dataset("digits", split="test")
    victim_part, query_part = sgdata.split_dataset(train, VICTIM_FRACTION, seed, stratify=True)
    model, card = fit_victim(
        victim_part, test, arch="mlp", seed=seed, device=device, out=out_dir / "victim", progress=progress
    )
    rows = []
    for spec in tqdm(defenses, desc="demo", unit="defense", disable=not progress):
        rows.append(
            run_attack(
                victim=(model, card),
                defense=spec,
                attack="knockoff",
                attack_params=DEMO_ATTACK_PARAMS,
                queryset=query_part,
                budget=min(DEMO_BUDGET, len(query_part)),
                seed=seed,
                device=device,
                progress=progress,
                test_set=test,
            )
        )
    write_csv(rows, out_dir / "results.csv")
    write_json(rows, out_dir / "results.json")
    plot_tradeoff(rows, out_dir / "tradeoff.png", title=f"Knockoff vs mlp on digits, budget {min(DEMO_BUDGET, len(query_part))}")
    return rows
