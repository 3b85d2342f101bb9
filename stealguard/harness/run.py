"""``run(spec, env) -> RunResult``: one experiment from its spec, and the victim cache it uses.

A :class:`~stealguard.runspec.VictimSpec` is trained once into ``<env.victim_cache>/<label>``
(float and DP-SGD victims by :func:`~stealguard.harness.train.train_victim`, int8 ones quantized
from their float base) under a file lock, so runs in several processes on one machine never
train the same victim twice or read a half-written one. The artifacts a defense takes from
the victim (adaptive misinformation's model, ``<victim>/misinformation/``) are built into the
same folder the first time a run needs them. Victims travel between machines as
:class:`VictimBundle` values (the folder's files), which the grid runner hands from the task
that trains a victim to the cells that attack it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import math
import os
import shutil
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stealguard import defenses, models
from stealguard.device import device_label
from stealguard.harness.experiment import default_queryset, run_attack
from stealguard.harness.train import quantize_saved_victim, train_victim
from stealguard.models.io import CARD_FILE
from stealguard.provenance import code_version
from stealguard.runspec import DPVariant, Env, Int8Variant, RunResult, RunSpec, VictimSpec

LOCK_FILE = ".lock"
BUNDLE_LIMIT = 512 * 1024 * 1024
"""Largest victim folder (bytes, all files) a :class:`VictimBundle` carries."""


@contextlib.contextmanager
def threads(count: int | None) -> Iterator[None]:
    """torch intra-op threads set to ``count`` inside the block (unchanged when None)."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def victim_dir(spec: VictimSpec, env: Env) -> Path:
    """Where ``spec``'s victim is cached."""
    return Path(env.victim_cache) / spec.label()


def needs_misinformation(defense: str) -> bool:
    """Whether the defense takes the victim's misinformation model (declared by its parameters)."""
    return "misinformation" in defenses.parameters(defense)


def prepare_victim(spec: VictimSpec, env: Env, *, misinformation: bool = False) -> Path:
    """The cached victim's folder, trained (and its misinformation model, with ``misinformation``) if absent.

    Raises:
        stealguard.data.DataNotFoundError: the training data is missing. ValueError: bad settings.
    """
    target = victim_dir(spec, env)
    with _locked(Path(env.victim_cache) / ".locks" / spec.label()):
        if not (target / CARD_FILE).is_file():
            _build(spec, env, target)
        if misinformation:
            _build_misinformation(spec, env, target)
    return target


