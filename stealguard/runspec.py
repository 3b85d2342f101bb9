"""A run is a value: frozen specs of a victim, a defense, an attack and one run, and the run's result.

A :class:`RunSpec` says everything that defines one experiment — which victim (trained from a
:class:`VictimSpec`, or a saved victim's directory), behind which defense (:class:`DefenseSpec`),
attacked by which attack (:class:`AttackSpec`) with which query set, budget and seeds. It prints,
hashes (:meth:`RunSpec.key`) and round-trips through JSON, so a result row can be traced back to
the spec that made it and the spec rebuilt from the row. :class:`Env` says where a run happens
(data root, device, threads, the victim cache) and never changes a run's numbers. A run's
outcome is a :class:`RunResult`, whose fields are the one definition of the result columns:
:func:`stealguard.run` returns it and every results file is written and read through it.

Seeds: ``seed`` drives the attacker (query order, replica initialisation, training), and
``defense_seed`` the defender (MAD's surrogate, a noise defense's generator). A spec without a
``defense_seed`` gets :func:`stealguard.seeds.derive_seed` ``(seed, "defense")`` when it is built,
so the stored spec always names both.

Example:
    >>> spec = RunSpec(victim=VictimSpec(dataset="digits", arch="mlp"), defense="mad:epsilon=0.5",
    ...                attack="knockoff:epochs=2", budget=300)
    >>> str(spec.defense), str(spec.attack), spec.defense_seed != spec.seed
    ('mad:epsilon=0.5', 'knockoff:epochs=2', True)
    >>> RunSpec.model_validate_json(spec.model_dump_json()) == spec
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt, field_validator, model_validator

from stealguard.seeds import derive_seed

Scalar = bool | int | float | str | None
"""A parameter value that a spec string can carry."""

TRAIN_KEYS = ("epochs", "lr", "optimizer", "batch_size", "augment", "label_smoothing")
"""Training settings a :class:`VictimSpec` may override (the arguments of ``train_victim``)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _parse_spec_string(text: str, what: str) -> dict[str, Any]:
    """``"name:k=v,..."`` -> ``{"name": ..., "params": {...}}`` (values typed as the CLI types them)."""
    from stealguard.defenses.spec import parse_defense_spec

    try:
        name, params = parse_defense_spec(text)
    except ValueError as err:
        raise ValueError(str(err).replace("defense", what)) from None
    return {"name": name, "params": params}


def _format_spec(name: str, params: dict[str, Any]) -> str:
    if not params:
        return name
    text = ",".join(f"{key}={'none' if value is None else str(value).lower() if isinstance(value, bool) else value}" for key, value in params.items())
    return f"{name}:{text}"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _digest(value: Any, length: int = 16) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()[:length]


class FloatVariant(_Frozen):
    """The victim as trained, in float32."""

    kind: Literal["float"] = "float"


class Int8Variant(_Frozen):
    """The victim int8-quantized after training (post-training static, calibrated on
    ``calibration`` of its training images drawn with ``seed``); runs on the CPU."""

    kind: Literal["int8"] = "int8"
    calibration: PositiveInt = 512
    seed: NonNegativeInt = 0


class DPVariant(_Frozen):
    """The victim trained with DP-SGD (Opacus): per-sample gradients clipped to ``max_grad_norm``
    and noised with ``noise_multiplier`` times that norm (Abadi et al., 2016)."""

    kind: Literal["dp"] = "dp"
    noise_multiplier: Annotated[float, Field(ge=0.0)]
    max_grad_norm: PositiveFloat = 1.0


Variant = Annotated[FloatVariant | Int8Variant | DPVariant, Field(discriminator="kind")]


