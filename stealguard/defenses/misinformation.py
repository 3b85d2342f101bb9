"""The misinformation model of ``adaptive_misinformation``: training, saving next to the victim, loading.

Kariyappa & Qureshi, "Defending Against Model Stealing Attacks with Adaptive Misinformation",
CVPR 2020 (arXiv:1911.07100): the misinformation function ``f^`` has the victim's
architecture and is trained on the victim's (in-distribution) training data to put low
probability on the true class, minimising::

    L(x, y) = -log(1 - softmax(f^(x))_y)

It lives in ``<victim_dir>/misinformation/`` (``model.safetensors`` + ``card.json``, written by
:func:`stealguard.models.save_model`; never pickled).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from stealguard import data as sgdata
from stealguard import models
from stealguard._checks import check_bool, check_choice, check_int, check_number
from stealguard.device import DeviceLike, resolve_device
from stealguard.models.base import Classifier
from stealguard.models.training import OPTIMIZERS, make_optimizer

MISINFORMATION_DIR = "misinformation"
"""Sub-directory of a victim directory holding its misinformation model."""

TRAIN_KEYS = ("epochs", "lr", "optimizer", "batch_size")
"""Training settings copied from the victim's card (``card.train``) when present."""

FALLBACK_TRAINING: dict[str, Any] = {"epochs": 10, "lr": 1e-3, "optimizer": "adam", "batch_size": 64}
"""Settings used where the victim's card does not say how it was trained."""


