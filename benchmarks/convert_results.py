"""Convert results files of the earlier reproduction runner to :class:`~stealguard.runspec.RunResult` rows (run once).

The earlier runner (``stealguard/harness/reproduce.py``, retired) wrote one row per grid cell
with its own columns: the cell's identity as a JSON ``key`` (victim, attack, defense, seed, budget),
``label`` (the defense setting as the config wrote it) and the measured numbers. Each row becomes
the ``RunResult`` of the :class:`~stealguard.runspec.RunSpec` it ran:

- the victim is the ``VictimSpec`` of the key's victim (dataset, arch, training overrides, seed; an
  ``int8`` table as :class:`~stealguard.runspec.Int8Variant`); a ``dp_sgd:...`` cell is the
  :class:`~stealguard.runspec.DPVariant` victim attacked behind ``none``, as it ran;
- the defense is the row's ``label`` (its parameters in the config's order), the attack the key's
  registry name and parameters, with the key's query set, budget and seed;
- ``defense_seed`` equals ``seed``: the earlier runner seeded the defender (MAD's surrogate, noise)
  with the attacker's seed, and the row says so.

Every measured number is kept as stored: accuracies, fidelity, the L1 columns, the angular
deviation (degrees, ``angular_deviation_mean`` then), the latency ratio, queries, elapsed time, the
code version and the finish time. ``victim_accuracy`` stays what was stored: for ``dp_sgd`` rows
that is the float victim's accuracy (the DP-SGD victim's own is its ``defender_accuracy``), and
their ``l1_*`` are the distance of the DP-SGD victim's answers from the float victim's. Columns the
earlier runner did not measure (``clean_accuracy``, the two latencies, ``test_size``) are left
empty or 0. ``attack_report`` keeps the parameters the run resolved (the defaults filled in) and
the query set it loaded, under ``converted_from``.

Usage::

    python benchmarks/convert_results.py benchmarks/results/paper/results.csv benchmarks/results/dcp-cpu/*.csv

A file already in a ``RunResult`` layout (current or before ``device``) is left alone; any row that does not convert stops the
script before a file is written.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from stealguard.defenses.spec import parse_defense_spec
from stealguard.harness.run_table import RunTable
from stealguard.runspec import AttackSpec, DefenseSpec, DPVariant, FloatVariant, Int8Variant, RunResult, RunSpec, VictimSpec

OLD_COLUMNS = (
    "key", "victim", "victim_dataset", "victim_arch", "victim_accuracy", "attack_name", "attack", "queryset", "attack_params",
    "defense", "defense_params", "label", "budget", "queries_used", "seed", "defender_accuracy", "attacker_accuracy", "fidelity",
    "l1_mean", "l1_max", "query_l1_mean", "angular_deviation_mean", "latency_ratio", "elapsed_s", "code_version", "finished_at",
)
"""Header of the earlier runner's results files."""
KEPT = (
    "defender_accuracy", "attacker_accuracy", "fidelity", "l1_mean", "l1_max", "query_l1_mean", "latency_ratio", "elapsed_s",
)
"""Measured float columns carried over under the same name."""


def _number(text: str) -> float:
    return math.nan if text == "" else float(text)


def old_spec(row: dict[str, str]) -> RunSpec:
    """The :class:`RunSpec` an earlier runner's row ran (``defense_seed`` = ``seed``).

    Raises:
        ValueError: a key that is not the earlier runner's cell identity, or a spec that no longer validates.
    """
    try:
        cell = json.loads(row["key"])
        victim, attack = cell["victim"], cell["attack"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"row key {row.get('key', '')[:60]!r} is not a cell identity ({err})") from None
    variant: Any = FloatVariant()
    if victim.get("int8") is not None:
        variant = Int8Variant(calibration=victim["int8"]["calibration"], seed=victim["int8"]["seed"])
    defense = DefenseSpec.model_validate(row["label"]) if row["defense"] != "dp_sgd" else DefenseSpec(name="none")
    if row["defense"] == "dp_sgd":
        if not isinstance(variant, FloatVariant):
            raise ValueError(f"row {victim['name']}: a DP-SGD twin of an int8 victim")
        variant = DPVariant(**parse_defense_spec(row["label"])[1])
    spec = VictimSpec(dataset=victim["dataset"], arch=victim["arch"], train=victim.get("train", {}), seed=victim["seed"], variant=variant)
    seed = int(cell["seed"])
    return RunSpec(
        victim=spec, defense=defense, attack=AttackSpec(name=attack["attack"], params=attack["params"]), queryset=attack["queryset"],
        budget=int(cell["budget"]), seed=seed, defense_seed=seed,
    )


def convert_row(row: dict[str, str]) -> RunResult:
    """The :class:`RunResult` of one earlier runner's row, every measured number as stored."""
    spec = old_spec(row)
    victim = spec.victim
    assert isinstance(victim, VictimSpec)
    identity = {
        "key": spec.key(), "spec": spec.model_dump_json(), "victim": victim.label(), "victim_dataset": victim.dataset,
        "victim_arch": victim.arch, "victim_variant": victim.variant.kind, "victim_accuracy": _number(row["victim_accuracy"]),
        "defense": spec.defense.name, "defense_label": str(spec.defense),
        "defense_params": json.dumps(spec.defense.params, sort_keys=True, separators=(",", ":")),
        "attack": spec.attack.name, "attack_label": str(spec.attack),
        "attack_params": json.dumps(spec.attack.params, sort_keys=True, separators=(",", ":")),
        "queryset": spec.queryset, "budget": spec.budget, "seed": spec.seed, "defense_seed": spec.defense_seed,
    }
    resolved = {
        "attack_params": json.loads(row["attack_params"] or "{}"), "defense_params": json.loads(row["defense_params"] or "{}"),
        "queryset": row["queryset"] or None,
    }
    return RunResult(
        **identity,
        **{name: _number(row[name]) for name in KEPT},
        angular_deviation_deg=_number(row["angular_deviation_mean"]),
        queries_used=int(row["queries_used"]),
        attack_report=json.dumps({"converted_from": resolved}, sort_keys=True),
        code_version=row["code_version"],
        finished_at=row["finished_at"],
    )


def convert_file(path: Path) -> int | None:
    """Rewrite ``path`` in the ``RunResult`` layout; returns the rows converted (None: already converted).

    Raises:
        ValueError: a header that is neither layout, or a row that does not convert (nothing written then).
    """
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        header = tuple(reader.fieldnames or ())
        rows = list(reader)
    if header in (RunResult.columns(), RunResult.earlier_columns()):
        return None
    if header != OLD_COLUMNS:
        raise ValueError(f"{path}: neither the earlier runner's header nor RunResult's ({list(header)[:4]}...)")
    converted = []
    for number, row in enumerate(rows, start=2):
        try:
            converted.append(convert_row(row))
        except ValueError as err:
            lines = [line.strip() for line in str(err).splitlines() if line.strip() and not line.strip().startswith("For further")]
            raise ValueError(f"{path}:{number}: {'; '.join(lines)}") from None
    keys = [result.key for result in converted]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{path}: two rows convert to one RunSpec key")
    staging = Path(tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)[1])
    try:
        staging.unlink()
        table = RunTable(staging)
        for result in converted:
            table.append(result)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    return len(converted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="results files of the earlier runner (results.csv, superseded.csv)")
    args = parser.parse_args(argv)
    for path in args.files:
        try:
            count = convert_file(path)
        except (OSError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{path}: " + ("already RunResult rows" if count is None else f"{count} row(s) converted"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
