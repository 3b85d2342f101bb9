"""``Grid``: a reproduction sweep as data (victims x attacks x defense settings x seeds).

A grid is read from a TOML file (``benchmarks/configs/*.toml``)::

    name = "paper"
    results = "paper"             # optional: results folder shared by several grids (default: name)
    victim_cache = "../victims"   # optional: folder whose victims/ holds the trained victims (the
                                  # runner's --work), relative to this file; default runs/reproduce/<results>
    budget = 50000
    seeds = [0, 1]
    defenses = ["none", "mad:epsilon=0.5", "reverse_sigmoid:beta=0.1", "dp_sgd:noise_multiplier=1.0"]

    [[victim]]
    name = "mnist-lenet"          # folder of the cached victim
    dataset = "mnist"
    arch = "lenet"
    train = { epochs = 5 }        # optional overrides of the arch's training defaults

    [[victim]]
    name = "mnist-lenet-int8"     # the int8-quantized copy of an earlier victim
    int8 = { of = "mnist-lenet", calibration = 512, seed = 0 }

    [[attack]]
    name = "knockoff"             # label in results and plots
    attack = "knockoff"           # registry name (default: name)
    queryset = { mnist = "fashionmnist", fashionmnist = "mnist" }   # per victim data set, or one name
    params = { epochs = 30 }      # the attack's parameters
    budget = 50000                # optional: this attack's budget instead of the grid's
    defenses = ["none", "mad:epsilon=0.5"]   # optional: this attack's defense settings instead of the grid's
    seeds = [0]                   # optional: this attack's seeds instead of the grid's

    [compare]                     # optional: the report's equal-cost comparison
    references = ["mad", "mad_argmax"]                      # defenses compared with each rival (default)
    rivals = ["reverse_sigmoid", "random_noise", "dp_sgd"]  # default

Per-attack ``defenses`` and ``seeds`` make a reduced grid explicit: a costly attack can run a
subset of the settings (or fewer seeds) and the config still says exactly which cells exist.

Defense settings are the CLI's specs. ``dp_sgd:noise_multiplier=S[,max_grad_norm=C]`` is not
a posterior perturbation but a victim trained with DP-SGD (Opacus), attacked undefended: the
sweep trains and caches one such victim per setting.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stealguard import attacks, defenses
from stealguard.defenses.spec import parse_defense_spec
from stealguard.models.dp import check_dp_params

PLACEHOLDERS = {"surrogate": lambda: nn.Linear(1, 2), "misinformation": nn.Identity}
"""Stand-ins for the model-valued defense parameters the sweep supplies, so a grid's specs are
checked (ranges included) when it is loaded, before anything trains."""

ATTACK_PLACEHOLDERS = {"queryset": lambda: torch.zeros(2, 1, 8, 8)}
"""Likewise for the attacks' parameters the sweep supplies (the query set is loaded per victim)."""

DP_SGD = "dp_sgd"
"""Pseudo-defense name of a DP-SGD-trained victim."""
DP_DEFAULTS: dict[str, float] = {"max_grad_norm": 1.0}
REFERENCES = ("mad", "mad_argmax")
"""Default references of the report's equal-cost comparison (Prediction Poisoning's defenses)."""
RIVALS = ("reverse_sigmoid", "random_noise", DP_SGD)
"""Default rivals each reference is compared with (the paper's baselines, DP-SGD-trained victims included)."""


def _fail(where: str, message: str) -> ValueError:
    return ValueError(f"grid {where}: {message}")


def _table(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(where, f"must be a table of key = value, got {value!r}")
    return dict(value)


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "/\\:, "):
        raise _fail(where, f"must be a non-empty name without '/', ':', ',' or spaces, got {value!r}")
    return value


@dataclass(frozen=True)
class Int8Spec:
    """How an int8 victim is made from a float one of the grid: post-training static
    quantization of ``base`` calibrated on ``calibration`` training images drawn with ``seed``."""

    base: VictimSpec
    calibration: int = 512
    seed: int = 0


