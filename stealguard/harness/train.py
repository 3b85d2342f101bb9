"""Train a victim classifier on a named data set and save it (safetensors + JSON card)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stealguard import data as sgdata
from stealguard import models
from stealguard._checks import check_bool, check_int
from stealguard.device import DeviceLike, resolve_device
from stealguard.models.base import Classifier

TRAINING_DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"epochs": 20, "lr": 1e-3, "optimizer": "adam", "batch_size": 64},
    "lenet": {"epochs": 5, "lr": 0.05, "optimizer": "sgd", "batch_size": 64},
    "vgg16_bn": {"epochs": 30, "lr": 0.05, "optimizer": "sgd", "batch_size": 128},
    "resnet18": {"epochs": 30, "lr": 0.05, "optimizer": "sgd", "batch_size": 128},
    "resnet9": {
        "epochs": 20, "lr": 0.2, "optimizer": "sgd", "batch_size": 256,
        "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "schedule": "onecycle",
    },
    "resnet9_w64": {
        "epochs": 24, "lr": 0.4, "optimizer": "sgd", "batch_size": 512,
        "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "schedule": "onecycle",
    },
}
"""Per-architecture training settings used where ``train_victim`` gets ``None``. lenet: 99.30% test
accuracy on MNIST in 95 s on 2 CPU cores (`stealguard train --dataset mnist --arch lenet`, seed 0).

