"""One experiment: a victim behind a defense, one attack at one budget, all metrics.

:func:`run_attack` returns a JSON-able dict with the defender's and the attacker's numbers
and every parameter of the run. The attacker's randomness (query order, replica
initialisation and training) comes from ``seed``, the defender's (MAD's surrogate, a noise
defense's generator) from ``defense_seed``, by default an independent stream derived from
``seed`` (:func:`stealguard.seeds.derive_seed`): the defender's randomness is never the
attacker's. The same seeds give the same numbers on the CPU (latencies aside).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stealguard import attacks, defenses
from stealguard import data as sgdata
from stealguard._checks import check_int
from stealguard._version import __version__
from stealguard.artifacts import Victim, build_defense, load_victim, make_surrogate
from stealguard.blackbox import BlackBox
from stealguard.defenses.base import Defense
from stealguard.device import DeviceLike, resolve_device
from stealguard.evaluate import evaluate_defense, evaluate_replica
from stealguard.provenance import code_version, portable_path
from stealguard.seeds import defense_seed_for

METRIC_SURROGATE_OFFSET = 1
"""The angular-deviation surrogate is seeded with ``seed + 1``: a different random network
from the one MAD's own surrogate (seeded with the run's ``defense_seed``) optimises against,
but the same for every defense of a run, so the metric compares defenses on equal terms."""


UNITS = {
    "defender_accuracy": "fraction", "clean_accuracy": "fraction", "attacker_accuracy": "fraction", "fidelity": "fraction",
    "l1_mean": "L1 between defended and clean posteriors", "l1_max": "L1 between defended and clean posteriors",
    "query_l1_mean": "L1 between defended and clean posteriors", "angular_deviation_mean": "degrees",
    "latency_defended_s": "seconds", "latency_undefended_s": "seconds", "latency_ratio": "ratio", "elapsed_s": "seconds",
}
"""The unit of each metric of :func:`run_attack`'s result (stored with it, under ``units``)."""


