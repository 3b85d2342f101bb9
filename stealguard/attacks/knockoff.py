"""``knockoff``: Knockoff Nets with the random sampling policy.

Orekondy, Schiele, Fritz, "Knockoff Nets: Stealing Functionality of Black-Box Models",
CVPR 2019 (arXiv:1812.02766), Sec. 4.1 ("random" policy) and Sec. 4.2 (training the knockoff).
The attacker draws ``budget`` images from a query set of natural images (its own, not the
victim's training data), sends them to the black box, and trains a replica on the returned
posteriors with the soft cross-entropy ``-sum_k y~_k log F_A(x)_k``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from stealguard._checks import check_bool, check_choice, check_int, check_number
from stealguard.attacks.base import Attack
from stealguard.blackbox import BlackBox
from stealguard.data.base import ImageDataset
from stealguard.device import DeviceLike, resolve_device
from stealguard.models.registry import create
from stealguard.models.training import fit


def _query_images(queryset: Any) -> tuple[Tensor, str]:
    """The float pixel tensor ``(N, C, H, W)`` and a name of an ``ImageDataset`` or a tensor."""
    if isinstance(queryset, Tensor):
        images, name = queryset, "tensor"
    elif isinstance(queryset, ImageDataset):
        images, name = queryset.tensors()[0], queryset.name
    else:
        raise TypeError(f"queryset must be an ImageDataset or a float tensor (N, C, H, W), got {type(queryset).__name__}")
    if not images.is_floating_point() or images.dim() < 2:
        raise TypeError(f"queryset images must be a floating-point tensor (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("queryset must hold at least one image, got 0")
    if not bool(torch.isfinite(images).all()):
        raise ValueError("queryset images must be finite; they contain NaN or Inf")
    return images.float().cpu(), name


class Knockoff(Attack):
    """Knockoff Nets (random policy): query random query-set images, train on the answers.

    Sampling: ``budget`` distinct images drawn uniformly without replacement. When ``budget``
    exceeds the query set, the set is cycled in fresh random orders (every image is sent
    ``floor(budget / N)`` or ``ceil(budget / N)`` times), so exactly ``budget`` queries are
    still issued. The replica is trained with :func:`stealguard.models.training.fit` on the
    returned probability vectors (soft cross-entropy), or on their argmax labels when
    ``train_on="argmax"``.

    Args:
        queryset: the attacker's images: an ``ImageDataset`` (use
            ``stealguard.data.load_queryset(..., input_shape=victim.input_shape)``) or a float
            tensor ``(N, C, H, W)`` in [0, 1].
        replica_arch: architecture name for ``stealguard.models.create``; ``None`` when
            ``replica_factory`` is given (the harness passes the victim's arch). The replica
            normalises inputs with the query set's per-channel mean/std.
        replica_factory: zero-argument callable returning a fresh ``nn.Module`` mapping
            ``(N, C, H, W)`` to logits ``(N, K)``; takes precedence over ``replica_arch``.
        epochs: training epochs, >= 1 (default 30).
        batch_size: training batch size, >= 1 (default 64).
        lr: learning rate, > 0 (default 1e-3).
        optimizer: ``"adam"`` (default) or ``"sgd"``.
        momentum: SGD momentum in [0, 1) (default 0.9).
        weight_decay: L2 penalty >= 0 (default 5e-4).
        schedule: learning-rate schedule ``"cosine"`` (default), ``"step"`` or ``"none"``.
        seed: seeds query sampling, replica initialisation and training (default 0).
        device: where the replica trains (``auto``, ``cpu``, ``cuda``).
        progress: tqdm bars (stderr) for querying and training.
        query_batch_size: images per black-box call, >= 1 (default 256).
        train_on: ``"probs"`` (default; soft labels) or ``"argmax"`` (hard labels).

    Raises:
        TypeError, ValueError: a parameter of the wrong type or out of range (named in the message).

    Example:
        >>> from stealguard import data, models
        >>> victim = models.create("mlp", input_shape=(1, 8, 8), num_classes=10)
        >>> box = BlackBox(victim, budget=50, device="cpu")
        >>> attack = Knockoff(queryset=data.load_dataset("digits", split="test"), replica_arch="mlp",
        ...                   epochs=1, device="cpu", progress=False)
        >>> replica = attack.run(box, 50)
        >>> box.queries_used, replica(torch.zeros(2, 1, 8, 8)).shape
        (50, torch.Size([2, 10]))
    """

    name = "knockoff"

    def __init__(
        self,
        *,
        queryset: Any,
        replica_arch: str | None = None,
        replica_factory: Callable[[], nn.Module] | None = None,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 1e-3,
        optimizer: str = "adam",
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        schedule: str = "cosine",
        seed: int = 0,
        device: DeviceLike = "auto",
        progress: bool = True,
        query_batch_size: int = 256,
        train_on: str = "probs",
    ) -> None:
        self.images, self.queryset_name = _query_images(queryset)
        if replica_arch is not None and not isinstance(replica_arch, str):
            raise TypeError(f"replica_arch must be a string or None, got {replica_arch!r}")
        if replica_factory is not None and not callable(replica_factory):
            raise TypeError(f"replica_factory must be callable or None, got {replica_factory!r}")
        self.replica_arch = replica_arch
        self.replica_factory = replica_factory
        self.epochs = check_int("epochs", epochs, low=1)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.lr = check_number("lr", lr, low=0, low_inclusive=False)
        self.optimizer = check_choice("optimizer", optimizer, ("adam", "sgd"))
        self.momentum = check_number("momentum", momentum, low=0, high=1, high_inclusive=False)
        self.weight_decay = check_number("weight_decay", weight_decay, low=0)
        self.schedule = check_choice("schedule", schedule, ("cosine", "step", "none"))
        self.seed = check_int("seed", seed, low=0)
        self.device = resolve_device(device)
        self.progress = check_bool("progress", progress)
        self.query_batch_size = check_int("query_batch_size", query_batch_size, low=1)
        self.train_on = check_choice("train_on", train_on, ("probs", "argmax"))

    def _run(self, blackbox: BlackBox, budget: int) -> nn.Module:
        if tuple(self.images.shape[1:]) != tuple(blackbox.input_shape):
            raise ValueError(
                f"query set images have shape {tuple(self.images.shape[1:])} but the black box expects "
                f"{tuple(blackbox.input_shape)}; load the query set with "
                f"load_queryset(..., input_shape={tuple(blackbox.input_shape)})"
            )
        replica = self._make_replica(blackbox)
        generator = torch.Generator().manual_seed(self.seed)
        inputs = self.images[self._sample(budget, generator)]
        answers = self._query(blackbox, inputs)
        targets = answers if self.train_on == "probs" else answers.argmax(dim=1)
        fit(
            replica,
            inputs,
            targets,
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer=self.optimizer,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            schedule=self.schedule,
            seed=self.seed,
            device=self.device,
            progress=self.progress,
            desc="train replica",
        )
        return replica.eval()

    def _sample(self, budget: int, generator: torch.Generator) -> Tensor:
        """Indices of ``budget`` query images: one random permutation, repeated if the set is too small."""
        n = self.images.shape[0]
        rounds = -(-budget // n)
        order = torch.cat([torch.randperm(n, generator=generator) for _ in range(rounds)])
        return order[:budget]

    def _query(self, blackbox: BlackBox, inputs: Tensor) -> Tensor:
        answers = []
        with tqdm(total=inputs.shape[0], desc="query black box", unit="img", disable=not self.progress) as bar:
            for batch in inputs.split(self.query_batch_size):
                answers.append(blackbox.query(batch).float().cpu())
                bar.update(batch.shape[0])
        return torch.cat(answers)

    def _make_replica(self, blackbox: BlackBox) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            if self.replica_factory is not None:
                return self.replica_factory()
            if self.replica_arch is None:
                raise ValueError("Knockoff needs replica_arch or replica_factory to build the replica; both are None")
            dims = [0] + list(range(2, self.images.dim()))
            mean = self.images.mean(dim=dims).tolist()
            std = self.images.std(dim=dims).clamp_min(1e-3).tolist()
            return create(
                self.replica_arch,
                input_shape=tuple(blackbox.input_shape),
                num_classes=blackbox.num_classes,
                mean=mean,
                std=std,
            )

    def params(self) -> dict[str, Any]:
        factory = self.replica_factory
        return {
            "queryset": self.queryset_name,
            "queryset_size": int(self.images.shape[0]),
            "replica_arch": self.replica_arch,
            "replica_factory": None if factory is None else getattr(factory, "__qualname__", repr(factory)),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "optimizer": self.optimizer,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "schedule": self.schedule,
            "seed": self.seed,
            "query_batch_size": self.query_batch_size,
            "train_on": self.train_on,
        }
