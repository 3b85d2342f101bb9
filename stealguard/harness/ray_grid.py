"""Grids on Ray: every cell of a grid config as a Ray task, on one machine or a cluster.

A grid config is TOML, validated by :class:`GridConfig` (errors name the field)::

    name = "mnist-verdict"
    budget = 50000
    seeds = [0, 1, 2]
    defenses = ["none", "mad:epsilon=0.5", "reverse_sigmoid:beta=0.3", "dp_sgd:noise_multiplier=1.0"]
    max_retries = 2                     # optional: retries of a failing cell before it is stored as failed
    threads = 1                         # optional: torch threads per cell
    resources = { num_cpus = 1 }        # optional: Ray resources per cell (num_gpus is used when device is cuda)

    [[victim]]
    name = "mnist-lenet"
    dataset = "mnist"
    arch = "lenet"
    train = { epochs = 5 }

    [[victim]]
    name = "mnist-lenet-int8"
    int8 = { of = "mnist-lenet", calibration = 512, seed = 0 }

    [[attack]]
    name = "knockoff"
    queryset = { mnist = "fashionmnist" }
    params = { epochs = 10 }
    budgets = [1000, 5000, 10000, 50000]  # optional: one query run per cell, one row per budget

``dp_sgd:noise_multiplier=S[,max_grad_norm=C]`` among the defenses is not a perturbation of the
answers but a victim variant: each such cell attacks the DP-SGD-trained twin of its victim,
undefended. An attack with ``budgets`` runs each of its cells once at the largest budget and
trains a replica on each prefix of that query run
(:func:`~stealguard.harness.budgets.run_budgets`): one result row per budget, the cell's key
being that of its largest budget's row. The committed configs (``benchmarks/configs``) are read as they are; their
``[compare]`` table and ``victim_cache`` belong to ``benchmarks/reproduce.py`` and its report and
are ignored here.

:func:`run_grid` trains each victim once, as a task that the victim's cells depend on (never
raced), and runs the cells as tasks with the declared resources. Only the driver writes
results: workers return :class:`~stealguard.runspec.RunResult` values, which the driver appends
to ``results.csv`` as they arrive; a cell that still fails after ``max_retries`` retries is
appended to ``failed.csv`` with its error and the others go on. A key already in ``results.csv``
is skipped on ``resume``. With no address Ray starts embedded on this machine (nothing to set up);
with one it joins a running cluster (``ray start --head`` on one machine, ``ray start
--address=HEAD:6379`` on the others, then ``stealguard grid CONFIG --address auto``).
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from tqdm.auto import tqdm

from stealguard.defenses.spec import parse_defense_spec
from stealguard.runspec import (
    AttackSpec,
    DefenseSpec,
    DPVariant,
    Env,
    Int8Variant,
    RunResult,
    RunSpec,
    Scalar,
    VictimSpec,
)

DP_SGD = "dp_sgd"
"""Pseudo-defense of a grid: the victim's DP-SGD-trained twin, attacked undefended."""
LOOPBACK = "127.0.0.1"
"""The node address of an embedded Ray: its traffic stays on this machine."""
RESULTS_FILE = "results.csv"
FAILED_FILE = "failed.csv"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Int8Of(_Strict):
    """``int8 = { of = "<float victim>", calibration = 512, seed = 0 }``."""

    of: str
    calibration: PositiveInt = 512
    seed: NonNegativeInt = 0