def _build(spec: VictimSpec, env: Env, target: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        if isinstance(spec.variant, Int8Variant):
            base = prepare_victim(spec.float_base(), env)
            quantize_saved_victim(
                base, out=staging, data_root=env.data_root, calibration=spec.variant.calibration, seed=spec.variant.seed,
                download=env.download,
            )
        else:
            dp = None
            if isinstance(spec.variant, DPVariant):
                dp = {"noise_multiplier": spec.variant.noise_multiplier, "max_grad_norm": spec.variant.max_grad_norm}
            with threads(env.threads):
                train_victim(
                    dataset=spec.dataset, data_root=env.data_root, arch=spec.arch, seed=spec.seed, device=env.device,
                    out=staging, progress=env.progress, download=env.download, dp=dp, **spec.train,
                )
        (staging / "victim_spec.json").write_text(spec.model_dump_json(indent=2) + "\n")
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build_misinformation(spec: VictimSpec, env: Env, target: Path) -> None:
    from stealguard.defenses.misinformation import misinformation_dir, misinformation_for_victim

    if (misinformation_dir(target) / CARD_FILE).is_file():
        return
    if isinstance(spec.variant, Int8Variant):
        base = prepare_victim(spec.float_base(), env, misinformation=True)
        quantize_saved_victim(
            misinformation_dir(base), out=misinformation_dir(target), data_root=env.data_root,
            calibration=spec.variant.calibration, seed=spec.variant.seed, download=env.download,
        )
        return
    with threads(env.threads):
        misinformation_for_victim(
            models.load_card(target), victim_dir=target, data_root=env.data_root, download=env.download, device=env.device,
            progress=env.progress,
        )


@dataclass(frozen=True)
class VictimBundle:
    """A victim folder as a value: ``label`` and its files ``{relative path: bytes}``."""

    label: str
    files: dict[str, bytes]

    @classmethod
    def of(cls, folder: Path | str) -> VictimBundle:
        """Read ``folder`` (lock files and staging folders skipped).

        Raises:
            ValueError: the folder holds more than :data:`BUNDLE_LIMIT` bytes.
        """
        folder = Path(folder)
        files: dict[str, bytes] = {}
        total = 0
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if not path.is_file() or path.name == LOCK_FILE or any(part.startswith(".") for part in relative.parts):
                continue
            total += path.stat().st_size
            if total > BUNDLE_LIMIT:
                raise ValueError(f"victim folder {str(folder)!r} holds more than {BUNDLE_LIMIT} bytes")
            files[relative.as_posix()] = path.read_bytes()
        return cls(label=folder.name, files=files)

    def materialize(self, env: Env) -> Path:
        """The victim's folder under ``env.victim_cache``, written from the bundle if it is not there.

        Files are written to a staging folder and renamed into place, so readers never see a
        half-written victim; a folder already there with the same files is kept.
        """
        target = Path(env.victim_cache) / self.label
        with _locked(Path(env.victim_cache) / ".locks" / self.label):
            if all((target / name).is_file() and (target / name).read_bytes() == data for name, data in self.files.items()):
                return target
            unsafe = [name for name in self.files if ".." in Path(name).parts or Path(name).is_absolute()]
            if unsafe or "/" in self.label or self.label in ("", ".", ".."):
                raise ValueError(f"victim bundle {self.label!r} names a path outside its folder: {(unsafe or [self.label])[0]!r}")
            staging = Path(tempfile.mkdtemp(prefix=f".{self.label}-", dir=Path(env.victim_cache)))
            for name, data in self.files.items():
                path = staging / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{self.label}-old-", dir=Path(env.victim_cache)))
                os.replace(target, old / "victim")
                shutil.rmtree(old, ignore_errors=True)
            os.replace(staging, target)
        return target


def resolve_victim(spec: RunSpec, env: Env) -> Path:
    """The folder of ``spec``'s victim: its directory, or the cached (trained if need be) victim."""
    if isinstance(spec.victim, str):
        path = Path(spec.victim)
        if not path.is_dir():
            raise FileNotFoundError(f"victim directory {spec.victim!r} does not exist; train one with `stealguard train ... --out DIR`")
        return path
    return prepare_victim(spec.victim, env, misinformation=needs_misinformation(spec.defense.name))


def run(
    spec: RunSpec, env: Env | None = None, *, victim: Path | str | None = None, undefended: Path | str | None = None,
    recorder: list[Any] | None = None,
) -> RunResult:
    """Run one experiment and return its result.

    A DP-SGD victim (``VictimSpec`` with a :class:`~stealguard.runspec.DPVariant`) is measured as
    a defense against its float twin (:meth:`VictimSpec.undefended`): ``clean_accuracy`` and
    ``victim_accuracy`` are the twin's test accuracy, ``l1_mean``/``l1_max`` the L1 distance
    between the DP victim's answers and the twin's on the test split, ``defender_accuracy`` the
    DP victim's own; so DP-SGD's cost is comparable with a posterior defense's.

    Args:
        spec: what to run. env: where (default ``Env()``: default data root, auto device,
            one torch thread, victims cached under ``runs/victims``).
        victim: the victim's folder when the caller has prepared it already (the grid runner);
            default: :func:`resolve_victim`.
        undefended: the float twin's folder of a DP-SGD victim when already prepared; default:
            trained (once) into the cache.
        recorder: receives the recording black box and the attack object, as
            :func:`~stealguard.harness.experiment.run_attack`'s (budget curves,
            :func:`stealguard.harness.budgets.run_budgets`).

    Raises:
        FileNotFoundError: a victim directory or data files are missing.
        ValueError, TypeError: parameters out of range (beyond what the spec's validation sees).
        stealguard.blackbox.BudgetExceededError: the attack overran its budget.
    """
    env = env if env is not None else Env()
    folder = Path(victim) if victim is not None else resolve_victim(spec, env)
    card = models.load_card(folder)
    queryset = spec.queryset if spec.queryset is not None else default_queryset(card.dataset)
    with threads(env.threads):
        outcome = run_attack(
            victim=folder, defense=str(spec.defense), attack=spec.attack.name, attack_params=dict(spec.attack.params),
            queryset=queryset, data_root=env.data_root, budget=spec.budget, seed=spec.seed, defense_seed=spec.defense_seed,
            device=env.device, progress=env.progress, download=env.download, recorder=recorder,
        )
    identity = RunResult.identity(spec, victim_card=card)
    if isinstance(spec.victim, VictimSpec) and isinstance(spec.victim.variant, DPVariant):
        twin = Path(undefended) if undefended is not None else prepare_victim(spec.victim.undefended(), env)
        outcome.update(_against_twin(folder, twin, env))
        identity["victim_accuracy"] = outcome["clean_accuracy"]
    return RunResult(
        **identity,
        **{name: outcome[name] for name in RunResult.METRICS if name != "angular_deviation_deg"},
        angular_deviation_deg=outcome["angular_deviation_mean"],
        latency_ratio=outcome["latency_ratio"],
        latency_defended_s=outcome["latency_defended_s"],
        latency_undefended_s=outcome["latency_undefended_s"],
        test_size=outcome["test_size"],
        attack_report=json.dumps(outcome["attack_report"], sort_keys=True, default=str),
        elapsed_s=outcome["elapsed_s"],
        device=device_label(outcome["device"]),
        code_version=code_version(),
        finished_at=_now(),
    )


def _against_twin(victim: Path, twin: Path, env: Env) -> dict[str, float]:
    """``clean_accuracy``, ``l1_mean``, ``l1_max`` of a DP-SGD victim measured against its float twin on the test split."""
    from stealguard import data as sgdata
    from stealguard import metrics

    model, card = models.load_model(victim, device="cpu")
    twin_model, _ = models.load_model(twin, device="cpu")
    images, labels = sgdata.load_dataset(card.dataset, root=env.data_root, split="test", download=env.download).tensors()
    with threads(env.threads):
        answers = models.predict_proba(model, images, device=env.device)
        clean = models.predict_proba(twin_model, images, device=env.device)
    l1 = metrics.l1_distance(answers.double(), clean.double())
    return {
        "clean_accuracy": metrics.accuracy(clean, labels), "l1_mean": float(l1.mean()), "l1_max": float(l1.max()),
        "query_l1_mean": math.nan, "angular_deviation_mean": math.nan,
    }


def failed_result(spec: RunSpec, error: BaseException | str, *, victim_card: Any | None = None) -> RunResult:
    """A ``failed`` result of ``spec`` whose ``error`` is the exception's last line (type and message)."""
    if isinstance(error, BaseException):
        message = "".join(traceback.format_exception_only(type(error), error)).strip().splitlines()[-1]
    else:
        message = str(error)
    identity = _identity_without_card(spec) if victim_card is None else RunResult.identity(spec, victim_card=victim_card)
    return RunResult(**identity, status="failed", error=message[:2000], code_version=code_version(), finished_at=_now())


def _identity_without_card(spec: RunSpec) -> dict[str, Any]:
    victim = spec.victim
    card = _CardStandIn(
        dataset=victim.dataset if isinstance(victim, VictimSpec) else "",
        arch=victim.arch if isinstance(victim, VictimSpec) else "",
    )
    return RunResult.identity(spec, victim_card=card)


@dataclass(frozen=True)
class _CardStandIn:
    """What :meth:`RunResult.identity` reads of a card, for a run whose victim never loaded."""

    dataset: str
    arch: str
    test_accuracy: float | None = None
    quantization: Any = None
    dp: Any = None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