@dataclass(frozen=True)
class VictimSpec:
    """A victim to train (once) and attack: ``name`` (cache folder), ``dataset``, ``arch``,
    ``train`` (overrides of ``epochs``, ``lr``, ``optimizer``, ``batch_size``), ``seed``;
    with ``int8`` set, the int8-quantized copy of another victim of the grid (whose
    ``dataset``, ``arch``, ``train`` and ``seed`` it shares)."""

    name: str
    dataset: str
    arch: str
    train: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    int8: Int8Spec | None = None

    def identity(self) -> dict[str, Any]:
        identity: dict[str, Any] = {"name": self.name, "dataset": self.dataset, "arch": self.arch, "train": self.train, "seed": self.seed}
        if self.int8 is not None:
            identity["int8"] = {"of": self.int8.base.name, "calibration": self.int8.calibration, "seed": self.int8.seed}
        return identity


@dataclass(frozen=True)
class AttackSpec:
    """An attack of the grid: ``name`` (label), ``attack`` (registry name), ``queryset``
    (one data-set name, a mapping victim data set -> name, or ``None`` for data-free
    attacks), ``params`` (keyword parameters of the attack), ``budget``, ``defenses`` and
    ``seeds`` (each overrides the grid's when set)."""

    name: str
    attack: str
    queryset: str | dict[str, str] | None
    params: dict[str, Any] = field(default_factory=dict)
    budget: int | None = None
    """Queries of this attack's cells; ``None``: the grid's budget."""
    defenses: tuple[str, ...] | None = None
    """Defense settings of this attack's cells; ``None``: the grid's."""
    seeds: tuple[int, ...] | None = None
    """Seeds of this attack's cells; ``None``: the grid's."""

    def queryset_for(self, dataset: str) -> str | None:
        """The query set this attack uses against a victim trained on ``dataset``."""
        if self.queryset is None or isinstance(self.queryset, str):
            return self.queryset
        if dataset not in self.queryset:
            raise _fail(f"attack {self.name!r}", f"queryset names no data set for victims of {dataset!r} ({sorted(self.queryset)})")
        return self.queryset[dataset]


@dataclass(frozen=True)
class Cell:
    """One run: ``victim`` behind ``defense`` attacked by ``attack`` with ``budget`` queries and ``seed``."""

    victim: VictimSpec
    attack: AttackSpec
    defense: str
    seed: int
    budget: int

    @property
    def defense_name(self) -> str:
        return parse_defense_spec(self.defense)[0]

    @property
    def dp(self) -> dict[str, float] | None:
        """DP-SGD settings when the defense is ``dp_sgd``, else ``None``."""
        name, params = parse_defense_spec(self.defense)
        return {**DP_DEFAULTS, **params} if name == DP_SGD else None

    @property
    def queryset(self) -> str | None:
        return self.attack.queryset_for(self.victim.dataset)

    def key(self) -> str:
        """Canonical JSON of everything that defines the cell (its identity in the results file)."""
        name, params = parse_defense_spec(self.defense)
        return json.dumps(
            {
                "victim": self.victim.identity(),
                "attack": {"name": self.attack.name, "attack": self.attack.attack, "queryset": self.queryset, "params": self.attack.params},
                "defense": {"name": name, "params": params},
                "seed": self.seed,
                "budget": self.budget,
            },
            sort_keys=True,
            separators=(",", ":"),
        )