def _surrogate_label(defense: Defense, spec: str | Defense | None) -> str | None:
    """What the defense's surrogate is, for the result: the spec's ``surrogate=`` value, ``random`` by default, None without one."""
    if getattr(defense, "surrogate", None) is None:
        return None
    if isinstance(spec, str):
        given = defenses.parse_defense_spec(spec)[1].get("surrogate")
        return "random" if given is None else str(given)
    return type(defense.surrogate).__name__


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters that serialise as JSON (modules, generators and other objects dropped)."""
    simple = (str, int, float, bool, type(None))
    return {
        key: value
        for key, value in params.items()
        if isinstance(value, simple) or (isinstance(value, (list, tuple)) and all(isinstance(v, simple) for v in value))
    }


def _card_summary(card: Any) -> dict[str, Any]:
    return {
        "arch": card.arch,
        "dataset": card.dataset,
        "input_shape": list(card.input_shape),
        "num_classes": card.num_classes,
        "test_accuracy": card.test_accuracy,
        "seed": getattr(card, "seed", None),
        "dp": getattr(card, "dp", None),
        "quantization": getattr(card, "quantization", None),
    }


def queryset_spec(queryset: str, victim_dataset: str) -> str:
    """``queryset`` with the victim's split seed where it names a half of the victim's data set without a seed.

    A victim trained on ``imagefolder:half=0,seed=7`` and attacked with ``--queryset
    imagefolder:half=1`` gets the attacker's half of the same split (``seed=7``), the one
    disjoint from its training half; a seed written in ``queryset``, another data set, or a
    victim data set that is no spec (e.g. the folder name of an old ImageFolder card) leave
    ``queryset`` as it is.

    Raises:
        ValueError: ``queryset`` is a malformed spec.

    Example:
        >>> queryset_spec("cifar10:half=1", "cifar10:half=0,seed=7")
        'cifar10:half=1,seed=7'
    """
    query = sgdata.parse_dataset_spec(queryset) if ":" in queryset else None
    if query is None or query.half is None or query.seed is not None:
        return queryset
    try:
        victim = sgdata.parse_dataset_spec(victim_dataset)
    except ValueError:
        return queryset
    if victim.name != query.name or victim.half is None:
        return queryset
    return str(sgdata.DatasetSpec(query.name, query.half, victim.split_seed))


def default_queryset(victim_dataset: str) -> str:
    """The attacker's query set when none is named: the other half of a half-trained victim's
    split (same seed, disjoint from the victim's training images), else the victim's data set.

    Example:
        >>> default_queryset("cifar10:half=0,seed=3"), default_queryset("mnist")
        ('cifar10:half=1,seed=3', 'mnist')
    """
    try:
        victim = sgdata.parse_dataset_spec(victim_dataset)
    except ValueError:
        return victim_dataset
    if victim.half is None:
        return victim_dataset
    return str(sgdata.DatasetSpec(victim.name, 1 - victim.half, victim.split_seed))


def takes_queryset(attack: str) -> bool:
    """Whether ``attack`` uses a query set of images (the data-free attacks do not).

    Raises:
        ValueError: unknown attack name.
    """
    return "queryset" in attacks.parameters(attack)


def _queryset_name(attack: str, queryset: Any) -> str | None:
    if not takes_queryset(attack):
        return None
    return getattr(queryset, "name", "tensor")


def build_attack(
    attack: str,
    attack_params: dict[str, Any] | None,
    *,
    queryset: Any,
    replica_arch: str,
    seed: int,
    device: DeviceLike,
    progress: bool,
) -> attacks.Attack:
    """The attack ``attack`` with the harness's defaults where it takes them.

    ``queryset``, ``replica_arch``, ``seed``, ``device`` and ``progress`` go to the attack
    when its constructor has the parameter; ``attack_params`` override them.

    Raises:
        ValueError: unknown attack, a value out of range. TypeError: a parameter the attack does not take.
    """
    supplied = {"queryset": queryset, "replica_arch": replica_arch, "seed": seed, "device": device, "progress": progress}
    accepted = attacks.parameters(attack)
    params = {key: value for key, value in supplied.items() if key in accepted}
    params.update(attack_params or {})
    return attacks.create(attack, **params)


def run_attack(
    *,
    victim: Victim,
    defense: str | Defense | None = "none",
    attack: str = "knockoff",
    attack_params: dict[str, Any] | None = None,
    queryset: str | Any,
    data_root: Path | str | None = None,
    budget: int,
    seed: int = 0,
    defense_seed: int | None = None,
    device: DeviceLike = "auto",
    progress: bool = True,
    test_set: Any | None = None,
    download: bool = False,
    recorder: list[Any] | None = None,
) -> dict[str, Any]:
    """Attack ``victim`` behind ``defense`` with ``budget`` queries and measure both sides.

    Args:
        victim: a victim directory (``save_model``) or a ``(model, card)`` pair.
        defense: a spec ``"name:key=value,..."`` or a ``Defense``; ``mad``/``mad_argmax``
            without a surrogate get a random copy of the victim's arch seeded with ``defense_seed``.
        attack: a name from ``stealguard.attacks.names()``.
        attack_params: extra keyword parameters of the attack (e.g. ``epochs``); the
            harness supplies ``queryset``, ``replica_arch`` (the victim's), ``seed``,
            ``device`` and ``progress`` unless given here.
        queryset: the attacker's images: a data-set name or spec (loaded with
            ``load_queryset`` at the victim's input shape, train split; ``cifar10:half=1``
            is the half a ``cifar10:half=0`` victim did not train on, with the victim's split
            seed unless the spec gives one, see :func:`queryset_spec`) or an ``ImageDataset``.
        data_root: where data files live. budget: queries, >= 1.
        seed: the attacker's seed (query order, replica initialisation, training), >= 0.
        defense_seed: the defender's seed (MAD's surrogate, a noise defense's generator), >= 0;
            None (default): ``derive_seed(seed, "defense")``, a stream independent of ``seed``.
        device: ``auto``, ``cpu``, ``cuda``. progress: tqdm bars on stderr.
        test_set: the labelled evaluation set; default the (whole) test split of the victim's
            data set, ``load_dataset(card.dataset, root=data_root, split="test")``: for an
            ImageFolder victim ``data_root`` is the tree holding ``train/`` and ``test/``.
        download: let the data loaders download missing files.
        recorder: a list that receives the run's
            :class:`~stealguard.attacks.transfer.RecordingBlackBox` and the attack object (in
            that order): every query and answer of the run, for saving its transfer set
            (:func:`stealguard.harness.budgets.transfer_of`) or training at smaller budgets.

    Returns:
        ``defender_accuracy``, ``clean_accuracy``, ``attacker_accuracy``, ``fidelity``,
        ``l1_mean``, ``l1_max`` (on the test set), ``query_l1_mean`` (on the attack's
        queries), ``angular_deviation_mean`` (degrees), ``latency_ratio`` and the two
        latencies, ``queries_used`` (the budget spent), ``attack_report`` (what the attack
        reports of its run, e.g. rounds), and the run's parameters: ``label``, ``defense``,
        ``defense_params``, ``attack``, ``attack_params``, ``budget``, ``seed``,
        ``defense_seed``, ``queryset``, ``test_set``, ``test_size``, ``victim`` (card summary), ``device``,
        ``stealguard_version``, ``elapsed_s``, and where the numbers came from:
        ``code_version`` (version and git commit), ``victim_path``, ``data_root`` (relative to the
        working directory, :func:`~stealguard.provenance.portable_path`),
        ``surrogate`` (what MAD optimised against: ``random`` — a fresh copy of the victim's
        architecture seeded with ``defense_seed`` —, ``victim`` or a model directory; None for
        defenses without one) and ``units`` (the unit of each metric).

    Raises:
        FileNotFoundError: missing victim directory or data files.
        ValueError, TypeError: unknown names, bad spec, parameters out of range.
        stealguard.blackbox.BudgetExceededError: the attack overran its budget.
    """
    started = time.perf_counter()
    check_int("budget", budget, low=1)
    check_int("seed", seed, low=0)
    defense_seed = defense_seed_for(seed, defense_seed)
    device = resolve_device(device)
    model, card = load_victim(victim)
    defense_obj, label = build_defense(
        defense,
        card=card,
        seed=defense_seed,
        victim_model=model,
        victim_dir=None if isinstance(victim, tuple) else Path(victim),
        data_root=data_root,
        download=download,
        device=device,
        progress=progress,
    )
    if isinstance(queryset, str) and takes_queryset(attack):
        queryset = sgdata.load_queryset(
            queryset_spec(queryset, card.dataset),
            root=data_root,
            input_shape=tuple(card.input_shape),
            split="train",
            download=download,
        )
    if test_set is None:
        test_set = sgdata.load_dataset(card.dataset, root=data_root, split="test", download=download)
    attack_obj = build_attack(
        attack, attack_params, queryset=queryset, replica_arch=card.arch, seed=seed, device=device, progress=progress
    )
    test_images, test_labels = test_set.tensors()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        blackbox = BlackBox(model, defense_obj, budget=budget, device=device)
        replica: nn.Module = attack_obj.run(_recording(blackbox, attack_obj, recorder), budget)
        defender = evaluate_defense(
            model,
            defense_obj,
            test_images,
            test_labels,
            surrogate=make_surrogate(card, seed + METRIC_SURROGATE_OFFSET),
            device=device,
            progress=progress,
        )
        attacker = evaluate_replica(replica, model, test_images, test_labels, device=device)
    query_l1 = blackbox.distortions()
    return {
        "label": label,
        "defense": defense_obj.name,
        "defense_params": _jsonable({k: v for k, v in defense_obj.params().items() if k != "surrogate"}),
        "attack": attack,
        "attack_params": _jsonable(attack_obj.params()),
        "attack_report": attack_obj.report(),
        "budget": budget,
        "queries_used": blackbox.queries_used,
        "seed": seed,
        "defense_seed": defense_seed,
        "queryset": _queryset_name(attack, queryset),
        "test_set": getattr(test_set, "name", None),
        "test_size": int(test_labels.shape[0]),
        "victim": _card_summary(card),
        "device": str(device),
        "stealguard_version": __version__,
        "code_version": code_version(),
        "victim_path": None if isinstance(victim, tuple) else portable_path(victim),
        "data_root": None if data_root is None else portable_path(data_root),
        "surrogate": _surrogate_label(defense_obj, defense),
        "units": dict(UNITS),
        **defender,
        **attacker,
        "query_l1_mean": float(query_l1.mean()) if query_l1.numel() else math.nan,
        "elapsed_s": time.perf_counter() - started,
    }


def _recording(blackbox: Any, attack_obj: attacks.Attack, recorder: list[Any] | None) -> Any:
    """``blackbox``, wrapped in a :class:`RecordingBlackBox` put into ``recorder`` (with the attack) when one is given."""
    if recorder is None:
        return blackbox
    from stealguard.attacks.transfer import RecordingBlackBox

    recording = RecordingBlackBox(blackbox)
    recorder.extend([recording, attack_obj])
    return recording


def attack_blackbox(
    blackbox: Any,
    *,
    attack: str = "knockoff",
    attack_params: dict[str, Any] | None = None,
    queryset: Any,
    replica_arch: str,
    budget: int,
    seed: int = 0,
    device: DeviceLike = "auto",
    progress: bool = True,
    recorder: list[Any] | None = None,
) -> tuple[nn.Module, Any]:
    """Run ``attack`` against any black box (in-process or remote) as :func:`run_attack` does.

    The attack is built with the harness's defaults (``queryset``, ``replica_arch``, ``seed``,
    ``device``, ``progress`` where it takes them, overridden by ``attack_params``) and run
    under ``torch.manual_seed(seed)`` in a forked RNG, so the same seed and the same answers
    give the same replica as :func:`run_attack`.

    Args:
        blackbox: anything with ``query``, ``input_shape``, ``num_classes``, ``queries_used``
            and ``remaining`` (``BlackBox``, ``stealguard.serve.RemoteBlackBox``).
        queryset: an ``ImageDataset`` at the black box's input shape. budget: >= 1. seed: >= 0.
        recorder: as :func:`run_attack`'s.

    Returns:
        ``(replica, attack_object)``; the replica maps ``(N, *input_shape)`` to logits ``(N, K)``.

    Raises:
        ValueError, TypeError: unknown attack, parameters out of range.
    """
    check_int("budget", budget, low=1)
    check_int("seed", seed, low=0)
    device = resolve_device(device)
    attack_obj = build_attack(
        attack, attack_params, queryset=queryset, replica_arch=replica_arch, seed=seed, device=device, progress=progress
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        replica: nn.Module = attack_obj.run(_recording(blackbox, attack_obj, recorder), budget)
    return replica, attack_obj


def run_remote_attack(
    *,
    target: str,
    api_key: str | None = None,
    attack: str = "knockoff",
    attack_params: dict[str, Any] | None = None,
    queryset: str | Any,
    dataset: str | None = None,
    replica_arch: str | None = None,
    data_root: Path | str | None = None,
    budget: int,
    seed: int = 0,
    device: DeviceLike = "auto",
    progress: bool = True,
    download: bool = False,
    recorder: list[Any] | None = None,
) -> dict[str, Any]:
    """Attack the prediction service at ``target`` and measure what an attacker can measure.

    Defender-side numbers (defender accuracy, distortion, latency) are not observable
    remotely and are absent. ``attacker_accuracy`` is the replica's accuracy on the test split
    of ``dataset`` (default: the data set named in the service's public model card).
    ``fidelity`` is the replica's top-1 agreement with the service's own (defended) top-1
    answers on that test split, which costs one query per test image beyond ``budget``; it is
    measured only when the key's remaining server quota covers them, else it is ``None``
    and ``fidelity_note`` says why.

    Args:
        target: base URL of a ``stealguard serve`` service. api_key: its key, or None.
        queryset: data-set name (loaded at the service's input shape, train split) or an ``ImageDataset``.
        replica_arch: default the architecture named in the model card.
        budget: attack queries, >= 1. Other arguments as :func:`run_attack` (``recorder`` records
            the attack's queries only, not the fidelity queries).

    Returns:
        ``target``, ``attack``, ``attack_params``, ``attack_report``, ``budget``,
        ``queries_used``, ``seed``, ``queryset``, ``test_set``, ``test_size``, ``victim`` (the
        public card), ``attacker_accuracy``, ``fidelity``, ``fidelity_note``,
        ``fidelity_queries``, ``defender_metrics``, ``device``, ``stealguard_version``, ``elapsed_s``.

    Raises:
        stealguard.serve.RemoteError: the service cannot be reached or refuses the key.
        stealguard.blackbox.BudgetExceededError: the key's quota ran out during the attack.
        FileNotFoundError, ValueError, TypeError: data files, names, parameters.
    """
    from stealguard import metrics
    from stealguard.models.training import predict_logits
    from stealguard.serve.remote import RemoteBlackBox

    started = time.perf_counter()
    check_int("budget", budget, low=1)
    device = resolve_device(device)
    with RemoteBlackBox(target, api_key, budget=budget, seed=seed) as box:
        card = box.card
        test_name = dataset if dataset is not None else card["dataset"]
        if isinstance(queryset, str) and takes_queryset(attack):
            queryset = sgdata.load_queryset(
                queryset_spec(queryset, str(card["dataset"])),
                root=data_root,
                input_shape=box.input_shape,
                split="train",
                download=download,
            )
        test_set = sgdata.load_dataset(test_name, root=data_root, split="test", download=download)
        test_images, test_labels = test_set.tensors()
        replica, attack_obj = attack_blackbox(
            box,
            attack=attack,
            attack_params=attack_params,
            queryset=queryset,
            replica_arch=replica_arch if replica_arch is not None else card["arch"],
            budget=budget,
            seed=seed,
            device=device,
            progress=progress,
            recorder=recorder,
        )
        queries_used = box.queries_used
        replica_logits = predict_logits(replica, test_images, device=device)
        size = int(test_labels.shape[0])
        server_left = box.server_usage()["remaining"]
        fidelity: float | None = None
        if server_left is None or server_left >= size:
            fidelity_box = RemoteBlackBox(target, api_key, seed=seed)
            with fidelity_box:
                remote_answers = fidelity_box.query(test_images)
            fidelity = metrics.fidelity(replica_logits, remote_answers)
            note = f"agreement with the service's defended top-1 answers on the {size} test images ({size} queries beyond the attack budget)"
        else:
            note = f"omitted: measuring it needs {size} queries beyond the attack budget; the key has {server_left} left"
    return {
        "target": target,
        "attack": attack,
        "attack_params": _jsonable(attack_obj.params()),
        "attack_report": attack_obj.report(),
        "budget": budget,
        "queries_used": queries_used,
        "seed": seed,
        "queryset": _queryset_name(attack, queryset),
        "test_set": getattr(test_set, "name", test_name),
        "test_size": size,
        "victim": {key: card.get(key) for key in ("arch", "dataset", "input_shape", "num_classes")},
        "attacker_accuracy": metrics.accuracy(replica_logits, test_labels),
        "fidelity": fidelity,
        "fidelity_note": note,
        "fidelity_queries": size if fidelity is not None else 0,
        "defender_metrics": "not observable remotely (defender accuracy, distortion and latency need the clean answers)",
        "device": str(device),
        "stealguard_version": __version__,
        "elapsed_s": time.perf_counter() - started,
    }