class GridVictim(_Strict):
    """A ``[[victim]]`` table: a float victim (``dataset``, ``arch``, optional ``train``, ``seed``)
    or the int8 copy of an earlier one (``int8``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    dataset: str | None = None
    arch: str | None = None
    train: dict[str, Scalar] = Field(default_factory=dict)
    seed: NonNegativeInt = 0
    int8: Int8Of | None = None

    @field_validator("arch")
    @classmethod
    def _arch(cls, value: str | None) -> str | None:
        return None if value is None else VictimSpec._arch(value)

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str | None) -> str | None:
        return None if value is None else VictimSpec._dataset(value)

    @model_validator(mode="after")
    def _kind(self) -> GridVictim:
        if self.int8 is None and (self.dataset is None or self.arch is None):
            raise ValueError("a float victim needs dataset and arch")
        if self.int8 is not None and (self.dataset is not None or self.arch is not None or self.train):
            raise ValueError("an int8 victim takes only name and int8 = { of = ..., calibration = ..., seed = ... }")
        return self


class GridAttack(_Strict):
    """An ``[[attack]]`` table: ``name`` (label), ``attack`` (registry name, default ``name``),
    ``queryset`` (one data set, or one per victim data set), ``params``, and optional
    ``budget``, ``defenses`` and ``seeds`` replacing the grid's for this attack, or ``budgets``
    (several budgets from one query run per cell, instead of ``budget``)."""

    name: str
    attack: str | None = None
    queryset: str | dict[str, str] | None = None
    params: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    budget: PositiveInt | None = None
    budgets: list[PositiveInt] | None = None
    defenses: list[str] | None = None
    seeds: list[NonNegativeInt] | None = None

    @model_validator(mode="after")
    def _one_budget_field(self) -> GridAttack:
        if self.budgets is not None:
            if self.budget is not None:
                raise ValueError("give budget or budgets, not both (budgets queries once at its largest)")
            if not self.budgets or len(set(self.budgets)) != len(self.budgets):
                raise ValueError(f"budgets must list distinct budgets, got {self.budgets}")
        return self

    @property
    def registry_name(self) -> str:
        return self.attack or self.name

    def queryset_for(self, dataset: str) -> str | None:
        if self.queryset is None or isinstance(self.queryset, str):
            return self.queryset
        base = dataset.partition(":")[0]
        if dataset in self.queryset:
            return self.queryset[dataset]
        if base in self.queryset:
            return self.queryset[base]
        raise ValueError(f"attack {self.name!r}: queryset names no data set for victims of {dataset!r} ({sorted(self.queryset)})")


class Resources(_Strict):
    """Ray resources of each cell."""

    num_cpus: float = Field(default=1.0, gt=0)
    num_gpus: float = Field(default=1.0, ge=0)


class GridConfig(_Strict):
    """A grid: every victim x attack x defense setting x seed (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    results: str | None = None
    budget: PositiveInt
    seeds: list[NonNegativeInt] = Field(default_factory=lambda: [0])
    defenses: list[str] = Field(default_factory=lambda: ["none"])
    victims: list[GridVictim] = Field(alias="victim", min_length=1)
    attacks: list[GridAttack] = Field(alias="attack", min_length=1)
    max_retries: NonNegativeInt = 2
    threads: PositiveInt = 1
    resources: Resources = Field(default_factory=Resources)
    compare: dict[str, Any] | None = None
    victim_cache: str | None = None

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"lists a seed twice: {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> GridConfig:
        names = [victim.name for victim in self.victims]
        if len(set(names)) != len(names):
            raise ValueError(f"victim names must be unique, got {names}")
        for victim in self.victims:
            if victim.int8 is not None and victim.int8.of not in names[: names.index(victim.name)]:
                raise ValueError(f"victim {victim.name!r}: int8.of must name an earlier float victim, got {victim.int8.of!r}")
        list(self.cells())
        return self

    def victim_specs(self) -> dict[str, VictimSpec]:
        """Each named victim as a :class:`VictimSpec`."""
        out: dict[str, VictimSpec] = {}
        for victim in self.victims:
            if victim.int8 is not None:
                base = out[victim.int8.of]
                out[victim.name] = base.model_copy(
                    update={"variant": Int8Variant(calibration=victim.int8.calibration, seed=victim.int8.seed)}
                )
            else:
                out[victim.name] = VictimSpec(dataset=victim.dataset, arch=victim.arch, train=victim.train, seed=victim.seed)
        return out

    def cells(self) -> Iterator[tuple[str, RunSpec]]:
        """``(victim name, spec)`` of every cell, in run order (victim, attack, seed, defense).

        Raises:
            ValueError: a spec that does not validate (unknown defense, attack or parameter).
        """
        for victim_name, _, spec, _ in self._cells():
            yield victim_name, spec

    def named_cells(self) -> Iterator[tuple[str, str, RunSpec]]:
        """``(victim name, attack name, spec)`` of every cell, in run order."""
        for victim_name, attack_name, spec, _ in self._cells():
            yield victim_name, attack_name, spec

    def curve_budgets(self) -> dict[str, tuple[int, ...]]:
        """``{cell key: budgets}`` of the cells of attacks with ``budgets`` (their spec's budget is the largest)."""
        return {spec.key(): budgets for _, _, spec, budgets in self._cells() if budgets is not None}

    def _cells(self) -> Iterator[tuple[str, str, RunSpec, tuple[int, ...] | None]]:
        victims = self.victim_specs()
        for victim_name, victim in victims.items():
            for attack in self.attacks:
                attack_spec = AttackSpec(name=attack.registry_name, params=dict(attack.params))
                budgets = None if attack.budgets is None else tuple(sorted(attack.budgets))
                budget = budgets[-1] if budgets is not None else attack.budget or self.budget
                for seed in attack.seeds or self.seeds:
                    for defense in attack.defenses or self.defenses:
                        yield victim_name, attack.name, _cell(victim, attack, attack_spec, defense, seed, budget), budgets

    def specs(self) -> list[RunSpec]:
        """Every cell's spec."""
        return [spec for _, spec in self.cells()]


def _cell(victim: VictimSpec, attack: GridAttack, attack_spec: AttackSpec, defense: str, seed: int, budget: int) -> RunSpec:
    name, params = parse_defense_spec(defense)
    if name == DP_SGD:
        if isinstance(victim.variant, Int8Variant):
            raise ValueError(f"{defense!r}: a DP-SGD twin of an int8 victim is not supported")
        victim = victim.model_copy(update={"variant": DPVariant(**params)})
        defense_spec = DefenseSpec(name="none")
    else:
        defense_spec = DefenseSpec.model_validate(defense)
    return RunSpec(
        victim=victim, defense=defense_spec, attack=attack_spec, queryset=attack.queryset_for(victim.dataset), budget=budget, seed=seed
    )


def load_grid(path: Path | str) -> GridConfig:
    """Read and validate a grid config.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not TOML, or a field out of place (one line naming the field and the problem).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid config {str(path)!r} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"grid config {path}: not valid TOML ({err})") from None
    try:
        return GridConfig.model_validate(raw)
    except ValidationError as err:
        raise ValueError(f"grid config {path}: {describe_errors(err)}") from None


def describe_errors(err: ValidationError) -> str:
    """A pydantic error as one line: ``field.path: message; ...``."""
    parts = []
    for error in err.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


@dataclass
class GridOutcome:
    """What :func:`run_grid` did: new results, failures, and the number of cells skipped as stored."""

    results: list[RunResult] = field(default_factory=list)
    failures: list[RunResult] = field(default_factory=list)
    skipped: int = 0


def _absolute(env: Env) -> Env:
    update: dict[str, Any] = {"victim_cache": str(Path(env.victim_cache).resolve())}
    if env.data_root is not None:
        update["data_root"] = str(Path(env.data_root).resolve())
    return env.model_copy(update=update)


def _prepare_task(spec: VictimSpec, env: Env) -> Any:
    """The trained victim as a bundle (trained once, on whichever node runs the task)."""
    from stealguard.harness.run import VictimBundle, prepare_victim

    return VictimBundle.of(prepare_victim(spec, env))


def _artifacts_task(bundle: Any, spec: VictimSpec, env: Env) -> Any:
    """The victim's bundle with its misinformation model: trained once, only for the cells whose defense needs it."""
    from stealguard.harness.run import VictimBundle, prepare_victim

    bundle.materialize(env)
    return VictimBundle.of(prepare_victim(spec, env, misinformation=True))


def _cell_task(spec: RunSpec, env: Env, bundle: Any, undefended: Any = None, budgets: tuple[int, ...] | None = None) -> RunResult | list[RunResult]:
    """One cell's result, or with ``budgets`` one result per budget from one query run."""
    from stealguard.harness.run import run

    twin = None if undefended is None else undefended.materialize(env)
    if budgets is not None:
        from stealguard.harness.budgets import run_budgets

        return run_budgets(spec, env, budgets=budgets, victim=bundle.materialize(env), undefended=twin)
    return run(spec, env, victim=bundle.materialize(env), undefended=twin)


def ray_init_options(address: str | None) -> dict[str, Any]:
    """The ``ray.init`` keywords a grid driver uses: no dashboard, workers' output kept off the
    driver, warnings only; an embedded Ray (``address`` None) answers on the loopback only."""
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "warning"}
    if address is None:
        options["_node_ip_address"] = LOOPBACK
    return options