resnet9 (half width, the CPU victim for CIFAR-10; README "CIFAR-10 victims"): Page's DAWNBench
recipe (SGD with Nesterov momentum 0.9, weight decay 5e-4, piecewise-linear one-cycle learning
rate, crop + flip augmentation, no label smoothing so that the posteriors a defense perturbs
are those of plain cross-entropy) at batch 256 with the peak learning rate scaled linearly
from Page's 0.4 at batch 512, which doubles the optimisation steps of a 25,000-image half;
20 epochs, sized for a CPU. resnet9_w64 is Page's original (24 epochs, batch
512, lr 0.4), for machines with a GPU."""

FALLBACK_DEFAULTS: dict[str, Any] = {"epochs": 10, "lr": 0.01, "optimizer": "sgd", "batch_size": 128}


DP_SETTINGS = ("epochs", "lr", "optimizer", "batch_size", "momentum", "weight_decay", "schedule")
"""The training settings ``fit_dp`` takes; others (``nesterov``, ``label_smoothing``) apply to ``fit`` only."""

AUGMENT_CHOICES = ("auto", "on", "off")
AUGMENT_PADDING = 4
AUGMENT_MIN_SIDE = 32


def training_defaults(arch: str) -> dict[str, Any]:
    """``epochs``, ``lr``, ``optimizer``, ``batch_size`` for ``arch`` (a copy), plus any other
    :func:`stealguard.models.fit` settings the architecture fixes (``schedule``, ``nesterov``, ...)."""
    return dict(TRAINING_DEFAULTS.get(arch, FALLBACK_DEFAULTS))


def default_augment(input_shape: tuple[int, int, int]) -> bool:
    """Whether crop + flip augmentation is on by default: for 3-channel images of at least
    32x32 (CIFAR-like photos), not for gray digits (MNIST-like) or tiny images."""
    channels, height, width = input_shape
    return channels == 3 and min(height, width) >= AUGMENT_MIN_SIDE


def _data_record(dataset: str) -> dict[str, Any]:
    """What the card records of the training data: name, half, split seed, whether it needs a root."""
    spec = sgdata.parse_dataset_spec(dataset)
    return {
        "name": spec.name,
        "half": spec.half,
        "split_seed": spec.split_seed,
        "stratified": spec.half is not None,
        "needs_root": spec.name == "imagefolder",
    }


def fit_victim(
    train_set: Any,
    test_set: Any,
    *,
    arch: str,
    epochs: int | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    device: DeviceLike = "auto",
    out: Path | str | None = None,
    progress: bool = True,
    dp: Mapping[str, Any] | None = None,
    augment: bool | None = None,
    label_smoothing: float | None = None,
    dataset: str | None = None,
) -> tuple[Classifier, Any]:
    """Train ``arch`` on ``train_set``, measure it on ``test_set`` and (with ``out``) save it.

    The model normalises with ``stealguard.data.default_normalization(train_set)``; weights
    are initialised under ``torch.manual_seed(seed)`` and trained with
    :func:`stealguard.models.training.fit` (seeded by ``seed``). With augmentation each batch
    gets a random crop with 4 pixels of zero padding and a random horizontal flip
    (:func:`stealguard.models.augment_crop_flip`, batched tensor ops drawing from the seeded
    shuffling generator); by default it is on for 3-channel images of at least 32x32
    (:func:`default_augment`). With ``dp`` the victim is trained by DP-SGD
    (:func:`stealguard.models.dp.fit_dp`, the settings it takes, BatchNorm replaced by
    GroupNorm) and the card's ``dp`` record holds the parameters and the epsilon reached.

    The card's ``train`` record holds the settings used, ``augment`` (and with it
    ``augment_padding`` and ``augment_flip``), ``train_size`` and, when ``dataset`` is given,
    ``data``: the data set's ``name``, ``half`` and ``split_seed`` (None for a whole data set),
    ``stratified`` and ``needs_root`` (an ImageFolder tree has no default location).

    Args:
        train_set, test_set: ``ImageDataset`` s with the same input shape and classes.
        arch: a name from ``stealguard.models.names()``.
        epochs, lr, optimizer, batch_size: ``None`` takes :func:`training_defaults`.
        seed: >= 0. device: where training runs. out: directory for ``save_model``.
        progress: tqdm bar on stderr.
        dp: None (ordinary training) or DP-SGD settings ``noise_multiplier``,
            ``max_grad_norm`` and optionally ``delta``, ``accountant``
            (:func:`stealguard.models.dp.check_dp_params`).
        augment: crop + flip augmentation on (True) or off (False); None (default) takes
            :func:`default_augment` of the input shape.
        label_smoothing: eps in [0, 1) for ``fit``; None takes the architecture's default
            (0 unless :func:`training_defaults` says otherwise). Not available with ``dp``.
        dataset: the data-set spec recorded as the card's ``dataset`` (what ``run_attack``
            reloads the test split with, e.g. ``"cifar10:half=0,seed=0"`` or
            ``"imagefolder:half=0,seed=0"``); default ``train_set.name``.

    Returns:
        ``(model, card)``: the trained classifier (eval mode, cpu) and its ``ModelCard``.

    Raises:
        ValueError, TypeError: unknown arch, a parameter out of range, a malformed
            ``dataset`` spec, ``label_smoothing`` with ``dp``.
    """
    if arch not in models.names():
        raise ValueError(f"unknown architecture {arch!r}; available: {', '.join(models.names())}")
    check_int("seed", seed, low=0)
    dp_params = None
    if dp is not None:
        from stealguard.models.dp import check_dp_params

        dp_params = check_dp_params(dp)
    if augment is not None:
        check_bool("augment", augment)
    data_record = None if dataset is None else _data_record(dataset)
    settings = training_defaults(arch)
    given = {"epochs": epochs, "lr": lr, "optimizer": optimizer, "batch_size": batch_size, "label_smoothing": label_smoothing}
    settings.update({key: value for key, value in given.items() if value is not None})
    if settings["optimizer"] != "sgd":
        settings.pop("nesterov", None)
    if dp_params is not None:
        if settings.get("label_smoothing"):
            raise ValueError("label_smoothing is not available with dp (DP-SGD trains on plain cross-entropy)")
        settings = {key: value for key, value in settings.items() if key in DP_SETTINGS}
    device = resolve_device(device)
    mean, std = (tuple(float(v) for v in values) for values in sgdata.default_normalization(train_set))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = models.create(
            arch, input_shape=train_set.input_shape, num_classes=train_set.num_classes, mean=mean, std=std
        )
    images, labels = train_set.tensors()
    augmenting = default_augment(train_set.input_shape) if augment is None else augment
    augment_fn = models.augment_crop_flip(AUGMENT_PADDING) if augmenting else None
    dp_record = None
    if dp_params is not None:
        from stealguard.models.dp import fit_dp

        result = fit_dp(
            model,
            images,
            labels,
            **dp_params,
            **settings,
            seed=seed,
            device=device,
            progress=progress,
            desc=f"DP-SGD {arch} on {train_set.name}",
            augment=augment_fn,
        )
        model, dp_record = result.model, result.record()
    else:
        models.fit(
            model,
            images,
            labels,
            **settings,
            seed=seed,
            device=device,
            progress=progress,
            desc=f"train {arch} on {train_set.name}",
            augment=augment_fn,
        )
    test_images, test_labels = test_set.tensors()
    test_accuracy = models.accuracy_on(model, test_images, test_labels, device=device)
    model = model.cpu().eval()
    record = dict(settings, augment=augmenting)
    if augmenting:
        record.update(augment_padding=AUGMENT_PADDING, augment_flip=True)
    record["train_size"] = len(labels)
    if data_record is not None:
        record["data"] = data_record
    card = models.ModelCard(
        arch=arch,
        dataset=str(sgdata.parse_dataset_spec(dataset)) if dataset is not None else train_set.name,
        input_shape=tuple(train_set.input_shape),
        num_classes=train_set.num_classes,
        classes=list(train_set.classes),
        mean=mean,
        std=std,
        test_accuracy=test_accuracy,
        train=record,
        seed=seed,
        dp=dp_record,
    )
    if out is not None:
        models.save_model(model, card, Path(out))
    return model, card


def train_victim(
    *,
    dataset: str,
    data_root: Path | str | None = None,
    arch: str,
    epochs: int | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    device: DeviceLike = "auto",
    out: Path | str | None = None,
    progress: bool = True,
    download: bool = False,
    dp: Mapping[str, Any] | None = None,
    augment: bool | None = None,
    label_smoothing: float | None = None,
) -> tuple[Classifier, Any]:
    """Load ``dataset`` (train and test split) and train a victim with :func:`fit_victim` (DP-SGD with ``dp``).

    ``dataset`` is a data-set spec (:func:`stealguard.data.load_dataset`): a name, optionally
    with a half of the train split, ``cifar10:half=0`` or ``imagefolder:half=0,seed=S`` (then
    ``data_root`` is the tree holding ``train/`` and ``test/``). The victim trains on that half
    and is tested on the whole test split; the card records the canonical spec
    (``cifar10:half=0,seed=0``), so :func:`stealguard.harness.run_attack` finds the same test
    split and the attacker may query the other half (``cifar10:half=1``). Other arguments as
    :func:`fit_victim`.

    Raises:
        stealguard.data.DataNotFoundError: the data set's files are not under ``data_root``
            (the message names the expected paths).
        ValueError: unknown data set or arch, a malformed spec, a parameter out of range.
    """
    if arch not in models.names():
        raise ValueError(f"unknown architecture {arch!r}; available: {', '.join(models.names())}")
    train_set = sgdata.load_dataset(dataset, root=data_root, split="train", download=download)
    test_set = sgdata.load_dataset(dataset, root=data_root, split="test", download=download)
    return fit_victim(
        train_set,
        test_set,
        arch=arch,
        epochs=epochs,
        lr=lr,
        optimizer=optimizer,
        batch_size=batch_size,
        seed=seed,
        device=device,
        out=out,
        progress=progress,
        dp=dp,
        augment=augment,
        label_smoothing=label_smoothing,
        dataset=dataset,
    )


def quantize_saved_victim(
    victim_dir: Path | str,
    *,
    out: Path | str,
    data_root: Path | str | None = None,
    calibration: int = 512,
    seed: int = 0,
    download: bool = False,
) -> tuple[Classifier, Any]:
    """int8-quantize the float victim saved in ``victim_dir`` and save the copy to ``out``.

    Calibrates on ``calibration`` images of the victim's own training data (the card's data-set
    spec, so a ``cifar10:half=0`` victim calibrates on its half) drawn with ``seed``, measures
    float and int8 test accuracy (:func:`stealguard.models.quantize_victim`) and writes
    ``model.safetensors`` + ``card.json`` to ``out``.

    Returns:
        ``(int8_model, int8_card)``.

    Raises:
        FileNotFoundError: no victim in ``victim_dir``. stealguard.data.DataNotFoundError: its
            data set is missing. ValueError: ``out`` is ``victim_dir``, the victim is already
            int8, its arch cannot be quantized, ``calibration`` or ``seed`` out of range.
    """
    if Path(out).resolve() == Path(victim_dir).resolve():
        raise ValueError(f"out {str(out)!r} must differ from the victim directory: the float victim would be overwritten")
    if not Path(victim_dir).is_dir():
        raise FileNotFoundError(f"victim directory {str(victim_dir)!r} does not exist; train one with `stealguard train ... --out {victim_dir}`")
    model, card = models.load_model(victim_dir, device="cpu")
    if card.quantization is not None:
        raise ValueError(f"victim {victim_dir} is already int8-quantized; quantize its float original")
    train_images, _ = sgdata.load_dataset(card.dataset, root=data_root, split="train", download=download).tensors()
    test_images, test_labels = sgdata.load_dataset(card.dataset, root=data_root, split="test", download=download).tensors()
    int8_model, int8_card = models.quantize_victim(
        model, card, train_images=train_images, test_images=test_images, test_labels=test_labels, calibration=calibration, seed=seed
    )
    models.save_model(int8_model, int8_card, out)
    return int8_model, int8_card