class VictimSpec(_Frozen):
    """A victim to train: data set, architecture, training overrides, seed and variant.

    Args:
        dataset: a data-set spec, ``mnist`` or ``cifar10:half=0[,seed=S]`` (stored canonical).
        arch: an architecture from ``stealguard.models.names()``.
        train: overrides of the architecture's training defaults, keys from :data:`TRAIN_KEYS`.
        seed: training seed, >= 0.
        variant: :class:`FloatVariant` (default), :class:`Int8Variant` or :class:`DPVariant`.
    """

    dataset: str
    arch: str
    train: dict[str, Scalar] = Field(default_factory=dict)
    seed: NonNegativeInt = 0
    variant: Variant = Field(default_factory=FloatVariant)

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        from stealguard.data import parse_dataset_spec

        return str(parse_dataset_spec(value))

    @field_validator("arch")
    @classmethod
    def _arch(cls, value: str) -> str:
        from stealguard import models

        if value not in models.names():
            raise ValueError(f"unknown architecture {value!r}; available: {', '.join(models.names())}")
        return value

    @field_validator("train")
    @classmethod
    def _train(cls, value: dict[str, Scalar]) -> dict[str, Scalar]:
        unknown = sorted(set(value) - set(TRAIN_KEYS))
        if unknown:
            raise ValueError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(TRAIN_KEYS)}")
        return value

    def float_base(self) -> VictimSpec:
        """The float victim an int8 variant is quantized from (itself for float and DP victims)."""
        return self.model_copy(update={"variant": FloatVariant()}) if isinstance(self.variant, Int8Variant) else self

    def undefended(self) -> VictimSpec:
        """The victim without its training-time defense: the float twin of a DP-SGD victim, else itself.

        A DP-SGD victim is a defense paid for in training; its distortion and accuracy loss are
        measured against this twin, as a posterior defense's are against the victim's clean answers.
        """
        return self.model_copy(update={"variant": FloatVariant()}) if isinstance(self.variant, DPVariant) else self

    def key(self) -> str:
        """A short stable digest of the spec (the victim cache's folder name ends with it)."""
        return _digest(self.model_dump(mode="json"))

    def label(self) -> str:
        """``<dataset>-<arch>[-int8|-dp<noise>]-<key>``, a readable, unique folder name."""
        dataset = self.dataset.replace(":", "_").replace(",", "_").replace("=", "")
        variant = {"float": "", "int8": "-int8"}.get(self.variant.kind, "")
        if isinstance(self.variant, DPVariant):
            variant = f"-dp{self.variant.noise_multiplier:g}"
        return f"{dataset}-{self.arch}{variant}-{self.key()[:8]}"


class _NamedSpec(_Frozen):
    """``name`` plus keyword ``params``; built from a dict or from the CLI's ``name:key=value,...``."""

    what: ClassVar[str] = "spec"
    name: str
    params: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return _parse_spec_string(value, cls.what) if isinstance(value, str) else value

    def __str__(self) -> str:
        return _format_spec(self.name, self.params)

    @model_validator(mode="after")
    def _known(self) -> _NamedSpec:
        import importlib

        registry = importlib.import_module(f"stealguard.{self.what}s")
        if self.name not in registry.names():
            raise ValueError(f"unknown {self.what} {self.name!r}; available: {', '.join(registry.names())}")
        unknown = sorted(set(self.params) - set(registry.parameters(self.name)))
        if unknown:
            raise ValueError(f"{self.what} {self.name!r} takes no parameter(s) {', '.join(unknown)}")
        return self


class DefenseSpec(_NamedSpec):
    """A defense by registry name and parameters, e.g. ``DefenseSpec.model_validate("mad:epsilon=0.5")``.

    Raises (on validation):
        pydantic.ValidationError: an unknown defense or a parameter it does not take.
    """

    what: ClassVar[str] = "defense"


class AttackSpec(_NamedSpec):
    """An attack by registry name and parameters, e.g. ``AttackSpec.model_validate("knockoff:epochs=10")``.

    Raises (on validation):
        pydantic.ValidationError: an unknown attack or a parameter it does not take.
    """

    what: ClassVar[str] = "attack"