def misinformation_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean of ``-log(1 - softmax(z)_y)`` over the batch, finite even when ``softmax(z)_y -> 1``.

    Computed as ``logsumexp_j z_j - logsumexp_{j != y} z_j`` (``1 - p_y`` is the softmax mass
    of the other classes), which needs no clamping and has exact gradients.

    Shape:
        logits ``(N, K)`` float with K >= 2; labels int64 ``(N,)`` in [0, K); returns a scalar >= 0.

    Raises:
        ValueError: K < 2, or shapes that do not match.
    """
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (N, K) with K >= 2, got {tuple(logits.shape)}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"labels must have shape ({logits.shape[0]},), got {tuple(labels.shape)}")
    true = torch.nn.functional.one_hot(labels, logits.shape[1]).bool()
    others = logits.masked_fill(true, -math.inf)
    return (torch.logsumexp(logits, dim=1) - torch.logsumexp(others, dim=1)).mean()


def _batches(order: Tensor, batch_size: int) -> list[Tensor]:
    """``order`` split into batches; a trailing batch of one joins the previous one (BatchNorm needs 2)."""
    chunks = list(order.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2] = torch.cat([chunks[-2], chunks.pop()])
    return chunks


def train_misinformation_model(
    train_set: Any,
    *,
    arch: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    epochs: int = 10,
    lr: float = 1e-3,
    optimizer: str = "adam",
    batch_size: int = 64,
    seed: int = 0,
    device: DeviceLike = "auto",
    progress: bool = True,
) -> Classifier:
    """Train a misinformation model ``f^`` minimising ``-log(1 - softmax(f^(x))_y)`` on ``train_set``.

    The network is ``stealguard.models.create(arch, ...)`` initialised under
    ``torch.manual_seed(seed)``; batches are drawn in an order from a generator seeded with
    ``seed``; the learning rate follows a cosine schedule from ``lr`` to 0 over all steps. The
    global RNG is restored afterwards. Same data and seed give the same weights on the CPU.

    Args:
        train_set: an ``ImageDataset`` (``tensors()`` -> images ``(N, C, H, W)`` in [0, 1], labels ``(N,)``).
        arch: a name from ``stealguard.models.names()`` (the victim's).
        input_shape: ``(C, H, W)``, the data set's. num_classes: K >= 2, the data set's.
        mean, std: per-channel normalisation held by the model (the victim's); default 0 and 1.
        epochs: >= 1 (default 10). lr: > 0 (default 1e-3). optimizer: ``"adam"`` (default) or ``"sgd"``
            (momentum 0.9). batch_size: >= 1 (default 64). seed: >= 0.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``. progress: tqdm bar on stderr.

    Returns:
        the trained :class:`~stealguard.models.base.Classifier`, on the CPU, in eval mode.

    Raises:
        ValueError, TypeError: a parameter out of range or of the wrong type; data whose shape
            or labels disagree with ``input_shape``/``num_classes``.
        FloatingPointError: the loss became NaN or infinite (lower ``lr``).
    """
    if arch not in models.names():
        raise ValueError(f"arch must be one of {', '.join(models.names())}, got {arch!r}")
    shape = models.check_input_shape(input_shape)
    num_classes = check_int("num_classes", num_classes, low=2)
    epochs = check_int("epochs", epochs, low=1)
    lr = check_number("lr", lr, low=0.0, low_inclusive=False)
    optimizer = check_choice("optimizer", optimizer, OPTIMIZERS)
    batch_size = check_int("batch_size", batch_size, low=1)
    seed = check_int("seed", seed, low=0)
    check_bool("progress", progress)
    target_device = resolve_device(device)
    images, labels = train_set.tensors()
    if tuple(images.shape[1:]) != shape or images.shape[0] < 1:
        raise ValueError(f"train_set images must have shape (N >= 1, {', '.join(map(str, shape))}), got {tuple(images.shape)}")
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"train_set labels must be in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]")

    rng_devices = [target_device.index or 0] if target_device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(seed)
        model = models.create(arch, input_shape=shape, num_classes=num_classes, mean=mean, std=std).to(target_device)
        opt = make_optimizer(model, optimizer, lr, 0.9, 0.0)
        generator = torch.Generator().manual_seed(seed)
        total_steps = epochs * len(_batches(torch.arange(images.shape[0]), batch_size))
        model.train()
        step = 0
        with tqdm(total=total_steps, desc=f"misinformation {arch}", disable=not progress, leave=False) as bar:
            for epoch in range(epochs):
                for index in _batches(torch.randperm(images.shape[0], generator=generator), batch_size):
                    for group in opt.param_groups:
                        group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
                    logits = model(images[index].to(target_device, torch.float32))
                    loss = misinformation_loss(logits, labels[index].to(target_device))
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise FloatingPointError(f"misinformation loss became {value} at epoch {epoch + 1}, step {step + 1}; lower lr")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    step += 1
                    bar.update(1)
    return model.cpu().eval()


def misinformation_dir(victim_dir: Path | str) -> Path:
    """Where the misinformation model of the victim saved in ``victim_dir`` lives."""
    return Path(victim_dir) / MISINFORMATION_DIR


def misinformation_for_victim(
    card: Any,
    *,
    victim_dir: Path | str | None = None,
    data_root: Path | str | None = None,
    download: bool = False,
    device: DeviceLike = "auto",
    progress: bool = True,
) -> Classifier:
    """Load the victim's misinformation model from ``<victim_dir>/misinformation/``, or train and save it there.

    Training uses the training split of ``card.dataset`` (``stealguard.data.load_dataset``), the
    victim's arch and normalisation, the victim's training settings (``card.train``'s epochs,
    lr, optimizer, batch_size, else :data:`FALLBACK_TRAINING`) and seed ``card.seed`` (0 when
    absent): the model belongs to the victim, not to one run. Without ``victim_dir`` it is
    trained and not saved.

    Args:
        card: the victim's ``ModelCard``. victim_dir: the victim's directory, or None.
        data_root, download: as :func:`stealguard.data.load_dataset`.
        device: where training runs. progress: tqdm bar on stderr.

    Returns:
        the misinformation model (a ``Classifier``), on the CPU, in eval mode.

    Raises:
        ValueError: a saved model whose input shape or classes differ from the victim's.
        stealguard.data.DataNotFoundError: the victim's data set is missing.
    """
    if victim_dir is not None:
        directory = misinformation_dir(victim_dir)
        if (directory / "card.json").is_file():
            model, saved = models.load_model(directory, device="cpu")
            if tuple(saved.input_shape) != tuple(card.input_shape) or saved.num_classes != card.num_classes:
                raise ValueError(
                    f"misinformation model in {directory} has input shape {saved.input_shape} and {saved.num_classes} classes, "
                    f"the victim {tuple(card.input_shape)} and {card.num_classes}; delete the directory to retrain it"
                )
            return model
    settings = dict(FALLBACK_TRAINING)
    settings.update({key: card.train[key] for key in TRAIN_KEYS if key in (card.train or {})})
    seed = card.seed if card.seed is not None else 0
    train_set = sgdata.load_dataset(card.dataset, root=data_root, split="train", download=download)
    model = train_misinformation_model(
        train_set,
        arch=card.arch,
        input_shape=tuple(card.input_shape),
        num_classes=card.num_classes,
        mean=card.mean,
        std=card.std,
        **settings,
        seed=seed,
        device=device,
        progress=progress,
    )
    if victim_dir is not None:
        saved_card = models.ModelCard(
            arch=card.arch,
            dataset=card.dataset,
            input_shape=tuple(card.input_shape),
            num_classes=card.num_classes,
            classes=list(card.classes),
            mean=card.mean,
            std=card.std,
            train=dict(settings, loss="-log(1 - p_true)", train_size=len(train_set)),
            seed=seed,
        )
        models.save_model(model, saved_card, misinformation_dir(victim_dir))
    return model
