"""``ReplicaAttack``: what every attack that trains a replica from a query set shares.

It holds the attacker's images, builds and trains the replica, and carries the evasion
variants that work with every attack: ``train_on="argmax"`` (train on top-1 labels only),
``repeat`` (send each input n times and average), ``invert`` (undo a known defense on every
answer, :mod:`stealguard.attacks.inversion`), any replica architecture
(``replica_arch`` / ``replica_factory``) and either optimizer. Each attack declares the
training schedule of its paper in :attr:`ReplicaAttack.training_defaults`; a parameter left
at ``None`` takes that default.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from stealguard._checks import check_bool, check_choice, check_int, check_number
from stealguard.attacks.angle_probe import AngleProbe, steps_per_epoch
from stealguard.attacks.base import Attack
from stealguard.attacks.inversion import check_invert_spec, inverter_from_spec
from stealguard.attacks.oracle import Oracle
from stealguard.attacks.replica_source import build_replica, check_replica_source, replica_source_params
from stealguard.blackbox import BlackBox
from stealguard.data.base import ImageDataset
from stealguard.device import DeviceLike, resolve_device
from stealguard.models.training import SCHEDULES, fit

TRAIN_ON = ("probs", "argmax")
OPTIMIZERS = ("adam", "sgd")


def query_images(queryset: Any) -> tuple[Tensor, Tensor | None, str]:
    """Float pixels ``(N, C, H, W)`` on the CPU, labels ``(N,)`` or ``None``, and a name.

    Args:
        queryset: an ``ImageDataset`` (its labels are kept, e.g. for the adaptive policy's
            arms) or a float tensor ``(N, C, H, W)`` in [0, 1] (no labels).

    Raises:
        TypeError: not a data set or float tensor. ValueError: empty, or NaN/Inf pixels.
    """
    labels: Tensor | None = None
    if isinstance(queryset, Tensor):
        images, name = queryset, "tensor"
    elif isinstance(queryset, ImageDataset):
        images, labels = queryset.tensors()
        name = queryset.name
    else:
        raise TypeError(f"queryset must be an ImageDataset or a float tensor (N, C, H, W), got {type(queryset).__name__}")
    if not images.is_floating_point() or images.dim() < 2:
        raise TypeError(f"queryset images must be a floating-point tensor (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("queryset must hold at least one image, got 0")
    if not bool(torch.isfinite(images).all()):
        raise ValueError("queryset images must be finite; they contain NaN or Inf")
    return images.float().cpu(), None if labels is None else labels.long().cpu(), name


class ReplicaAttack(Attack):
    """Base of attacks that query with images and train a replica on the answers.

    Args:
        queryset: the attacker's images: an ``ImageDataset`` (load it with
            ``stealguard.data.load_queryset(..., input_shape=victim.input_shape)``) or a float
            tensor ``(N, C, H, W)`` in [0, 1].
        replica_arch: architecture name for ``stealguard.models.create`` (the harness passes
            the victim's); the replica normalises inputs with the attacker's images' mean/std.
        replica_factory: zero-argument callable returning a fresh ``nn.Module`` mapping
            ``(N, C, H, W)`` to logits ``(N, K)``; takes precedence over ``replica_arch``.
        epochs: final training epochs, >= 1. batch_size: >= 1. lr: > 0.
        optimizer: ``"adam"`` or ``"sgd"``. momentum: SGD momentum in [0, 1).
        weight_decay: L2 penalty >= 0. schedule: ``"cosine"``, ``"step"``, ``"onecycle"`` or ``"none"``
            (see :func:`stealguard.models.training.fit`). ``None`` takes the attack's
            :attr:`training_defaults`.
        seed: >= 0; seeds sampling, replica initialisation and training.
        device: where the replica trains (``auto``, ``cpu``, ``cuda``).
        progress: tqdm bars (stderr).
        query_batch_size: inputs per black-box call, >= 1 (default 256).
        train_on: ``"probs"`` (soft cross-entropy on the answers, default) or ``"argmax"``
            (cross-entropy on their top-1 labels; the evasion that ignores perturbed mass).
        repeat: send each input this many times and train on the mean answer, >= 1
            (default 1); the attack then asks about ``budget // repeat`` distinct inputs.
        angle_probe: record the paper's angular deviation on the replica while it trains,
            on this many of its training inputs, >= 0 (default 0: off); reported by
            :meth:`training_report` (:mod:`stealguard.attacks.angle_probe`).
        invert: a defense spec (``"mad:epsilon=0.5"``, or ``"mad"`` to estimate the budget) whose
            answer inversion is applied to every answer before training, or None (default).

    Raises:
        TypeError, ValueError: a parameter of the wrong type or out of range (named in the message).
    """

    training_defaults: ClassVar[dict[str, Any]] = {
        "epochs": 30,
        "batch_size": 64,
        "lr": 1e-3,
        "optimizer": "adam",
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "schedule": "cosine",
    }

    def __init__(
        self,
        *,
        queryset: Any,
        replica_arch: str | None = None,
        replica_factory: Callable[[], nn.Module] | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        optimizer: str | None = None,
        momentum: float | None = None,
        weight_decay: float | None = None,
        schedule: str | None = None,
        seed: int = 0,
        device: DeviceLike = "auto",
        progress: bool = True,
        query_batch_size: int = 256,
        train_on: str = "probs",
        repeat: int = 1,
        invert: str | None = None,
        angle_probe: int = 0,
    ) -> None:
        self.invert = check_invert_spec(invert)
        self.images, self.labels, self.queryset_name = query_images(queryset)
        self.replica_arch, self.replica_factory = check_replica_source(replica_arch, replica_factory)
        given = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
                 "momentum": momentum, "weight_decay": weight_decay, "schedule": schedule}
        settings = {key: self.training_defaults[key] if value is None else value for key, value in given.items()}
        self.epochs = check_int("epochs", settings["epochs"], low=1)
        self.batch_size = check_int("batch_size", settings["batch_size"], low=1)
        self.lr = check_number("lr", settings["lr"], low=0, low_inclusive=False)
        self.optimizer = check_choice("optimizer", settings["optimizer"], OPTIMIZERS)
        self.momentum = check_number("momentum", settings["momentum"], low=0, high=1, high_inclusive=False)
        self.weight_decay = check_number("weight_decay", settings["weight_decay"], low=0)
        self.schedule = check_choice("schedule", settings["schedule"], SCHEDULES)
        self.seed = check_int("seed", seed, low=0)
        self.device = resolve_device(device)
        self.progress = check_bool("progress", progress)
        self.query_batch_size = check_int("query_batch_size", query_batch_size, low=1)
        self.train_on = check_choice("train_on", train_on, TRAIN_ON)
        self.repeat = check_int("repeat", repeat, low=1)
        self.angle_probe = check_int("angle_probe", angle_probe, low=0)
        self.training_angles: list[dict[str, Any]] = []
        self._probe_box: BlackBox | None = None

    def oracle(self, blackbox: BlackBox, budget: int) -> Oracle:
        """The budgeted view of ``blackbox`` this run asks through (closes its bar on exit)."""
        self._check_shape(blackbox)
        self._probe_box = blackbox
        inverter = None if self.invert is None else inverter_from_spec(self.invert)
        return Oracle(
            blackbox, budget, repeat=self.repeat, batch_size=self.query_batch_size, progress=self.progress, invert=inverter
        )

    def make_replica(self, blackbox: BlackBox, reference: Tensor, *, seed: int) -> nn.Module:
        """A freshly initialised replica, weights drawn with ``torch.manual_seed(seed)``.

        ``reference`` ``(N, C, H, W)``: the attacker's images whose per-channel mean and std
        the replica normalises with (when built from ``replica_arch``).
        """
        dims = [0] + list(range(2, reference.dim()))
        std = reference.std(dim=dims) if reference.shape[0] > 1 else torch.ones(reference.shape[1])
        return build_replica(
            self.replica_arch,
            self.replica_factory,
            blackbox,
            mean=reference.mean(dim=dims).tolist(),
            std=std.nan_to_num(1.0).clamp_min(1e-3).tolist(),
            seed=seed,
            owner=type(self).__name__,
        )

    def training_targets(self, answers: Tensor) -> Tensor:
        """What the replica is trained on: the answers ``(N, K)`` or their top-1 labels ``(N,)``."""
        return answers if self.train_on == "probs" else answers.argmax(dim=1)

    def train(
        self, replica: nn.Module, inputs: Tensor, answers: Tensor, *, desc: str = "train replica", probe: bool = True,
        **overrides: Any,
    ) -> nn.Module:
        """Train ``replica`` on ``(inputs, targets(answers))`` with this attack's settings; eval mode.

        ``overrides`` replace settings for this call (e.g. the shorter per-round schedule of
        the Jacobian attacks): any of epochs, batch_size, lr, optimizer, momentum,
        weight_decay, schedule, seed. ``probe``: record the angular deviation during this
        call when ``angle_probe`` is on (its history replaces the previous one).
        """
        settings: dict[str, Any] = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "schedule": self.schedule,
            "seed": self.seed,
        }
        settings.update(overrides)
        recorder = self._angle_recorder(replica, inputs, answers, settings["batch_size"]) if probe else None
        with recorder if recorder is not None else nullcontext():
            fit(replica, inputs, self.training_targets(answers), device=self.device, progress=self.progress, desc=desc, **settings)
        if recorder is not None:
            self.training_angles = recorder.history
        return replica.eval()

    def _angle_recorder(self, replica: nn.Module, inputs: Tensor, answers: Tensor, batch_size: int) -> AngleProbe | None:
        """An :class:`AngleProbe` on the first ``angle_probe`` training inputs, or None when off."""
        box = self._probe_box
        if self.angle_probe == 0 or box is None or inputs.shape[0] == 0:
            return None
        x = inputs[: self.angle_probe]
        with torch.no_grad():
            clean = torch.softmax(box.model(x.to(box.device, torch.float32)).float(), dim=1).cpu()
        k = answers.shape[1]

        def as_rows(targets: Tensor) -> Tensor:
            return targets.float() if targets.dim() == 2 else torch.nn.functional.one_hot(targets, k).float()

        used = as_rows(self.training_targets(answers[: self.angle_probe]))
        return AngleProbe(
            replica, x, as_rows(self.training_targets(clean)), used, steps=steps_per_epoch(inputs.shape[0], batch_size),
            device=self.device,
        )

    def training_report(self) -> dict[str, Any]:
        """``{"training_angular_deviation": [...]}`` (per epoch, degrees) when ``angle_probe`` is on, else ``{}``."""
        return {"training_angular_deviation": self.training_angles} if self.angle_probe else {}

    def _check_shape(self, blackbox: BlackBox) -> None:
        if tuple(self.images.shape[1:]) != tuple(blackbox.input_shape):
            raise ValueError(
                f"query set images have shape {tuple(self.images.shape[1:])} but the black box expects "
                f"{tuple(blackbox.input_shape)}; load the query set with "
                f"load_queryset(..., input_shape={tuple(blackbox.input_shape)})"
            )

    def params(self) -> dict[str, Any]:
        return {
            "queryset": self.queryset_name,
            "queryset_size": int(self.images.shape[0]),
            **replica_source_params(self.replica_arch, self.replica_factory),
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
            "repeat": self.repeat,
            "angle_probe": self.angle_probe,
            "invert": self.invert,
        }
