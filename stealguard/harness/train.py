"""Train a victim classifier on a named data set and save it (safetensors + JSON card)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stealguard import data as sgdata
from stealguard import models
from stealguard._checks import check_int
from stealguard.device import DeviceLike, resolve_device
from stealguard.models.base import Classifier

TRAINING_DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"epochs": 20, "lr": 1e-3, "optimizer": "adam", "batch_size": 64},
    "lenet": {"epochs": 5, "lr": 0.05, "optimizer": "sgd", "batch_size": 64},
    "vgg16_bn": {"epochs": 30, "lr": 0.05, "optimizer": "sgd", "batch_size": 128},
    "resnet18": {"epochs": 30, "lr": 0.05, "optimizer": "sgd", "batch_size": 128},
}
"""Per-architecture training settings used where ``train_victim`` gets ``None``. lenet: 99.30% test
accuracy on MNIST in 95 s on 2 CPU cores (`stealguard train --dataset mnist --arch lenet`, seed 0)."""

FALLBACK_DEFAULTS: dict[str, Any] = {"epochs": 10, "lr": 0.01, "optimizer": "sgd", "batch_size": 128}


def training_defaults(arch: str) -> dict[str, Any]:
    """``epochs``, ``lr``, ``optimizer``, ``batch_size`` for ``arch`` (a copy)."""
    return dict(TRAINING_DEFAULTS.get(arch, FALLBACK_DEFAULTS))


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
) -> tuple[Classifier, Any]:
    """Train ``arch`` on ``train_set``, measure it on ``test_set`` and (with ``out``) save it.

    The model normalises with ``stealguard.data.default_normalization(train_set)``; weights
    are initialised under ``torch.manual_seed(seed)`` and trained with
    :func:`stealguard.models.training.fit` (seeded by ``seed``). Three-channel data is
    trained with random crop + flip augmentation. With ``dp`` the victim is trained by
    DP-SGD (:func:`stealguard.models.dp.fit_dp`, same settings, BatchNorm replaced by
    GroupNorm) and the card's ``dp`` record holds the parameters and the epsilon reached.

    Args:
        train_set, test_set: ``ImageDataset`` s with the same input shape and classes.
        arch: a name from ``stealguard.models.names()``.
        epochs, lr, optimizer, batch_size: ``None`` takes :func:`training_defaults`.
        seed: >= 0. device: where training runs. out: directory for ``save_model``.
        progress: tqdm bar on stderr.
        dp: None (ordinary training) or DP-SGD settings ``noise_multiplier``,
            ``max_grad_norm`` and optionally ``delta``, ``accountant``
            (:func:`stealguard.models.dp.check_dp_params`).

    Returns:
        ``(model, card)``: the trained classifier (eval mode, cpu) and its ``ModelCard``.

    Raises:
        ValueError, TypeError: unknown arch, a parameter out of range.
    """
    if arch not in models.names():
        raise ValueError(f"unknown architecture {arch!r}; available: {', '.join(models.names())}")
    check_int("seed", seed, low=0)
    dp_params = None
    if dp is not None:
        from stealguard.models.dp import check_dp_params

        dp_params = check_dp_params(dp)
    settings = training_defaults(arch)
    given = {"epochs": epochs, "lr": lr, "optimizer": optimizer, "batch_size": batch_size}
    settings.update({key: value for key, value in given.items() if value is not None})
    device = resolve_device(device)
    mean, std = (tuple(float(v) for v in values) for values in sgdata.default_normalization(train_set))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = models.create(
            arch, input_shape=train_set.input_shape, num_classes=train_set.num_classes, mean=mean, std=std
        )
    images, labels = train_set.tensors()
    augment = models.augment_crop_flip() if train_set.input_shape[0] == 3 else None
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
            augment=augment,
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
            augment=augment,
        )
    test_images, test_labels = test_set.tensors()
    test_accuracy = models.accuracy_on(model, test_images, test_labels, device=device)
    model = model.cpu().eval()
    card = models.ModelCard(
        arch=arch,
        dataset=train_set.name,
        input_shape=tuple(train_set.input_shape),
        num_classes=train_set.num_classes,
        classes=list(train_set.classes),
        mean=mean,
        std=std,
        test_accuracy=test_accuracy,
        train=dict(settings, augment=augment is not None, train_size=len(labels)),
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
) -> tuple[Classifier, Any]:
    """Load ``dataset`` (train and test split) and train a victim with :func:`fit_victim` (DP-SGD with ``dp``).

    Raises:
        stealguard.data.DataNotFoundError: the data set's files are not under ``data_root``.
        ValueError: unknown data set or arch, a parameter out of range.
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
    )
