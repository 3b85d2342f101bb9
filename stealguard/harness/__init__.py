"""Experiment runners: train a victim, attack it behind a defense, sweep, reproduction grids, demo, plots, tables.

Every function is keyword-only and returns values (no printing); ``stealguard.cli`` is a
thin layer over them.
"""

from stealguard.harness.demo import demo
from stealguard.harness.experiment import build_defense, load_victim, make_surrogate, run_attack
from stealguard.harness.grid import Grid, grid_from_dict, load_grid
from stealguard.harness.plots import plot_tradeoff
from stealguard.harness.reproduce import run_grid, select_cells
from stealguard.harness.results import ResultsFile
from stealguard.harness.sweep import save_results, sweep
from stealguard.harness.tables import format_table, write_csv, write_json
from stealguard.harness.train import fit_victim, train_victim, training_defaults

__all__ = [
    "Grid",
    "ResultsFile",
    "build_defense",
    "demo",
    "fit_victim",
    "format_table",
    "grid_from_dict",
    "load_grid",
    "load_victim",
    "make_surrogate",
    "plot_tradeoff",
    "run_attack",
    "run_grid",
    "save_results",
    "select_cells",
    "sweep",
    "train_victim",
    "training_defaults",
    "write_csv",
    "write_json",
]
