"""Budget curves from one query run, and replicas trained offline from a saved transfer set.

The MAD reference workflow queries once and trains replicas at several budgets. Here a query
run at the largest budget is recorded (:class:`~stealguard.attacks.transfer.RecordingBlackBox`),
and for every smaller budget ``b`` a replica is trained on the first ``b`` queries (query
order) with the attack's own final-training settings
(:func:`~stealguard.attacks.transfer.train_from_transfer`); the largest budget's row is the
query run's own replica. For knockoff's random policy a prefix is exactly what an attacker
with ``b`` queries would have drawn (the same seeded permutation), so each row matches a
separate run at that budget; for round-based attacks (jbda, jb_self, jb_top3: the transfer
set grows in rounds, each round's points chosen with a substitute trained on the earlier
ones) and knockoff's adaptive policy a prefix is the first ``b`` queries of the long run,
not what a run with budget ``b`` would have sent (its last round is cut differently).

Offline (``stealguard attack --transfer PATH``) nothing is queried: the replica's accuracy is
measured on a labelled test set, its fidelity (top-1 agreement) against the clean victim when
the victim is at hand, else it is not measured; defender-side numbers (defender accuracy,
distortion, latency) are never measured offline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stealguard import attacks, metrics, models
from stealguard import data as sgdata
from stealguard._version import __version__
from stealguard.attacks.transfer import (
    RecordingBlackBox,
    TransferSet,
    load_transfer,
    train_from_transfer,
)
from stealguard.device import DeviceLike, resolve_device
from stealguard.evaluate import evaluate_replica
from stealguard.harness.experiment import _jsonable, build_attack
from stealguard.harness.run import resolve_victim, run, threads
from stealguard.runspec import Env, RunResult, RunSpec

CURVE_CSV = "results.csv"
CURVE_JSON = "results.json"
CURVE_PNG = "budget_curve.png"
OFFLINE_COLUMNS = (
    "budget", "queries_used", "attacker_accuracy", "fidelity", "seed", "attack", "attack_params", "defense", "target",
    "transfer", "transfer_queries", "test_set", "test_size", "fidelity_note", "measured",
)
"""Columns of an offline budget curve's ``results.csv``."""
HARNESS_PARAMS = ("queryset", "seed", "device", "progress", "replica_factory")
"""Attack parameters the harness supplies; recorded values of these are not reused offline."""
OFFLINE_NOTE = (
    "offline: replica trained on a saved transfer set with no query; attacker_accuracy on the test split, "
    "fidelity against the clean victim's top-1 when the victim was given; no defender-side numbers"
)