def run_grid(
    config: GridConfig,
    *,
    out_dir: Path | str,
    env: Env | None = None,
    address: str | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    select: Callable[[RunSpec], bool] | None = None,
    on_result: Callable[[RunResult], None] | None = None,
    ray_init: Mapping[str, Any] | None = None,
) -> GridOutcome:
    """Run every cell of ``config`` not yet in ``<out_dir>/results.csv`` on Ray.

    Args:
        out_dir: where ``results.csv`` and ``failed.csv`` go.
        env: data root, device, progress and the victim cache (paths made absolute for the
            workers; each worker machine needs the data at the same path). ``env.threads`` is
            replaced by the config's ``threads``.
        address: a running Ray cluster (``auto``, ``HOST:PORT``); None: an embedded local Ray.
        resume: skip the cells already stored (in ``results.csv``, or in ``failed.csv`` unless
            ``retry_failed``); without it a non-empty ``results.csv`` is refused.
        retry_failed: with ``resume``, run the cells stored as failed again.
        select: run only the cells it accepts.
        on_result: called with each finished result (successes and failures) on the driver.
        ray_init: extra keyword arguments of ``ray.init`` (e.g. ``num_cpus`` of an embedded Ray).

    Raises:
        FileExistsError: ``results.csv`` holds rows and ``resume`` is False.
    """
    import ray

    from stealguard.harness.run import failed_result, needs_misinformation
    from stealguard.harness.run_table import RunTable

    env = _absolute((env or Env()).model_copy(update={"threads": config.threads}))
    out_dir = Path(out_dir)
    table, failed = RunTable(out_dir / RESULTS_FILE), RunTable(out_dir / FAILED_FILE)
    if table.exists() and not resume:
        raise FileExistsError(f"{table.path} already holds results; pass --resume to run only the missing cells")
    stored = table.keys() | (set() if retry_failed else failed.keys())
    specs = [spec for spec in config.specs() if select is None or select(spec)]
    todo = [spec for spec in specs if spec.key() not in stored]
    outcome = GridOutcome(skipped=len(specs) - len(todo))
    if not todo:
        return outcome

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, **{**ray_init_options(address), **dict(ray_init or {})})
    gpus = config.resources.num_gpus if env.device == "cuda" else 0
    prepare = ray.remote(_prepare_task).options(num_cpus=config.resources.num_cpus, num_gpus=gpus, max_retries=config.max_retries, retry_exceptions=True)
    artifacts = ray.remote(_artifacts_task).options(num_cpus=config.resources.num_cpus, num_gpus=gpus, max_retries=config.max_retries, retry_exceptions=True)
    cell = ray.remote(_cell_task).options(num_cpus=config.resources.num_cpus, num_gpus=gpus, max_retries=config.max_retries, retry_exceptions=True)
    try:
        bundles: dict[str, Any] = {}
        for victim in [spec.victim for spec in todo] + [spec.victim.undefended() for spec in todo]:
            if victim.key() not in bundles:
                bundles[victim.key()] = prepare.remote(victim, env)
        with_artifacts: dict[str, Any] = {}
        for spec in todo:
            if needs_misinformation(spec.defense.name) and spec.victim.key() not in with_artifacts:
                with_artifacts[spec.victim.key()] = artifacts.remote(bundles[spec.victim.key()], spec.victim, env)

        def victim_bundle(spec: RunSpec) -> Any:
            needs = needs_misinformation(spec.defense.name)
            return (with_artifacts if needs else bundles)[spec.victim.key()]

        curves = config.curve_budgets()
        pending = {
            cell.remote(
                spec, env, victim_bundle(spec),
                None if spec.victim.undefended() == spec.victim else bundles[spec.victim.undefended().key()],
                curves.get(spec.key()),
            ): spec
            for spec in todo
        }
        bar = tqdm(total=len(pending), desc=f"{config.name} cells", unit="cell", disable=not (env.progress and sys.stderr.isatty()))
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                spec = pending.pop(ref)
                try:
                    returned = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - a cell that still fails after its retries is stored as failed
                    result = failed_result(spec, _cause(err))
                    failed.append(result)
                    outcome.failures.append(result)
                    rows = [result]
                else:
                    rows = returned if isinstance(returned, list) else [returned]
                    for result in rows:
                        table.append(result)
                        outcome.results.append(result)
                if on_result is not None:
                    for result in rows:
                        on_result(result)
                bar.update(1)
        bar.close()
    finally:
        if started_here:
            ray.shutdown()
    return outcome


