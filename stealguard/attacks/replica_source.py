"""Where an attack's replica comes from: an architecture name or a factory (shared by every attack base)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from stealguard.blackbox import BlackBox
from stealguard.models.registry import create

ReplicaFactory = Callable[[], nn.Module]


def check_replica_source(arch: str | None, factory: ReplicaFactory | None) -> tuple[str | None, ReplicaFactory | None]:
    """Return ``(arch, factory)`` after checking their types.

    Raises:
        TypeError: ``arch`` is not a string or None, or ``factory`` is not callable or None.
    """
    if arch is not None and not isinstance(arch, str):
        raise TypeError(f"replica_arch must be a string or None, got {arch!r}")
    if factory is not None and not callable(factory):
        raise TypeError(f"replica_factory must be callable or None, got {factory!r}")
    return arch, factory


def build_replica(
    arch: str | None,
    factory: ReplicaFactory | None,
    blackbox: BlackBox,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    seed: int,
    owner: str,
    role: str = "replica",
) -> nn.Module:
    """A fresh replica, weights drawn with ``torch.manual_seed(seed)`` in a forked RNG.

    ``factory()`` when given; else ``stealguard.models.create(arch, ...)`` at the black box's
    input shape and class count, normalising inputs with ``mean``/``std`` (one per channel).

    Raises:
        ValueError: both ``arch`` and ``factory`` are None (the message names ``owner`` and ``role``).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if factory is not None:
            return factory()
        if arch is None:
            raise ValueError(f"{owner} needs replica_arch or replica_factory to build the {role}; both are None")
        return create(arch, input_shape=tuple(blackbox.input_shape), num_classes=blackbox.num_classes, mean=list(mean), std=list(std))


def replica_source_params(arch: str | None, factory: ReplicaFactory | None) -> dict[str, Any]:
    """``replica_arch`` and ``replica_factory`` (its qualified name) for result files."""
    return {
        "replica_arch": arch,
        "replica_factory": None if factory is None else getattr(factory, "__qualname__", repr(factory)),
    }