class RunSpec(_Frozen):
    """One experiment: ``victim`` behind ``defense``, attacked by ``attack`` with ``budget`` queries.

    Args:
        victim: a :class:`VictimSpec` (trained once and cached, see :class:`Env`) or the
            directory of a saved victim (``stealguard train --out DIR``).
        defense: a :class:`DefenseSpec` or its string (default ``none``).
        attack: an :class:`AttackSpec` or its string.
        queryset: the attacker's data-set spec; None: the victim's default (the other half of a
            half-trained victim's split, else its data set); ignored by data-free attacks.
        budget: queries, >= 1.
        seed: the attacker's seed, >= 0.
        defense_seed: the defender's seed, >= 0; absent: ``derive_seed(seed, "defense")``.
    """

    victim: VictimSpec | str
    defense: DefenseSpec = Field(default_factory=lambda: DefenseSpec(name="none"))
    attack: AttackSpec
    queryset: str | None = None
    budget: PositiveInt
    seed: NonNegativeInt = 0
    defense_seed: NonNegativeInt

    @model_validator(mode="before")
    @classmethod
    def _derive_defense_seed(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("defense_seed") is None:
            seed = value.get("seed", 0)
            if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0:
                value = {**value, "defense_seed": derive_seed(seed, "defense")}
        return value

    @field_validator("queryset")
    @classmethod
    def _queryset(cls, value: str | None) -> str | None:
        from stealguard.data import parse_dataset_spec

        return None if value is None else str(parse_dataset_spec(value))

    def key(self) -> str:
        """A stable digest of the whole spec: the run's identity in results files."""
        return _digest(self.model_dump(mode="json"), length=24)

    def describe(self) -> str:
        """One line for logs and progress bars."""
        victim = self.victim.label() if isinstance(self.victim, VictimSpec) else self.victim
        return f"{victim} | {self.defense} | {self.attack} | budget {self.budget} | seed {self.seed}"


class Env(_Frozen):
    """Where a run happens; nothing here changes its numbers (latencies aside).

    Args:
        data_root: where the data sets are (None: the loaders' default).
        download: let the loaders download missing files.
        device: ``auto``, ``cpu`` or ``cuda``.
        progress: tqdm bars on stderr.
        threads: torch intra-op threads while the run lasts, >= 1 (default 1: several runs side
            by side, or a run beside a server, on a small machine); None leaves torch's setting.
        victim_cache: the folder where victims built from a :class:`VictimSpec` are trained once
            and kept (``<victim_cache>/<VictimSpec.label()>``).
    """

    data_root: str | None = None
    download: bool = False
    device: str = "auto"
    progress: bool = False
    threads: PositiveInt | None = 1
    victim_cache: str = "runs/victims"


@dataclasses.dataclass(frozen=True)
class RunResult:
    """The outcome of one run; its fields are the result columns of every results file.

    Accuracies and fidelity are fractions in [0, 1] on the victim's test split; ``l1_*`` are L1
    distances between defended and clean posteriors (in [0, 2]); ``angular_deviation_deg`` is
    the mean angle, in degrees [0, 180], between the attacker-model gradients under defended and
    clean posteriors on an independent surrogate; latencies are seconds per test-set call.
    ``status`` is ``ok`` or ``failed`` (then ``error`` says why and the metrics are NaN).
    ``device`` is where the run computed (:func:`stealguard.device.device_label`: ``cpu`` or
    ``cuda:N (<GPU name>)``; empty when not recorded), ``code_version`` the package version and
    git commit that ran it.
    """

    key: str
    spec: str
    victim: str
    victim_dataset: str
    victim_arch: str
    victim_variant: str
    victim_accuracy: float
    defense: str
    defense_label: str
    defense_params: str
    attack: str
    attack_label: str
    attack_params: str
    queryset: str | None
    budget: int
    seed: int
    defense_seed: int
    status: str = "ok"
    error: str = ""
    defender_accuracy: float = math.nan
    clean_accuracy: float = math.nan
    attacker_accuracy: float = math.nan
    fidelity: float = math.nan
    l1_mean: float = math.nan
    l1_max: float = math.nan
    query_l1_mean: float = math.nan
    angular_deviation_deg: float = math.nan
    latency_ratio: float = math.nan
    latency_defended_s: float = math.nan
    latency_undefended_s: float = math.nan
    queries_used: int = 0
    test_size: int = 0
    attack_report: str = "{}"
    elapsed_s: float = math.nan
    device: str = ""
    code_version: str = ""
    finished_at: str = ""

    METRICS: ClassVar[tuple[str, ...]] = (
        "defender_accuracy", "clean_accuracy", "attacker_accuracy", "fidelity", "l1_mean", "l1_max",
        "query_l1_mean", "angular_deviation_deg", "queries_used",
    )
    """The measured columns that the same spec reproduces exactly on the CPU (latencies and times aside)."""

    ADDED_COLUMNS: ClassVar[dict[str, str]] = {"device": ""}
    """Columns added after results tables were first written, with the value a row of an earlier table
    reads as: ``device`` ``""`` means not recorded."""

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """Every column, in file order."""
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def earlier_columns(cls) -> tuple[str, ...]:
        """The columns of a table written before :attr:`ADDED_COLUMNS` existed, in file order."""
        return tuple(name for name in cls.columns() if name not in cls.ADDED_COLUMNS)

    @classmethod
    def identity(cls, spec: RunSpec, *, victim_card: Any) -> dict[str, Any]:
        """The columns that describe ``spec`` (everything before ``status``)."""
        variant = spec.victim.variant.kind if isinstance(spec.victim, VictimSpec) else _card_variant(victim_card)
        return {
            "key": spec.key(),
            "spec": spec.model_dump_json(),
            "victim": spec.victim.label() if isinstance(spec.victim, VictimSpec) else str(spec.victim),
            "victim_dataset": victim_card.dataset,
            "victim_arch": victim_card.arch,
            "victim_variant": variant,
            "victim_accuracy": math.nan if victim_card.test_accuracy is None else float(victim_card.test_accuracy),
            "defense": spec.defense.name,
            "defense_label": str(spec.defense),
            "defense_params": _canonical(spec.defense.params),
            "attack": spec.attack.name,
            "attack_label": str(spec.attack),
            "attack_params": _canonical(spec.attack.params),
            "queryset": spec.queryset,
            "budget": spec.budget,
            "seed": spec.seed,
            "defense_seed": spec.defense_seed,
        }

    def to_row(self) -> dict[str, Any]:
        """The result as one flat row (str, int, float, None) in :meth:`columns` order."""
        return dataclasses.asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunResult:
        """Inverse of :meth:`to_row`; accepts the strings a CSV reader gives back.

        A row of an earlier table may lack the :attr:`ADDED_COLUMNS`; it reads as their defaults.

        Raises:
            ValueError: a missing column, or a value that does not convert to its column's type.
        """
        missing = [name for name in cls.earlier_columns() if name not in row]
        if missing:
            raise ValueError(f"result row lacks column(s) {', '.join(missing)}")
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = row.get(field.name, cls.ADDED_COLUMNS.get(field.name))
            kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
            values[field.name] = _convert(raw, kind, field.name)
        return cls(**values)

    def run_spec(self) -> RunSpec:
        """The spec that made this result."""
        return RunSpec.model_validate_json(self.spec)


def _card_variant(card: Any) -> str:
    if getattr(card, "quantization", None) is not None:
        return "int8"
    return "dp" if getattr(card, "dp", None) is not None else "float"


def _convert(raw: Any, kind: str, name: str) -> Any:
    empty = raw is None or (isinstance(raw, float) and math.isnan(raw)) or raw == ""
    try:
        if kind == "float":
            return math.nan if empty else float(raw)
        if kind == "int":
            return 0 if empty else int(float(raw))
        if kind == "str | None":
            return None if empty else str(raw)
        return "" if empty else str(raw)
    except (TypeError, ValueError) as err:
        raise ValueError(f"column {name}: {str(raw)[:40]!r} is not a {kind}") from err