def parse_budgets(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"1000,5000,10000"`` (or a list of ints) -> sorted distinct budgets, each >= 1.

    Raises:
        ValueError: empty, not integers, or a budget < 1 (the message names ``budgets``).
    """
    items = [item.strip() for item in text.split(",")] if isinstance(text, str) else list(text)
    try:
        values = [int(item) if not isinstance(item, bool) else None for item in items]
    except (TypeError, ValueError):
        raise ValueError(f"budgets must be a comma-separated list of integers like 1000,5000, got {text!r}") from None
    if not values or any(value is None or value < 1 for value in values):
        raise ValueError(f"budgets must be integers >= 1, got {text!r}")
    return tuple(sorted({v for v in values if v is not None}))


def transfer_of(recorder: Sequence[Any], result: dict[str, Any], *, queryset: str | None) -> TransferSet:
    """The transfer set of a recorded run: ``recorder`` as filled by ``run_attack``/``run_remote_attack``, ``result`` its result dict.

    ``queryset``: the query set's spec as loaded (recorded so that offline training can load it again).
    """
    box, attack_obj = recorder
    if not isinstance(box, RecordingBlackBox):
        raise TypeError("recorder must hold the run's RecordingBlackBox and attack (pass an empty list to run_attack)")
    remote = "target" in result
    meta = {
        "attack": result["attack"],
        "attack_params": _jsonable(attack_obj.params()),
        "seed": result["seed"],
        "budget": result["budget"],
        "queries_used": result["queries_used"],
        "defense": None if remote else result.get("label"),
        "defense_seed": None if remote else result.get("defense_seed"),
        "target": result.get("target"),
        "victim": box.card if remote else result.get("victim"),
        "queryset": queryset if attacks_take_queryset(result["attack"]) else None,
        "stealguard_version": __version__,
    }
    return box.transfer_set(meta)


def attacks_take_queryset(attack: str) -> bool:
    """Whether ``attack`` queries with a query set of images."""
    return "queryset" in attacks.parameters(attack)


def offline_attack(
    transfer: TransferSet,
    *,
    attack: str,
    attack_params: dict[str, Any] | None = None,
    queryset: str | None = None,
    data_root: Path | str | None = None,
    replica_arch: str | None = None,
    seed: int = 0,
    device: DeviceLike = "auto",
    progress: bool = False,
    download: bool = False,
) -> attacks.Attack:
    """The attack whose final training trains replicas from ``transfer``.

    When ``attack`` is the recorded attack, its recorded parameters are the base (the harness's
    own ``queryset``, ``seed``, ``device``, ``progress`` aside) and ``attack_params`` override
    them. The query set (its images give the replica's input normalisation) is ``queryset``,
    else the recorded spec, loaded at the transfer set's input shape; a transfer set without one
    (a data-free attack's) uses its own inputs. ``replica_arch``: default the recorded one,
    else the victim's architecture named in the recorded card.

    Raises:
        ValueError, TypeError: unknown attack, parameters out of range, no architecture known.
    """
    meta = transfer.meta
    params: dict[str, Any] = {}
    accepted = set(attacks.parameters(attack))
    if attack == meta.get("attack") and isinstance(meta.get("attack_params"), dict):
        params = {k: v for k, v in meta["attack_params"].items() if k in accepted and k not in HARNESS_PARAMS}
    params.update(attack_params or {})
    victim = meta.get("victim") if isinstance(meta.get("victim"), dict) else {}
    arch = replica_arch or params.pop("replica_arch", None) or victim.get("arch")
    params.pop("replica_arch", None)
    if arch is None:
        raise ValueError("no replica architecture is recorded in the transfer set; give --replica-arch")
    spec = queryset if queryset is not None else meta.get("queryset")
    images: Any = transfer.inputs
    if isinstance(spec, str) and "queryset" in accepted:
        images = sgdata.load_queryset(spec, root=data_root, input_shape=tuple(transfer.inputs.shape[1:]), split="train", download=download)
    return build_attack(attack, params, queryset=images, replica_arch=arch, seed=seed, device=device, progress=progress)


def evaluate_offline(
    replica: nn.Module, test_images: torch.Tensor, test_labels: torch.Tensor, *, victim: nn.Module | None, device: DeviceLike
) -> dict[str, Any]:
    """``attacker_accuracy`` on the test set, and ``fidelity`` against ``victim`` (clean top-1) or None with a ``fidelity_note``."""
    if victim is not None:
        measured = evaluate_replica(replica, victim, test_images, test_labels, device=device)
        return {**measured, "fidelity_note": "agreement with the clean victim's top-1 on the test split"}
    logits = models.predict_logits(replica, test_images, device=device)
    return {
        "attacker_accuracy": metrics.accuracy(logits, test_labels),
        "fidelity": None,
        "fidelity_note": "not measured: offline without --victim (measuring it against the service would cost queries)",
    }


def train_offline(
    *,
    transfer: Path | str | TransferSet,
    budgets: Sequence[int] | None = None,
    attack: str | None = None,
    attack_params: dict[str, Any] | None = None,
    queryset: str | None = None,
    dataset: str | None = None,
    victim: Path | str | None = None,
    data_root: Path | str | None = None,
    replica_arch: str | None = None,
    seed: int = 0,
    device: DeviceLike = "auto",
    progress: bool = False,
    download: bool = False,
) -> list[dict[str, Any]]:
    """Train a replica on each prefix of a saved transfer set (no query) and measure it; one row per budget.

    Args:
        transfer: the file (:func:`~stealguard.attacks.transfer.save_transfer`) or a loaded set.
        budgets: queries of each prefix (default: the whole set).
        attack: the attack whose training is used (default: the recorded attack).
        dataset: the labelled test set (default: the recorded victim card's data set).
        victim: the victim's directory; when given, fidelity is measured against it (no query).
        Other arguments as :func:`offline_attack`.

    Returns:
        One dict per budget: ``budget``, ``queries_used`` (queries of the prefix, <= budget),
        ``attacker_accuracy``, ``fidelity`` (None without ``victim``), ``fidelity_note``,
        ``seed``, ``attack``, ``attack_params``, ``defense``, ``target``, ``transfer``,
        ``transfer_queries``, ``test_set``, ``test_size``, ``measured``, ``elapsed_s``.

    Raises:
        ValueError: a budget larger than the set, unknown names, no test set known.
        TypeError: an attack that cannot train offline.
    """
    started = time.perf_counter()
    loaded = transfer if isinstance(transfer, TransferSet) else load_transfer(transfer)
    meta = loaded.meta
    name = attack if attack is not None else meta.get("attack")
    if not isinstance(name, str):
        raise ValueError("the transfer set records no attack; give --attack")
    chosen = parse_budgets(budgets) if budgets is not None else (loaded.num_queries,)
    if chosen[-1] > loaded.num_queries:
        raise ValueError(f"budget {chosen[-1]} exceeds the {loaded.num_queries} queries the transfer set holds")
    card = meta.get("victim") if isinstance(meta.get("victim"), dict) else {}
    test_name = dataset if dataset is not None else card.get("dataset")
    if not isinstance(test_name, str):
        raise ValueError("the transfer set names no data set to evaluate on; give --dataset")
    device = resolve_device(device)
    victim_model = None
    if victim is not None:
        victim_model, victim_card = models.load_model(victim, device=device)
        if tuple(victim_card.input_shape) != tuple(loaded.inputs.shape[1:]):
            raise ValueError(f"victim {str(victim)!r} takes inputs {tuple(victim_card.input_shape)}, the transfer set holds {tuple(loaded.inputs.shape[1:])}")
    attack_obj = offline_attack(
        loaded, attack=name, attack_params=attack_params, queryset=queryset, data_root=data_root, replica_arch=replica_arch,
        seed=seed, device=device, progress=progress, download=download,
    )
    test_set = sgdata.load_dataset(test_name, root=data_root, split="test", download=download)
    images, labels = test_set.tensors()
    rows = []
    for budget in chosen:
        replica, queries = train_from_transfer(attack_obj, loaded, budget=budget)
        rows.append({
            "budget": budget,
            "queries_used": queries,
            **evaluate_offline(replica, images, labels, victim=victim_model, device=device),
            "seed": seed,
            "attack": name,
            "attack_params": _jsonable(attack_obj.params()),
            "defense": meta.get("defense"),
            "target": meta.get("target"),
            "transfer": None if isinstance(transfer, TransferSet) else str(transfer),
            "transfer_queries": loaded.num_queries,
            "test_set": getattr(test_set, "name", test_name),
            "test_size": int(labels.shape[0]),
            "measured": OFFLINE_NOTE,
            "elapsed_s": time.perf_counter() - started,
        })
    return rows


def run_budgets(
    spec: RunSpec, env: Env | None = None, *, budgets: Sequence[int], save_transfer: Path | str | None = None,
    victim: Path | str | None = None, undefended: Path | str | None = None,
) -> list[RunResult]:
    """One query run of ``spec`` at the largest of ``budgets``, and one :class:`RunResult` per budget.

    The largest budget's row is :func:`~stealguard.harness.run.run`'s result of that query run;
    every smaller budget's row is the replica trained on the run's first ``b`` queries
    (:func:`~stealguard.attacks.transfer.train_from_transfer`) with the same defender-side
    numbers (they do not depend on the attack's budget) except ``query_l1_mean``, the mean over
    the prefix's queries. Each row's spec is ``spec`` at its budget; its ``attack_report`` says
    ``{"budget_curve": {"query_run_budget": B, "prefix_queries": b}}`` (rows trained on a prefix).
    ``save_transfer``: also write the query run's transfer set there. ``victim``, ``undefended``:
    the prepared victim folders, as :func:`~stealguard.harness.run.run` takes them (the grid runner).

    Raises:
        As :func:`~stealguard.harness.run.run`; ValueError: bad budgets.
    """
    import json

    env = env if env is not None else Env()
    chosen = parse_budgets(budgets)
    top = spec.model_copy(update={"budget": chosen[-1]})
    folder = Path(victim) if victim is not None else resolve_victim(top, env)
    recorder: list[Any] = []
    result = run(top, env, victim=folder, undefended=undefended, recorder=recorder)
    box, attack_obj = recorder
    if save_transfer is not None:
        from stealguard.attacks.transfer import save_transfer as write_transfer

        queryset = top.queryset
        if queryset is None:
            from stealguard.harness.experiment import default_queryset

            queryset = default_queryset(models.load_card(folder).dataset)
        outcome = {"attack": top.attack.name, "seed": top.seed, "budget": top.budget, "queries_used": result.queries_used,
                   "label": str(top.defense), "defense_seed": top.defense_seed, "victim": {"arch": result.victim_arch, "dataset": result.victim_dataset}}
        write_transfer(transfer_of(recorder, outcome, queryset=queryset), save_transfer)
    if result.status != "ok" or len(chosen) == 1:
        return [result]
    transfer = box.transfer_set({})
    distortions = box.distortions()
    victim_model, card = models.load_model(folder, device=env.device)
    images, labels = sgdata.load_dataset(card.dataset, root=env.data_root, split="test", download=env.download).tensors()
    rows = []
    for budget in chosen[:-1]:
        started = time.perf_counter()
        at = spec.model_copy(update={"budget": budget})
        with threads(env.threads):
            replica, queries = train_from_transfer(attack_obj, transfer, budget=budget)
            measured = evaluate_replica(replica, victim_model, images, labels, device=env.device)
        query_l1 = distortions[:queries]
        rows.append(RunResult(**{
            **result.to_row(),
            **RunResult.identity(at, victim_card=card),
            "victim_accuracy": result.victim_accuracy,
            "attacker_accuracy": measured["attacker_accuracy"],
            "fidelity": measured["fidelity"],
            "queries_used": queries,
            "query_l1_mean": float(query_l1.mean()) if query_l1.numel() else math.nan,
            "attack_report": json.dumps({"budget_curve": {"query_run_budget": top.budget, "prefix_queries": queries}}, sort_keys=True),
            "elapsed_s": time.perf_counter() - started,
        }))
    return [*rows, result]


def plot_budget_curve(rows: Sequence[dict[str, Any]], path: Path | str, *, title: str | None = None) -> Path:
    """Attacker accuracy against queries (log x), one line per defense setting; write the PNG to ``path``.

    Each row has ``queries_used`` (or ``budget``), ``attacker_accuracy`` and optionally
    ``defense_label``/``defense`` (rows without one form one line).
    """
    from stealguard.harness.plots import MARKERS, _pyplot

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        lines.setdefault(str(row.get("defense_label") or row.get("defense") or "transfer set"), []).append(row)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    for number, (label, members) in enumerate(lines.items()):
        members = sorted(members, key=lambda r: int(r.get("queries_used") or r["budget"]))
        xs = [int(r.get("queries_used") or r["budget"]) for r in members]
        ys = [float(r["attacker_accuracy"]) for r in members]
        marker = "*" if label == "none" else MARKERS[number % len(MARKERS)]
        ax.plot(xs, ys, marker=marker, linewidth=1.2, alpha=0.8, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("queries")
    ax.set_ylabel("attacker accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