@dataclass(frozen=True)
class Grid:
    """A sweep: every victim x attack x defense x seed at one budget (see the module docstring)."""

    name: str
    budget: int
    seeds: tuple[int, ...]
    victims: tuple[VictimSpec, ...]
    attacks: tuple[AttackSpec, ...]
    defenses: tuple[str, ...]
    results: str = ""
    """Name of the results folder (and victim cache); grids naming the same one share cells."""
    references: tuple[str, ...] = REFERENCES
    """Defense names the report compares with each rival at equal cost."""
    rivals: tuple[str, ...] = RIVALS
    """Defense names (or ``dp_sgd``) each reference is compared with."""
    victim_cache: Path | None = None
    """Folder whose ``victims/`` holds the grid's trained victims (committed ones, say); ``None``:
    the runner's default (``runs/reproduce/<results>``)."""

    def __post_init__(self) -> None:
        if not self.results:
            object.__setattr__(self, "results", self.name)

    def cells(self) -> Iterator[Cell]:
        """Cells in run order: victim, attack, seed, then defense (so early results already form curves)."""
        for victim in self.victims:
            for attack in self.attacks:
                for seed in attack.seeds or self.seeds:
                    for defense in attack.defenses or self.defenses:
                        yield Cell(victim=victim, attack=attack, defense=defense, seed=seed, budget=attack.budget or self.budget)

    def all_defenses(self) -> list[str]:
        """Every defense setting of the grid's cells, in first-use order (grid's, then the attacks' own)."""
        out = list(self.defenses)
        for attack in self.attacks:
            out += [spec for spec in attack.defenses or () if spec not in out]
        return out

    def dp_settings(self) -> list[dict[str, float]]:
        """The distinct DP-SGD settings among the defenses (the grid's and the attacks' own)."""
        out: list[dict[str, float]] = []
        for spec in self.all_defenses():
            name, params = parse_defense_spec(spec)
            if name == DP_SGD and {**DP_DEFAULTS, **params} not in out:
                out.append({**DP_DEFAULTS, **params})
        return out


