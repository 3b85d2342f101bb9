"""Defender- and attacker-side measurements of one defended victim and one replica.

* :func:`defended_predictions`: the clean and the defended posteriors of a batch of images.
* :func:`evaluate_defense`: what the defense costs the defender (accuracy of its answers,
  L1 distortion, gradient angular deviation, latency overhead).
* :func:`evaluate_replica`: what the attacker got (replica accuracy, fidelity to the victim).

Two angular deviations, both after Orekondy et al., "Prediction Poisoning: Towards
Defenses Against DNN Model Stealing Attacks", ICLR 2020 (arXiv:1906.10908), Sec. 4 / Eq. 5:
the angle between ``G^T y`` and ``G^T y~`` with ``G`` the Jacobian of a network's
log-likelihood, computed from the Gram matrix ``G G^T``.

* ``angular_deviation_mean`` here (the *independent-surrogate* measure, this project's): ``G``
  of a randomly initialised network of the victim's architecture with its own seed, on
  the test set, so the number is comparable across defenses and attacks.
* The paper's measure (Fig. 3) takes ``G`` of the *attacker's model while it trains*: replica
  attacks record it with ``angle_probe=P`` and report it per epoch as
  ``training_angular_deviation`` (:mod:`stealguard.attacks.angle_probe`).
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from stealguard import metrics
from stealguard._checks import check_choice, check_int
from stealguard.blackbox import BlackBox
from stealguard.defenses.base import Defense
from stealguard.defenses.jacobian import surrogate_gram
from stealguard.defenses.none import NoDefense
from stealguard.device import DeviceLike, resolve_device
from stealguard.models.training import predict_logits


def _check_images(images: Tensor, labels: Tensor | None = None) -> None:
    if not isinstance(images, Tensor) or not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor (N, C, H, W), got {type(images).__name__}")
    if images.shape[0] == 0:
        raise ValueError("images must hold at least one image, got 0")
    if labels is not None and (labels.dim() != 1 or labels.shape[0] != images.shape[0]):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _latencies(
    model: nn.Module, defense: Defense, images: Tensor, *, batch_size: int, rounds: int, device: torch.device
) -> tuple[float, float]:
    """Seconds per query of the undefended and the defended ``BlackBox.query`` path.

    One batch through each path warms both up (untimed). Then ``rounds`` passes over
    ``images`` time every batch through both paths, interleaved, alternating which goes
    first; each path's figure is its fastest pass (as ``timeit`` does), which discounts
    interference from other processes.
    """
    clean_box = BlackBox(model, NoDefense(), batch_size=batch_size, device=device)
    defended_box = BlackBox(model, defense, batch_size=batch_size, device=device)
    batches = list(images.split(batch_size))
    clean_box.query(batches[0])
    defended_box.query(batches[0])
    best = {"clean": math.inf, "defended": math.inf}
    for round_index in range(rounds):
        spent = {"clean": 0.0, "defended": 0.0}
        order = [("clean", clean_box), ("defended", defended_box)]
        if round_index % 2:
            order.reverse()
        for batch in batches:
            for key, box in order:
                _sync(device)
                start = time.perf_counter()
                box.query(batch)
                _sync(device)
                spent[key] += time.perf_counter() - start
        best = {key: min(best[key], spent[key]) for key in best}
    n = images.shape[0]
    return best["clean"] / n, best["defended"] / n


def defended_predictions(
    model: nn.Module,
    defense: Defense | None,
    images: Tensor,
    *,
    batch_size: int = 256,
    device: DeviceLike = "auto",
    progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """The victim's clean and defended posteriors for ``images``.

    Args:
        model: the victim (``(N, C, H, W)`` pixels in [0, 1] -> logits ``(N, K)``).
        defense: applied to the clean posteriors; ``None`` means ``none``.
        images: float ``(N, C, H, W)``, N >= 1.
        batch_size: images per forward pass, >= 1.
        device: where the victim (and the defense) run.
        progress: a tqdm bar (stderr) over the batches.

    Returns:
        ``(clean, defended)``, both float32 ``(N, K)`` on the cpu, rows on the simplex.
    """
    _check_images(images)
    batch_size = check_int("batch_size", batch_size, low=1)
    device = resolve_device(device)
    box = BlackBox(model, defense, batch_size=batch_size, device=device)
    clean_parts, defended_parts = [], []
    for batch in tqdm(images.split(batch_size), desc="evaluate defense", unit="batch", disable=not progress):
        chunk = batch.to(device, torch.float32)
        with torch.no_grad():
            clean = torch.softmax(box.model(chunk).float(), dim=1)
        defended_parts.append(box.defense(chunk, clean).cpu())
        clean_parts.append(clean.cpu())
    return torch.cat(clean_parts), torch.cat(defended_parts)


def evaluate_defense(
    model: nn.Module,
    defense: Defense | None,
    test_images: Tensor,
    test_labels: Tensor,
    *,
    surrogate: nn.Module | None = None,
    jacobian: str = "last_layer",
    device: DeviceLike = "auto",
    batch_size: int = 256,
    latency_queries: int = 1024,
    latency_rounds: int = 5,
    progress: bool = False,
) -> dict[str, float | None]:
    """Measure what ``defense`` costs on a labelled test set.

    Accuracy and distortion come from every test image. Latency: the first
    ``latency_queries`` test images go through the undefended and the defended black-box
    path (``BlackBox.query``) batch by batch, interleaved, after one warm-up batch through
    each, ``latency_rounds`` times; each path's fastest round gives its seconds per query.

    Args:
        model: the victim.
        defense: the defense under test (``None`` = ``none``).
        test_images: float ``(N, C, H, W)`` in [0, 1], N >= 1.
        test_labels: int64 ``(N,)``.
        surrogate: the network whose log-likelihood Jacobian defines the independent-surrogate
            angular deviation (a randomly initialised copy of the victim's arch with a fixed
            seed, so the number is comparable across defenses); ``None`` skips the metric.
        jacobian: ``"last_layer"`` (default) or ``"full"``: which parameters ``G`` covers.
        progress: a tqdm bar (stderr) over the test batches.
        device: where everything runs.
        batch_size: images per black-box call, >= 1.
        latency_queries: test images timed, >= 1 (default 1024).
        latency_rounds: timed passes over them, >= 1 (default 5).

    Returns:
        ``defender_accuracy`` (top-1 of the defended answers vs the labels, [0, 1]),
        ``clean_accuracy`` (same for the clean posteriors), ``l1_mean`` / ``l1_max`` (L1
        distance defended vs clean, [0, 2]), ``angular_deviation_mean`` (the independent-surrogate
        measure, degrees, [0, 180]; ``None`` without a surrogate), ``latency_undefended_s`` / ``latency_defended_s``
        (seconds per query), ``latency_ratio`` (defended / undefended).

    Raises:
        TypeError, ValueError: malformed images or labels, or a parameter out of range.
    """
    _check_images(test_images, test_labels)
    batch_size = check_int("batch_size", batch_size, low=1)
    jacobian = check_choice("jacobian", jacobian, ("last_layer", "full"))
    latency_queries = check_int("latency_queries", latency_queries, low=1)
    latency_rounds = check_int("latency_rounds", latency_rounds, low=1)
    device = resolve_device(device)
    defense = defense if defense is not None else NoDefense()
    clean, defended = defended_predictions(model, defense, test_images, batch_size=batch_size, device=device, progress=progress)
    distortion = metrics.l1_distance(defended, clean)
    timed = test_images[:latency_queries]
    clean_s, defended_s = _latencies(model, defense, timed, batch_size=batch_size, rounds=latency_rounds, device=device)
    result: dict[str, float | None] = {
        "defender_accuracy": metrics.accuracy(defended, test_labels),
        "clean_accuracy": metrics.accuracy(clean, test_labels),
        "l1_mean": float(distortion.mean()),
        "l1_max": float(distortion.max()),
        "angular_deviation_mean": None,
        "latency_undefended_s": clean_s,
        "latency_defended_s": defended_s,
        "latency_ratio": defended_s / clean_s if clean_s > 0 else math.inf,
    }
    if surrogate is not None:
        surrogate = surrogate.to(device).eval()
        angles = []
        for x, y, y_tilde in zip(test_images.split(batch_size), clean.split(batch_size), defended.split(batch_size)):
            gram = surrogate_gram(surrogate, x.to(device, torch.float32), jacobian=jacobian).detach().double()
            angles.append(metrics.angular_deviation(gram, y.to(gram), y_tilde.to(gram)).cpu())
        result["angular_deviation_mean"] = math.degrees(float(torch.cat(angles).mean()))
    return result


def evaluate_replica(
    replica: nn.Module,
    victim: nn.Module,
    test_images: Tensor,
    test_labels: Tensor,
    *,
    batch_size: int = 512,
    device: DeviceLike = "auto",
) -> dict[str, float]:
    """Accuracy of the replica and its top-1 agreement with the clean (undefended) victim.

    Args:
        replica, victim: ``(N, C, H, W)`` -> logits ``(N, K)``.
        test_images: float ``(N, C, H, W)``, N >= 1; test_labels: int64 ``(N,)``.
        batch_size: images per forward pass; device: where both run.

    Returns:
        ``attacker_accuracy`` and ``fidelity``, both in [0, 1].
    """
    _check_images(test_images, test_labels)
    replica_logits = predict_logits(replica, test_images, batch_size=batch_size, device=device)
    victim_logits = predict_logits(victim, test_images, batch_size=batch_size, device=device)
    return {
        "attacker_accuracy": metrics.accuracy(replica_logits, test_labels),
        "fidelity": metrics.fidelity(replica_logits, victim_logits),
    }

