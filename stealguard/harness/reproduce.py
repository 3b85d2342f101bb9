"""Run a :class:`~stealguard.harness.grid.Grid` cell by cell into a :class:`ResultsFile`, resumably.

Victims are trained once and cached under ``<work_dir>/victims/`` (a DP-SGD victim per
``dp_sgd`` setting beside them); a cell whose key is already in the results file is not run
again. Each finished cell is appended at once, so an interrupted sweep loses at most the
cells in flight. With ``workers > 1`` cells run in separate processes (one torch thread
each by default), which uses small CPUs better than one process with several threads.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from stealguard import data as sgdata
from stealguard import defenses, models
from stealguard._checks import check_int
from stealguard.defenses.misinformation import misinformation_dir, misinformation_for_victim
from stealguard.device import DeviceLike
from stealguard.harness.experiment import run_attack
from stealguard.harness.grid import DP_SGD, Cell, Grid, VictimSpec
from stealguard.harness.results import ResultsFile
from stealguard.harness.train import quantize_saved_victim, train_victim
from stealguard.metrics import l1_distance
from stealguard.models.io import CARD_FILE
from stealguard.provenance import code_version

VICTIMS_DIR = "victims"


def victim_path(work_dir: Path | str, spec: VictimSpec, dp: dict[str, float] | None = None) -> Path:
    """Cache folder of ``spec`` (``dp`` given: of its DP-SGD-trained twin)."""
    base = Path(work_dir) / VICTIMS_DIR / spec.name
    if dp is None:
        return base
    suffix = "-".join(f"{key}{dp[key]:g}" for key in sorted(dp))
    return base.with_name(f"{spec.name}-dp-{suffix}")


def check_cached_victim(path: Path, spec: VictimSpec, dp: dict[str, float] | None = None) -> None:
    """Check that the victim cached in ``path`` is the one ``spec`` (and ``dp``) describe: its card's
    architecture, training data set, seed, int8 record (calibration size and seed) and DP-SGD
    settings. A cache reused across grids, or committed, cannot then silently stand in for another victim.

    Raises:
        ValueError: the card differs from the spec (names the folder and every differing field).
    """
    card = models.load_card(path)
    expected: dict[str, Any] = {
        "arch": spec.arch, "dataset": str(sgdata.parse_dataset_spec(spec.dataset)), "seed": spec.seed, "int8": spec.int8 is not None,
    }
    found: dict[str, Any] = {"arch": card.arch, "dataset": card.dataset, "seed": card.seed, "int8": card.quantization is not None}
    if spec.int8 is not None and card.quantization is not None:
        expected.update(calibration_size=spec.int8.calibration, calibration_seed=spec.int8.seed)
        found.update(calibration_size=card.quantization["calibration_size"], calibration_seed=card.quantization["calibration_seed"])
    expected["dp"] = None if dp is None else {key: float(dp[key]) for key in ("noise_multiplier", "max_grad_norm")}
    found["dp"] = None if card.dp is None else {key: float(card.dp[key]) for key in ("noise_multiplier", "max_grad_norm")}
    differing = [f"{key}: card {found[key]!r}, grid {expected[key]!r}" for key in expected if found[key] != expected[key]]
    if differing:
        raise ValueError(f"cached victim {str(path)!r} is not the grid's victim {spec.name!r} ({'; '.join(differing)}); "
                         "move it away or point the runner at another cache (--work)")


def prepare_victim(
    spec: VictimSpec,
    *,
    work_dir: Path | str,
    data_root: Path | str | None,
    dp: dict[str, float] | None = None,
    device: DeviceLike = "auto",
    progress: bool = True,
) -> Path:
    """The cached victim's folder, training it first (seeded, the spec's settings) if it is not
    there; an int8 victim is quantized from its (cached or trained) float base, a DP-SGD one's from the base's DP twin.

    Raises:
        ValueError: a cached victim whose card differs from ``spec`` (:func:`check_cached_victim`).
    """
    path = victim_path(work_dir, spec, dp)
    if (path / CARD_FILE).is_file():
        check_cached_victim(path, spec, dp)
        return path
    if spec.int8 is not None:
        base = prepare_victim(spec.int8.base, work_dir=work_dir, data_root=data_root, dp=dp, device=device, progress=progress)
        quantize_saved_victim(base, out=path, data_root=data_root, calibration=spec.int8.calibration, seed=spec.int8.seed)
    else:
        train_victim(
            dataset=spec.dataset, data_root=data_root, arch=spec.arch, seed=spec.seed, device=device, out=path,
            progress=progress, dp=dp, **spec.train,
        )
    return path


def prepare_misinformation(
    spec: VictimSpec,
    *,
    work_dir: Path | str,
    data_root: Path | str | None,
    device: DeviceLike = "auto",
    progress: bool = True,
) -> Path:
    """The folder of the cached victim's misinformation model (``adaptive_misinformation``),
    training it first if it is not there (the victim must be prepared).

    A float victim's is trained by :func:`~stealguard.defenses.misinformation.misinformation_for_victim`
    (the victim's recipe and seed). An int8 victim's is its float base's, int8-quantized with the
    victim's calibration settings, so the base's training is not repeated.
    """
    path = victim_path(work_dir, spec)
    target = misinformation_dir(path)
    if (target / CARD_FILE).is_file():
        return target
    if spec.int8 is not None:
        base = prepare_misinformation(spec.int8.base, work_dir=work_dir, data_root=data_root, device=device, progress=progress)
        quantize_saved_victim(base, out=target, data_root=data_root, calibration=spec.int8.calibration, seed=spec.int8.seed)
    else:
        misinformation_for_victim(models.load_card(path), victim_dir=path, data_root=data_root, device=device, progress=progress)
    return target


def answer_distortion(base_dir: Path, other_dir: Path, *, data_root: Path | str | None, device: DeviceLike = "cpu") -> tuple[float, float]:
    """Mean and max L1 distance between two victims' answers on the test split of the base's data set.

    This is the distortion a DP-SGD victim's answers carry relative to the undefended victim
    (what a posterior defense's ``l1_mean`` measures against the clean answers).
    """
    base, card = models.load_model(base_dir, device="cpu")
    other, _ = models.load_model(other_dir, device="cpu")
    images, _labels = sgdata.load_dataset(card.dataset, root=data_root, split="test").tensors()
    l1 = l1_distance(models.predict_proba(base, images, device=device), models.predict_proba(other, images, device=device))
    return float(l1.mean()), float(l1.max())


def run_cell(
    cell: Cell,
    *,
    work_dir: Path | str,
    data_root: Path | str | None,
    device: DeviceLike = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Run one cell (its victims must be prepared) and return its results-file row."""
    base_dir = victim_path(work_dir, cell.victim)
    dp = cell.dp
    target = victim_path(work_dir, cell.victim, dp) if dp is not None else base_dir
    result = run_attack(
        victim=target,
        defense="none" if dp is not None else cell.defense,
        attack=cell.attack.attack,
        attack_params=dict(cell.attack.params),
        queryset=cell.queryset,
        data_root=data_root,
        budget=cell.budget,
        seed=cell.seed,
        device=device,
        progress=progress,
    )
    base_card = models.load_card(base_dir)
    row = {
        **result,
        "key": cell.key(),
        "victim": cell.victim.name,
        "victim_dataset": cell.victim.dataset,
        "victim_arch": cell.victim.arch,
        "victim_accuracy": base_card.test_accuracy,
        "attack_name": cell.attack.name,
        "label": cell.defense,
        "code_version": code_version(),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if dp is not None:
        l1_mean, l1_max = answer_distortion(base_dir, target, data_root=data_root, device=device)
        row.update(defense=DP_SGD, defense_params=dp, l1_mean=l1_mean, l1_max=l1_max, query_l1_mean=None, angular_deviation_mean=None)
    return row


def _needs_misinformation(cell: Cell) -> bool:
    """Whether the cell's defense takes the victim's misinformation model (``adaptive_misinformation``)."""
    return cell.dp is None and "misinformation" in defenses.parameters(cell.defense_name)


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def run_grid(
    grid: Grid,
    *,
    results: ResultsFile,
    work_dir: Path | str,
    data_root: Path | str | None,
    device: DeviceLike = "auto",
    workers: int = 1,
    threads_per_worker: int = 1,
    select: Callable[[Cell], bool] | None = None,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[Cell, BaseException]]]:
    """Run every cell of ``grid`` not yet in ``results`` (and accepted by ``select``).

    Victims (and DP-SGD victims) are prepared first, in this process, and so is the
    misinformation model of each victim an ``adaptive_misinformation`` cell defends (trained
    once, not by every worker that needs it). Each finished row is
    appended to ``results`` at once and passed to ``on_row``. A failing cell does not stop
    the others.

    Args:
        workers: processes running cells, >= 1 (1: in this process).
        threads_per_worker: torch threads of each worker process when ``workers > 1``.

    Returns:
        ``(rows, failures)``: the new rows, and ``(cell, exception)`` for each cell that failed.
    """
    check_int("workers", workers, low=1)
    check_int("threads_per_worker", threads_per_worker, low=1)
    done = results.keys()
    todo = [cell for cell in grid.cells() if cell.key() not in done and (select is None or select(cell))]
    needed: dict[Path, tuple[VictimSpec, dict[str, float] | None]] = {}
    for cell in todo:
        needed.setdefault(victim_path(work_dir, cell.victim), (cell.victim, None))
        if cell.dp is not None:
            needed.setdefault(victim_path(work_dir, cell.victim, cell.dp), (cell.victim, cell.dp))
    for spec, dp in needed.values():
        prepare_victim(spec, work_dir=work_dir, data_root=data_root, dp=dp, device=device, progress=progress)
    for spec in {cell.victim.name: cell.victim for cell in todo if _needs_misinformation(cell)}.values():
        prepare_misinformation(spec, work_dir=work_dir, data_root=data_root, device=device, progress=progress)

    rows: list[dict[str, Any]] = []
    failures: list[tuple[Cell, BaseException]] = []

    def finish(row: dict[str, Any]) -> None:
        results.append(row)
        rows.append(row)
        if on_row is not None:
            on_row(row)

    bar = tqdm(total=len(todo), desc=f"{grid.name} cells", unit="cell", disable=not progress)
    if workers == 1:
        for cell in todo:
            try:
                finish(run_cell(cell, work_dir=work_dir, data_root=data_root, device=device, progress=progress))
            except Exception as err:  # noqa: BLE001 - one failing cell must not stop the sweep
                failures.append((cell, err))
            bar.update(1)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads_per_worker,)) as pool:
            pending: dict[Future[dict[str, Any]], Cell] = {
                pool.submit(run_cell, cell, work_dir=work_dir, data_root=data_root, device=device, progress=False): cell
                for cell in todo
            }
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    cell = pending.pop(future)
                    try:
                        finish(future.result())
                    except Exception as err:  # noqa: BLE001
                        failures.append((cell, err))
                    bar.update(1)
    bar.close()
    return rows, failures


def select_cells(
    *, victims: Sequence[str] = (), attacks: Sequence[str] = (), defenses: Sequence[str] = (), seeds: Sequence[int] = ()
) -> Callable[[Cell], bool]:
    """A ``select`` for :func:`run_grid`: cells whose victim name, attack label, defense name
    (e.g. ``mad``, ``dp_sgd``) and seed are in the given lists (an empty list accepts all)."""

    def accept(cell: Cell) -> bool:
        return (
            (not victims or cell.victim.name in victims)
            and (not attacks or cell.attack.name in attacks)
            and (not defenses or cell.defense_name in defenses or cell.defense in defenses)
            and (not seeds or cell.seed in seeds)
        )

    return accept