def _positive_int(value: Any, where: str, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise _fail(where, f"must be an integer >= {low}, got {value!r}")
    return value


def _victim(raw: dict[str, Any], where: str, earlier: list[VictimSpec]) -> VictimSpec:
    """A ``[[victim]]`` table: ``name, dataset, arch [, train, seed]`` for a float victim, or
    ``name, int8 = { of = "<earlier victim>" [, calibration = 512, seed = 0] }`` for its int8 copy."""
    if "int8" in raw:
        if set(raw) - {"name", "int8"}:
            raise _fail(where, f"an int8 victim takes only name and int8 = {{ of = ..., calibration = ..., seed = ... }}; got {sorted(raw)}")
        int8 = _table(raw["int8"], f"{where}.int8")
        if "of" not in int8 or set(int8) - {"of", "calibration", "seed"}:
            raise _fail(f"{where}.int8", f"needs of (optional calibration, seed); got {sorted(int8)}")
        bases = [victim for victim in earlier if victim.name == int8["of"]]
        if not bases or bases[0].int8 is not None:
            floats = [victim.name for victim in earlier if victim.int8 is None]
            raise _fail(f"{where}.int8.of", f"{int8['of']!r} is not a float victim listed before it ({floats})")
        base = bases[0]
        spec = Int8Spec(
            base=base,
            calibration=_positive_int(int8.get("calibration", 512), f"{where}.int8.calibration"),
            seed=_positive_int(int8.get("seed", 0), f"{where}.int8.seed", low=0),
        )
        return VictimSpec(
            name=_name(raw.get("name"), f"{where}.name"), dataset=base.dataset, arch=base.arch, train=base.train, seed=base.seed, int8=spec
        )
    missing = {"name", "dataset", "arch"} - set(raw)
    if missing or set(raw) - {"name", "dataset", "arch", "train", "seed"}:
        raise _fail(where, f"needs name, dataset, arch (optional train, seed), or name and int8; got {sorted(raw)}")
    return VictimSpec(
        name=_name(raw["name"], f"{where}.name"), dataset=str(raw["dataset"]), arch=str(raw["arch"]),
        train=_table(raw.get("train"), f"{where}.train"), seed=_positive_int(raw.get("seed", 0), f"{where}.seed", low=0),
    )


def _check_attack_params(name: str, params: dict[str, Any], where: str) -> dict[str, Any]:
    """``params`` when attack ``name`` takes them (names, types and ranges: the attack is built once)."""
    accepted = attacks.parameters(name)
    unknown = set(params) - set(accepted)
    if unknown:
        raise _fail(where, f"{name} takes no parameter(s) {sorted(unknown)}")
    extra = {key: make() for key, make in ATTACK_PLACEHOLDERS.items() if key in accepted and key not in params}
    try:
        attacks.create(name, **params, **extra)
    except (TypeError, ValueError) as err:
        raise _fail(where, f"{name}: {err}") from None
    return params


def _check_defense(spec: Any, where: str) -> str:
    if not isinstance(spec, str):
        raise _fail(where, f"must be a defense spec string, got {spec!r}")
    try:
        name, params = parse_defense_spec(spec)
        if name == DP_SGD:
            check_dp_params({**DP_DEFAULTS, **params})
            return spec.strip()
        if name not in defenses.names():
            raise ValueError(f"unknown defense {name!r}; available: {', '.join(defenses.names())}, {DP_SGD}")
        accepted = defenses.parameters(name)
        unknown = set(params) - set(accepted)
        if unknown:
            raise ValueError(f"{name} takes no parameter(s) {sorted(unknown)}")
        extra = {key: make() for key, make in PLACEHOLDERS.items() if key in accepted and key not in params}
        defenses.create(name, **params, **extra)
    except (TypeError, ValueError) as err:
        raise _fail(where, f"{spec!r}: {err}") from None
    return spec.strip()


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
        raise _fail(where, f"must be a non-empty list of integers >= 0, got {value!r}")
    if len(set(value)) != len(value):
        raise _fail(where, f"lists a seed twice: {value!r}")
    return tuple(value)


def _defenses(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _fail(where, f"must be a non-empty list of defense specs, got {value!r}")
    specs = tuple(_check_defense(spec, f"{where}[{i}]") for i, spec in enumerate(value))
    canonical = {json.dumps(parse_defense_spec(spec), sort_keys=True) for spec in specs}
    if len(canonical) != len(specs):
        raise _fail(where, f"lists a defense setting twice: {list(specs)!r}")
    return specs


def _defense_names(value: Any, where: str) -> tuple[str, ...]:
    known = (*defenses.names(), DP_SGD)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _fail(where, f"must be a non-empty list of defense names, got {value!r}")
    unknown = [v for v in value if v not in known]
    if unknown:
        raise _fail(where, f"unknown defense(s) {unknown}; available: {', '.join(known)}")
    if len(set(value)) != len(value):
        raise _fail(where, f"lists a defense twice: {value!r}")
    return tuple(value)


def _compare(value: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(references, rivals)`` of the optional ``[compare]`` table (defaults where absent)."""
    if value is None:
        return REFERENCES, RIVALS
    table = _table(value, "compare")
    if set(table) - {"references", "rivals"}:
        raise _fail("compare", f"unknown field(s) {sorted(set(table) - {'references', 'rivals'})}; allowed: references, rivals")
    references = _defense_names(table["references"], "compare.references") if "references" in table else REFERENCES
    rivals = _defense_names(table["rivals"], "compare.rivals") if "rivals" in table else RIVALS
    if set(references) & set(rivals):
        raise _fail("compare", f"a defense cannot be both reference and rival: {sorted(set(references) & set(rivals))}")
    return references, rivals


def _victim_cache(value: Any, base_dir: Path | None) -> Path | None:
    """The ``victim_cache`` folder, resolved against ``base_dir`` (the config's folder) when relative."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail("victim_cache", f"must be a folder path (relative to the config file), got {value!r}")
    path = Path(value)
    return path if path.is_absolute() or base_dir is None else (base_dir / path).resolve()


def grid_from_dict(config: Mapping[str, Any], *, base_dir: Path | None = None) -> Grid:
    """Build and check a :class:`Grid` from a parsed config (see the module docstring).

    ``base_dir`` is the folder a relative ``victim_cache`` is taken from (the config file's; ``None``:
    the path is kept as written, i.e. relative to the working directory).

    Raises:
        ValueError: a missing or malformed field, an unknown attack or defense (the message
            names the field).
    """
    config = _table(config, "config")
    allowed = {"name", "results", "budget", "seeds", "defenses", "victim", "attack", "compare", "victim_cache"}
    if set(config) - allowed:
        raise _fail("config", f"unknown field(s) {sorted(set(config) - allowed)}; allowed: {sorted(allowed)}")
    name = _name(config.get("name"), "name")
    results = _name(config.get("results", name), "results")
    budget = _positive_int(config.get("budget"), "budget")
    seeds = _seeds(config.get("seeds", [0]), "seeds")
    grid_defenses = _defenses(config.get("defenses"), "defenses")
    victims: list[VictimSpec] = []
    for index, raw in enumerate(config.get("victim") or []):
        victim = _victim(_table(raw, f"victim[{index}]"), f"victim[{index}]", victims)
        if any(other.name == victim.name for other in victims):
            raise _fail(f"victim[{index}].name", f"{victim.name!r} names two victims")
        victims.append(victim)
    if not victims:
        raise _fail("victim", "the grid needs at least one [[victim]]")
    attack_specs = []
    for index, raw in enumerate(config.get("attack") or []):
        raw = _table(raw, f"attack[{index}]")
        if "name" not in raw or set(raw) - {"name", "attack", "queryset", "params", "budget", "defenses", "seeds"}:
            raise _fail(f"attack[{index}]", f"needs name (optional attack, queryset, params, budget, defenses, seeds); got {sorted(raw)}")
        label = _name(raw["name"], f"attack[{index}].name")
        registry_name = str(raw.get("attack", label))
        if registry_name not in attacks.names():
            raise _fail(f"attack[{index}]", f"unknown attack {registry_name!r}; available: {', '.join(attacks.names())}")
        params = _check_attack_params(registry_name, _table(raw.get("params"), f"attack[{index}].params"), f"attack[{index}].params")
        queryset = raw.get("queryset")
        if queryset is not None and not isinstance(queryset, (str, Mapping)):
            raise _fail(f"attack[{index}].queryset", f"must be a data-set name or a table victim data set -> name, got {queryset!r}")
        attack_budget = raw.get("budget")
        if attack_budget is not None:
            attack_budget = _positive_int(attack_budget, f"attack[{index}].budget")
        attack_specs.append(
            AttackSpec(
                name=label, attack=registry_name,
                queryset=dict(queryset) if isinstance(queryset, Mapping) else queryset,
                params=params,
                budget=attack_budget,
                defenses=None if "defenses" not in raw else _defenses(raw["defenses"], f"attack[{index}].defenses"),
                seeds=None if "seeds" not in raw else _seeds(raw["seeds"], f"attack[{index}].seeds"),
            )
        )
    if not attack_specs:
        raise _fail("attack", "the grid needs at least one [[attack]]")
    references, rivals = _compare(config.get("compare"))
    grid = Grid(
        name=name, results=results, budget=budget, seeds=seeds, victims=tuple(victims), attacks=tuple(attack_specs),
        defenses=grid_defenses, references=references, rivals=rivals,
        victim_cache=_victim_cache(config.get("victim_cache"), base_dir),
    )
    for victim in grid.victims:
        for attack in grid.attacks:
            attack.queryset_for(victim.dataset)
    return grid


def load_grid(path: Path | str) -> Grid:
    """Read and check a grid TOML file.

    Raises:
        FileNotFoundError: no such file. ValueError: invalid TOML or grid (names the field).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid config {str(path)!r} does not exist")
    try:
        config = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"grid config {path}: invalid TOML: {err}") from None
    return grid_from_dict(config, base_dir=path.resolve().parent)