def _cause(err: BaseException) -> BaseException:
    """The exception a Ray task raised (``RayTaskError.cause``), or the error itself."""
    return getattr(err, "cause", None) or err


@dataclass(frozen=True)
class GridProgress:
    """How much of a grid a results folder holds, per attack name of the config (no cell is run)."""

    stored: dict[str, int]
    failed: dict[str, int]
    planned: dict[str, int]

    def lines(self) -> list[str]:
        """One line per attack name, then a total: ``name: stored of planned (failed)``."""
        def line(name: str, stored: int, planned: int, failed: int) -> str:
            return f"{name}: {stored} of {planned} cells stored" + (f", {failed} failed" if failed else "")

        rows = [line(name, self.stored.get(name, 0), planned, self.failed.get(name, 0)) for name, planned in self.planned.items()]
        total = line("total", sum(self.stored.values()), sum(self.planned.values()), sum(self.failed.values()))
        return [*rows, total]


def grid_progress(config: GridConfig, out_dir: Path | str) -> GridProgress:
    """Cells of ``config`` stored in ``out_dir``'s ``results.csv`` and ``failed.csv``, per attack name.

    A cell counts as stored once, however often it was run; a failed cell that later succeeded
    counts as stored only.
    """
    from stealguard.harness.run_table import RunTable

    out_dir = Path(out_dir)
    results, failures = RunTable(out_dir / RESULTS_FILE), RunTable(out_dir / FAILED_FILE)
    stored_keys = results.keys()
    failed_keys = failures.keys() - stored_keys
    stored: dict[str, int] = {}
    failed: dict[str, int] = {}
    planned: dict[str, int] = {}
    seen: set[str] = set()
    for victim_name, attack, spec in config.named_cells():
        key = spec.key()
        if key in seen:
            continue
        seen.add(key)
        planned[attack] = planned.get(attack, 0) + 1
        if key in stored_keys:
            stored[attack] = stored.get(attack, 0) + 1
        elif key in failed_keys:
            failed[attack] = failed.get(attack, 0) + 1
    return GridProgress(stored=stored, failed=failed, planned=planned)


