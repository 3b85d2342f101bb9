"""Experiment runners: train a victim, attack it behind a defense, one run from its spec, sweep, grids on Ray, demo, plots, tables.

Every function is keyword-only and returns values (no printing); ``stealguard.cli`` is a
thin layer over them.
"""

from stealguard.harness.demo import demo
from stealguard.harness.experiment import build_defense, load_victim, make_surrogate, run_attack
from stealguard.harness.plots import plot_tradeoff
from stealguard.harness.sweep import save_results, sweep, sweep_specs
from stealguard.harness.tables import format_table, write_csv, write_json
from stealguard.harness.train import fit_victim, train_victim, training_defaults

__all__ = [
    "build_defense",
    "demo",
    "fit_victim",
    "format_table",
    "load_victim",
    "make_surrogate",
    "plot_tradeoff",
    "run_attack",
    "save_results",
    "sweep",
    "sweep_specs",
    "train_victim",
    "training_defaults",
    "write_csv",
    "write_json",
]
