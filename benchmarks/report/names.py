"""Result rows as the reports read them: victims and attacks by their grid names, DP-SGD victims as ``dp_sgd``.

A :class:`~stealguard.runspec.RunResult` names its victim by the spec's label and its attack by
registry name and parameters. The reports (and the pages that quote them) use the names of the
grid configs instead (``mnist-lenet``, ``knockoff-adaptive``): :class:`Names` maps specs to those
names from every committed config, and :func:`report_frame` turns a results table into one
pandas row per result with the columns the reports group and print by.

A DP-SGD-trained victim (the ``dp`` variant) is reported under its float twin's name with
defense ``dp_sgd`` and label ``dp_sgd:noise_multiplier=S,max_grad_norm=C``, and its defender
loss is charged against the float twin's accuracy where the table holds a row of the twin: DP-SGD
is then a rival defense like the posterior perturbations. Its ``victim_accuracy`` and ``l1_*``
are taken as stored: rows converted from the earlier runner hold the float twin's accuracy and
the distance of the DP victim's answers from the twin's.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from stealguard.harness.ray_grid import GridConfig, load_grid
from stealguard.harness.run_table import RunTable
from stealguard.runspec import AttackSpec, DPVariant, FloatVariant, RunResult, RunSpec, VictimSpec

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
"""The committed grid configs (``benchmarks/configs``)."""
RESULTS = Path(__file__).resolve().parents[1] / "results"
"""Where committed results live (``benchmarks/results``); a config's ``results`` (else its ``name``) is its folder here."""
DP_SGD = "dp_sgd"
COLUMNS = (
    "key", "victim", "attack_name", "defense", "label", "defense_params", "seed", "victim_accuracy", "defender_accuracy",
    "attacker_accuracy", "fidelity", "l1_mean", "l1_max", "query_l1_mean", "queries_used", "elapsed_s", "code_version",
)
"""Columns of :func:`report_frame`."""


@functools.cache
def committed_configs() -> tuple[GridConfig, ...]:
    """The committed grid configs of :data:`CONFIGS`, in file-name order (read once per process)."""
    return tuple(load_grid(path) for path in sorted(CONFIGS.glob("*.toml")))


def _canonical(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Names:
    """Grid names of victim specs (by :meth:`VictimSpec.key`) and of attacks (by registry name and canonical parameters)."""

    victims: dict[str, str] = field(default_factory=dict)
    attacks: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def from_configs(cls, configs: Iterable[GridConfig]) -> Names:
        """The names every config gives (the first config naming a spec wins)."""
        victims: dict[str, str] = {}
        attacks: dict[tuple[str, str], str] = {}
        for config in configs:
            for name, spec in config.victim_specs().items():
                victims.setdefault(spec.key(), name)
            for attack in config.attacks:
                attacks.setdefault((attack.registry_name, _canonical(dict(attack.params))), attack.name)
        return cls(victims, attacks)

    @classmethod
    def committed(cls, *first: GridConfig) -> Names:
        """The names of ``first`` (they win), then of the committed configs in :data:`CONFIGS`."""
        return cls.from_configs([*first, *committed_configs()])

    @classmethod
    def for_results(cls, path: Path | str) -> Names:
        """The names a results table is read with: those of the committed configs that write it first (their
        ``results``, else their ``name``, is its folder under :data:`RESULTS`), then of the others.

        Two configs may give one attack spec different names (the adaptive configs call Knockoff and
        JB-top3 without evasion both ``naive``); a table is named by the configs that produced it.
        """
        folder = Path(path).resolve().parent
        configs = committed_configs()
        writers = [config for config in configs if (RESULTS / (config.results or config.name)).resolve() == folder]
        return cls.from_configs([*writers, *configs])

    def victim(self, spec: VictimSpec | str) -> str:
        """The grid name of ``spec`` (a DP variant: its float twin's); else its label (a directory: the path)."""
        if not isinstance(spec, VictimSpec):
            return str(spec)
        if isinstance(spec.variant, DPVariant):
            spec = spec.model_copy(update={"variant": FloatVariant()})
        return self.victims.get(spec.key(), spec.label())

    def attack(self, spec: AttackSpec) -> str:
        """The grid label of ``spec``, else its spec string."""
        return self.attacks.get((spec.name, _canonical(dict(spec.params))), str(spec))


def dp_label(variant: DPVariant) -> str:
    """``dp_sgd:noise_multiplier=S,max_grad_norm=C``, the defense label of a DP-SGD victim."""
    return f"{DP_SGD}:noise_multiplier={variant.noise_multiplier!r},max_grad_norm={variant.max_grad_norm!r}"


def defense_of(spec: RunSpec) -> tuple[str, str]:
    """``(defense name, label)`` of ``spec`` as the reports name it (a DP-SGD victim: ``dp_sgd``, :func:`dp_label`)."""
    if isinstance(spec.victim, VictimSpec) and isinstance(spec.victim.variant, DPVariant):
        return DP_SGD, dp_label(spec.victim.variant)
    return spec.defense.name, str(spec.defense)


def report_row(result: RunResult, names: Names) -> dict[str, Any]:
    """One :data:`COLUMNS` row of ``result`` (``defense_params`` decoded)."""
    spec = result.run_spec()
    row = {column: getattr(result, column) for column in COLUMNS if hasattr(result, column)}
    row.update(
        victim=names.victim(spec.victim), attack_name=names.attack(spec.attack), defense=result.defense,
        label=result.defense_label, defense_params=json.loads(result.defense_params),
    )
    if isinstance(spec.victim, VictimSpec) and isinstance(spec.victim.variant, DPVariant):
        variant = spec.victim.variant
        row.update(defense=DP_SGD, label=dp_label(variant), defense_params=variant.model_dump(exclude={"kind"}))
    return row


def report_frame(results: Iterable[RunResult], names: Names | None = None) -> pd.DataFrame:
    """The successful ``results`` as report rows (:data:`COLUMNS`), in order."""
    names = names if names is not None else Names.committed()
    rows = [report_row(result, names) for result in results if result.status == "ok"]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def read_frame(path: Path | str, names: Names | None = None) -> pd.DataFrame:
    """:func:`report_frame` of the results table at ``path`` (default names: :meth:`Names.for_results` of ``path``).

    Raises:
        FileNotFoundError: no such file. ValueError: not a results table of this version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} does not exist")
    return report_frame(RunTable(path).results(), names if names is not None else Names.for_results(path))


def finite(value: Any) -> float:
    """``value`` as a float (None and '' as NaN)."""
    return math.nan if value is None or value == "" else float(value)
