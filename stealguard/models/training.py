"""Supervised training and batched inference for classifiers (victims and replicas).

``fit`` trains on hard labels (cross-entropy) or on posteriors (soft cross-entropy, what
Knockoff Nets replicas train on: Orekondy, Schiele, Fritz, "Knockoff Nets: Stealing
Functionality of Black-Box Models", CVPR 2019, arXiv:1812.02766). Inputs are pixel-space
images in [0, 1]; the model normalises them itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from stealguard._checks import check_bool, check_choice, check_int, check_number
from stealguard.device import DeviceLike, resolve_device

Augment = Callable[[Tensor, torch.Generator], Tensor]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "step", "none", "onecycle")
ONECYCLE_PEAK = 0.2
"""Share of the steps over which ``onecycle`` warms up to the peak learning rate (Page's
DAWNBench ResNet-9 schedule peaks at epoch 5 of 24, about 0.2)."""
SOFT_TARGET_TOLERANCE = 1e-3


def soft_cross_entropy(logits: Tensor, probs: Tensor) -> Tensor:
    """Mean soft cross-entropy ``-(p * log_softmax(z)).sum(1).mean()``.

    Shape:
        logits ``(N, K)``, probs ``(N, K)`` rows on the simplex; returns a scalar.
    """
    return -(probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def _check_module(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _check_inputs(inputs: object) -> Tensor:
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    if not inputs.is_floating_point():
        raise TypeError(f"inputs must be a floating-point tensor in [0, 1], got dtype {inputs.dtype}")
    if inputs.dim() < 2:
        raise ValueError(f"inputs must have shape (N, ...) with at least 2 dimensions, got {tuple(inputs.shape)}")
    return inputs


def _check_targets(targets: object, n: int) -> tuple[Tensor, bool]:
    """Return ``(targets, soft)`` after checking hard labels (N,) or posteriors (N, K)."""
    if not isinstance(targets, Tensor):
        raise TypeError(f"targets must be a torch.Tensor, got {type(targets).__name__}")
    if targets.shape[:1] != (n,):
        raise ValueError(f"targets must have N = {n} rows like inputs, got shape {tuple(targets.shape)}")
    if targets.dtype == torch.int64 and targets.dim() == 1:
        if n and int(targets.min()) < 0:
            raise ValueError(f"targets labels must be >= 0, got minimum {int(targets.min())}")
        return targets, False
    if targets.is_floating_point() and targets.dim() == 2:
        if not bool(torch.isfinite(targets).all()) or bool((targets < 0).any()):
            raise ValueError("targets probabilities must be finite and >= 0")
        sums = targets.sum(dim=1)
        if n and float((sums - 1).abs().max()) > SOFT_TARGET_TOLERANCE:
            raise ValueError(
                f"targets probability rows must sum to 1 (within {SOFT_TARGET_TOLERANCE:g}), "
                f"got sums from {float(sums.min()):.4g} to {float(sums.max()):.4g}"
            )
        return targets, True
    raise TypeError(
        "targets must be int64 labels of shape (N,) or float probabilities of shape (N, K), "
        f"got dtype {targets.dtype} and shape {tuple(targets.shape)}"
    )


def _batches(perm: Tensor, batch_size: int) -> list[Tensor]:
    """Split ``perm`` into batches; a trailing batch of one joins the previous one (BatchNorm needs 2)."""
    chunks = list(perm.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2] = torch.cat([chunks[-2], chunks.pop()])
    return chunks


def make_optimizer(
    model: nn.Module, name: str, lr: float, momentum: float, weight_decay: float, *, nesterov: bool = False
) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` (with ``momentum``; Nesterov's with ``nesterov``) or ``torch.optim.Adam``
    over ``model``'s parameters, by ``name``."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)


def _lr_factor(schedule: str, step: int, total_steps: int, epoch: int, epochs: int) -> float:
    """Multiplier of the base learning rate at optimisation ``step`` (0-based) of ``epoch``."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    if schedule == "step":
        return 0.1 ** sum(epoch >= milestone for milestone in (epochs // 2, (3 * epochs) // 4) if milestone > 0)
    if schedule == "onecycle":
        peak = max(1.0, ONECYCLE_PEAK * total_steps)
        if step < peak:
            return (step + 1) / peak
        return max(0.0, (total_steps - step) / max(1.0, total_steps - peak))
    return 1.0


def check_training_settings(
    *,
    epochs: int,
    batch_size: int,
    optimizer: str,
    lr: float,
    momentum: float,
    weight_decay: float,
    schedule: str,
    seed: int,
    progress: bool,
    desc: str,
    augment: Augment | None,
    device: DeviceLike,
) -> tuple[float, float, float, torch.device]:
    """Check the settings :func:`fit` and ``fit_dp`` share; return ``(lr, momentum, weight_decay, device)``.

    Raises:
        TypeError / ValueError: a setting of the wrong type or out of range (the message names it).
    """
    check_int("epochs", epochs, low=1)
    check_int("batch_size", batch_size, low=1)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    lr = check_number("lr", lr, low=0.0, low_inclusive=False)
    momentum = check_number("momentum", momentum, low=0.0, high=1.0, high_inclusive=False)
    weight_decay = check_number("weight_decay", weight_decay, low=0.0)
    check_choice("schedule", schedule, SCHEDULES)
    check_int("seed", seed, low=0)
    check_bool("progress", progress)
    if not isinstance(desc, str):
        raise TypeError(f"desc must be a string, got {desc!r}")
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be callable or None, got {augment!r}")
    target_device = resolve_device(device)
    return lr, momentum, weight_decay, target_device


def fit(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    *,
    epochs: int,
    batch_size: int = 128,
    optimizer: str = "sgd",
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    schedule: str = "cosine",
    seed: int = 0,
    device: DeviceLike = "auto",
    progress: bool = True,
    desc: str = "train",
    augment: Augment | None = None,
    nesterov: bool = False,
    label_smoothing: float = 0.0,
) -> list[float]:
    """Train ``model`` in place by minibatch gradient descent; return the mean loss of each epoch.

    Hard targets use cross-entropy; soft targets (posteriors) use the soft cross-entropy
    ``-(p * log_softmax(z)).sum(1).mean()``. Each epoch visits every sample once in an order
    drawn from a ``torch.Generator`` seeded with ``seed`` (a trailing batch of one sample
    joins the previous batch). The global torch RNG is seeded with ``seed`` for the duration
    of the call and restored afterwards, so the same model, data and seed give identical
    weights on the CPU.

    Schedules: ``cosine`` anneals the learning rate from ``lr`` to 0 over all steps (per
    batch); ``step`` multiplies it by 0.1 at 50% and 75% of the epochs; ``onecycle`` (Smith &
    Topin, "Super-Convergence", arXiv:1708.07120, in the piecewise-linear form of Page's
    DAWNBench ResNet-9) rises linearly to ``lr`` over the first :data:`ONECYCLE_PEAK` of the
    steps and falls linearly to 0 at the last; ``none`` keeps it.

    Label smoothing (Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016,
    arXiv:1512.00567, Sec. 7) replaces the target ``t`` by ``(1 - eps) t + eps / K``, for
    labels and posteriors alike.

    Args:
        model: the network; moved to ``device`` and left there in eval mode.
        inputs: float images in [0, 1], shape ``(N, ...)``; stay where they are, batches
            are moved to ``device``.
        targets: int64 labels ``(N,)`` in [0, K), or float probabilities ``(N, K)`` whose
            rows sum to 1 (K is checked against ``model.num_classes`` when the model has one).
        epochs: passes over the data, >= 1.
        batch_size: samples per step, >= 1 (default 128).
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"`` (default ``"sgd"``).
        lr: base learning rate, > 0.
        momentum: SGD momentum in [0, 1) (default 0.9; ignored by Adam).
        weight_decay: L2 penalty >= 0 (default 5e-4).
        schedule: ``"cosine"``, ``"step"``, ``"onecycle"`` or ``"none"`` (default ``"cosine"``).
        seed: >= 0, seeds shuffling, augmentation and any randomness in the model.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        progress: show a tqdm bar over the batches of all epochs.
        desc: label of the progress bar.
        augment: optional ``augment(batch, generator) -> batch`` applied to each input
            batch (e.g. :func:`augment_crop_flip`), drawing randomness from ``generator``.
        nesterov: Nesterov momentum for ``"sgd"`` (needs ``momentum`` > 0; default False).
        label_smoothing: eps in [0, 1) (default 0: plain cross-entropy).

    Returns:
        ``epochs`` floats: the sample-weighted mean training loss of each epoch.

    Raises:
        TypeError / ValueError: a parameter of the wrong type or out of range (the
            message names it).
        FloatingPointError: the loss became NaN or infinite (lower ``lr``).
    """
    _check_module(model)
    inputs = _check_inputs(inputs)
    n = inputs.shape[0]
    if n < 1:
        raise ValueError("inputs must hold at least one sample, got N = 0")
    targets, soft = _check_targets(targets, n)
    num_classes = getattr(model, "num_classes", None)
    if isinstance(num_classes, int):
        if soft and targets.shape[1] != num_classes:
            raise ValueError(f"targets probabilities must have K = {num_classes} columns like the model, got {targets.shape[1]}")
        if not soft and int(targets.max()) >= num_classes:
            raise ValueError(f"targets labels must be < num_classes = {num_classes}, got maximum {int(targets.max())}")
    lr, momentum, weight_decay, target_device = check_training_settings(
        epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay,
        schedule=schedule, seed=seed, progress=progress, desc=desc, augment=augment, device=device,
    )
    check_bool("nesterov", nesterov)
    if nesterov and (optimizer != "sgd" or momentum == 0.0):
        raise ValueError(f"nesterov=True needs optimizer 'sgd' with momentum > 0, got optimizer {optimizer!r}, momentum {momentum!r}")
    label_smoothing = check_number("label_smoothing", label_smoothing, low=0.0, high=1.0, high_inclusive=False)

    model.to(target_device)
    opt = make_optimizer(model, optimizer, lr, momentum, weight_decay, nesterov=nesterov)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = len(_batches(torch.arange(n), batch_size))
    total_steps = epochs * steps_per_epoch
    losses: list[float] = []
    rng_devices = [target_device.index or 0] if target_device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices), tqdm(total=total_steps, desc=desc, disable=not progress, leave=False) as bar:
        torch.manual_seed(seed)
        model.train()
        step = 0
        for epoch in range(epochs):
            total = 0.0
            for index in _batches(torch.randperm(n, generator=generator), batch_size):
                for group in opt.param_groups:
                    group["lr"] = lr * _lr_factor(schedule, step, total_steps, epoch, epochs)
                batch = inputs[index.to(inputs.device)]
                if augment is not None:
                    batch = augment(batch, generator)
                logits = model(batch.to(target_device, torch.float32))
                target = targets[index.to(targets.device)].to(target_device)
                loss = _loss(logits, target, soft, label_smoothing)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(f"training loss became {value} at epoch {epoch + 1}, step {step + 1}; lower lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += value * len(index)
                step += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{value:.4f}", refresh=False)
            losses.append(total / n)
    model.eval()
    return losses


def _loss(logits: Tensor, target: Tensor, soft: bool, label_smoothing: float) -> Tensor:
    """Cross-entropy on labels or posteriors, with label smoothing ``eps`` when it is > 0."""
    if not soft:
        return F.cross_entropy(logits, target, label_smoothing=label_smoothing)
    probs = target.float()
    if label_smoothing > 0.0:
        probs = probs * (1.0 - label_smoothing) + label_smoothing / probs.shape[1]
    return soft_cross_entropy(logits, probs)


def predict_logits(model: nn.Module, inputs: Tensor, *, batch_size: int = 512, device: DeviceLike = "auto") -> Tensor:
    """Logits of ``model`` on ``inputs``, computed in eval mode without gradients, in batches.

    The model is moved to ``device``; its train/eval mode is restored afterwards.

    Args:
        model: maps ``(B, ...)`` to logits ``(B, K)``.
        inputs: float images in [0, 1], shape ``(N, ...)``.
        batch_size: samples per forward pass, >= 1 (default 512).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or a ``torch.device``.

    Shape:
        returns ``(N, K)`` float32 on the CPU.

    Raises:
        TypeError / ValueError: a parameter of the wrong type or out of range.
    """
    _check_module(model)
    inputs = _check_inputs(inputs)
    check_int("batch_size", batch_size, low=1)
    target_device = resolve_device(device)
    model.to(target_device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if inputs.shape[0] == 0:
                num_classes = getattr(model, "num_classes", None)
                if isinstance(num_classes, int):
                    return torch.empty(0, num_classes, dtype=torch.float32)
                return model(inputs.to(target_device, torch.float32)).float().cpu()
            outs = [model(chunk.to(target_device, torch.float32)).float().cpu() for chunk in inputs.split(batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs)


def predict_proba(model: nn.Module, inputs: Tensor, *, batch_size: int = 512, device: DeviceLike = "auto") -> Tensor:
    """Softmax posteriors of ``model`` on ``inputs`` (see :func:`predict_logits`).

    Shape:
        returns ``(N, K)`` float32 on the CPU, rows summing to 1.
    """
    return torch.softmax(predict_logits(model, inputs, batch_size=batch_size, device=device), dim=1)


def accuracy_on(
    model: nn.Module, inputs: Tensor, labels: Tensor, *, batch_size: int = 512, device: DeviceLike = "auto"
) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` on ``inputs`` against int64 ``labels`` (N,).

    Raises:
        ValueError: no samples, or ``labels`` not of shape ``(N,)``.
        TypeError: ``labels`` not an int64 tensor.
    """
    inputs = _check_inputs(inputs)
    if not isinstance(labels, Tensor) or labels.dtype != torch.int64:
        raise TypeError(f"labels must be an int64 tensor, got {getattr(labels, 'dtype', type(labels).__name__)}")
    if labels.shape != (inputs.shape[0],):
        raise ValueError(f"labels must have shape ({inputs.shape[0]},) to match inputs, got {tuple(labels.shape)}")
    if inputs.shape[0] == 0:
        raise ValueError("accuracy needs at least one sample, got N = 0")
    predicted = predict_logits(model, inputs, batch_size=batch_size, device=device).argmax(dim=1)
    return float((predicted == labels.cpu()).float().mean())


def augment_crop_flip(padding: int = 4, *, flip: bool = True) -> Augment:
    """Batched random crop with zero padding plus random horizontal flip (CIFAR-style).

    Each image is padded by ``padding`` pixels of 0 on every side, a window of the
    original size is cut at an offset drawn uniformly from ``[0, 2 * padding]`` on each
    axis, and with ``flip`` the result is mirrored left-right with probability 1/2.
    All randomness comes from the generator passed to the returned function.

    Args:
        padding: pixels of zero padding, >= 0 (default 4).
        flip: also flip horizontally at random (default True).

    Returns:
        ``augment(batch, generator) -> batch`` for batches ``(N, C, H, W)``, same shape,
        dtype and device.

    Raises:
        TypeError / ValueError: bad ``padding`` or ``flip``.

    Example:
        >>> augment = augment_crop_flip(4)
        >>> augment(torch.rand(8, 3, 32, 32), torch.Generator().manual_seed(0)).shape
        torch.Size([8, 3, 32, 32])
    """
    check_int("padding", padding, low=0)
    check_bool("flip", flip)

    def augment(batch: Tensor, generator: torch.Generator) -> Tensor:
        if batch.dim() != 4:
            raise ValueError(f"augment_crop_flip expects (N, C, H, W) batches, got shape {tuple(batch.shape)}")
        n, _, height, width = batch.shape
        out = batch
        if padding > 0:
            offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=generator.device)
            offsets = offsets.to(batch.device)
            padded = F.pad(batch, (padding, padding, padding, padding))
            rows = offsets[0][:, None] + torch.arange(height, device=batch.device)
            cols = offsets[1][:, None] + torch.arange(width, device=batch.device)
            samples = torch.arange(n, device=batch.device)[:, None, None]
            out = padded.permute(0, 2, 3, 1)[samples, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        if flip:
            mirrored = torch.rand(n, generator=generator, device=generator.device).to(batch.device) < 0.5
            out = torch.where(mirrored[:, None, None, None], out.flip(-1), out)
        return out.contiguous()

    return augment