SUPERSEDED_FILE = "superseded.csv"


def supersede_cells(config: GridConfig, out_dir: Path | str, attacks: list[str]) -> int:
    """Move the stored rows of the cells of ``config``'s attacks named ``attacks`` from ``out_dir``'s
    ``results.csv`` and ``failed.csv`` to its ``superseded.csv``; return how many rows moved. No
    cell is run: ``run_grid(..., resume=True)`` then runs those cells again (after the attack was
    improved). The rows of a budget-curve cell (one per budget, each under its budget's key) move
    together.

    The rows are appended to ``superseded.csv`` before they are removed from the other tables, so
    an interruption can leave a row in both, never in neither. Stop a grid writing to ``out_dir`` first.

    Raises:
        ValueError: a name that is none of the config's attack names.
    """
    from stealguard.harness.run_table import RunTable

    names = [attack.name for attack in config.attacks]
    unknown = [name for name in attacks if name not in names]
    if unknown:
        raise ValueError(f"--supersede {', '.join(unknown)}: not an attack of {config.name!r}; its attacks: {', '.join(dict.fromkeys(names))}")
    out_dir = Path(out_dir)
    curves = config.curve_budgets()
    keys = set()
    for _, attack, spec in config.named_cells():
        if attack in attacks:
            keys |= {spec.model_copy(update={"budget": budget}).key() for budget in curves.get(spec.key(), (spec.budget,))}
    superseded, moved = RunTable(out_dir / SUPERSEDED_FILE), 0
    for table in (RunTable(out_dir / RESULTS_FILE), RunTable(out_dir / FAILED_FILE)):
        moving = [result for result in table.results() if result.key in keys]
        for result in moving:
            superseded.append(result)
        moved += len(table.take({result.key for result in moving}))
    return moved


def grid_outcome_line(outcome: GridOutcome, out_dir: Path) -> str:
    """One summary line for the CLI."""
    return (
        f"{len(outcome.results)} cell(s) stored in {out_dir / RESULTS_FILE}, {len(outcome.failures)} failed "
        f"({out_dir / FAILED_FILE}), {outcome.skipped} already stored"
    )
