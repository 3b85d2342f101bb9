"""DP-SGD training of victims with Opacus: per-sample clipping, Gaussian noise, privacy accounting.

DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016,
arXiv:1607.00133, Algorithm 1): each step draws a batch by Poisson sampling (every sample
joins with probability q = batch_size / N), clips each per-sample gradient g_i to L2 norm
at most C (``max_grad_norm``, flat clipping over all parameters),
``g_i <- g_i * min(1, C / ||g_i||_2)``, and updates with
``(sum_i g_i + N(0, sigma^2 C^2 I)) / (q N)`` where sigma is ``noise_multiplier``. An RDP
(Mironov, "Renyi Differential Privacy", CSF 2017) or PRV (Gopi, Lee, Wutschitz, "Numerical
Composition of Differential Privacy", NeurIPS 2021) accountant turns the steps into the
(epsilon, delta) guarantee reached. Training is done by Opacus (``opacus.PrivacyEngine``);
BatchNorm mixes samples of a batch, so it is replaced by GroupNorm with
``opacus.validators.ModuleValidator.fix`` first (the variant
``stealguard.models.create(..., norm="group")`` rebuilds when a saved DP model is loaded).
DP-SGD as a defense against model stealing is one of the baselines compared in the
prediction-poisoning literature (e.g. Orekondy et al., ICLR 2020, arXiv:1906.10908).

Not imported by ``stealguard.models`` itself (Opacus takes seconds to import): use
``from stealguard.models.dp import fit_dp``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from stealguard._checks import check_choice, check_int, check_number
from stealguard.device import DeviceLike
from stealguard.models.training import (
    Augment,
    _check_inputs,
    _check_module,
    _check_targets,
    _lr_factor,
    check_training_settings,
    make_optimizer,
)

if TYPE_CHECKING:
    from opacus import PrivacyEngine

ACCOUNTANTS = ("rdp", "prv")
MAX_DEFAULT_DELTA = 1e-5
PRV_MIN_NOISE = 0.3
"""Opacus 1.6's PRV accountant needs unbounded memory for small noise (sigma 0.05, q 0.045,
460 steps exhausted 20 GiB); below this noise multiplier only ``"rdp"`` is allowed."""

_QUIET_WARNINGS = (
    "Secure RNG turned off",
    "Optimal order is the smallest alpha",
    "Optimal order is the largest alpha",
    "Full backward hook is firing when gradients are computed with respect to module outputs",
)


DP_PARAMETERS = ("noise_multiplier", "max_grad_norm", "delta", "accountant")
DP_REQUIRED = ("noise_multiplier", "max_grad_norm")


def check_dp_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Check the DP-SGD settings of a victim (e.g. parsed from ``--dp``) and return them as a dict.

    Args:
        params: ``noise_multiplier`` (>= 0) and ``max_grad_norm`` (> 0), optionally
            ``delta`` in (0, 1) and ``accountant`` (``"rdp"`` / ``"prv"``).

    Raises:
        TypeError: ``params`` not a mapping, or a value of the wrong type.
        ValueError: a missing or unknown key, or a value out of range (the message names it).
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"dp parameters must be a mapping, got {type(params).__name__}")
    unknown = sorted(set(params) - set(DP_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown DP-SGD parameter(s) {', '.join(map(repr, unknown))}; known: {', '.join(DP_PARAMETERS)}")
    missing = [key for key in DP_REQUIRED if key not in params]
    if missing:
        raise ValueError(f"DP-SGD needs {' and '.join(DP_REQUIRED)}; missing {', '.join(missing)}")
    out: dict[str, Any] = {
        "noise_multiplier": check_number("noise_multiplier", params["noise_multiplier"], low=0.0),
        "max_grad_norm": check_number("max_grad_norm", params["max_grad_norm"], low=0.0, low_inclusive=False),
    }
    if params.get("delta") is not None:
        out["delta"] = check_number("delta", params["delta"], low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    if "accountant" in params:
        out["accountant"] = check_choice("accountant", params["accountant"], ACCOUNTANTS)
    return out


def default_delta(num_samples: int) -> float:
    """``min(1e-5, 10^-d)`` for a training set of ``num_samples`` with d digits: a power of ten below 1/N.

    Example:
        >>> default_delta(1438), default_delta(60000), default_delta(2_000_000)
        (1e-05, 1e-05, 1e-07)

    Raises:
        TypeError / ValueError: ``num_samples`` not an integer >= 1.
    """
    check_int("num_samples", num_samples, low=1)
    return min(MAX_DEFAULT_DELTA, 10.0 ** -len(str(num_samples)))


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())


def _switch_off_inplace(model: nn.Module) -> list[nn.Module]:
    """Set ``inplace=False`` on every module that has it on (e.g. ``ReLU(inplace=True)``); return those modules.

    Opacus' full backward hooks wrap module outputs in a view that autograd forbids
    modifying in place, so ``GroupNorm -> ReLU(inplace=True)`` fails in training. The
    outputs are the same either way; :func:`fit_dp` switches the flag back afterwards.
    """
    switched = [module for module in model.modules() if getattr(module, "inplace", False) is True]
    for module in switched:
        module.inplace = False
    return switched


@dataclasses.dataclass(frozen=True)
class DPTraining:
    """Outcome of :func:`fit_dp`.

    Attributes:
        model: the trained network, a plain module (no Opacus wrapper or hooks) in eval
            mode on the training device; its BatchNorm layers are GroupNorm when ``norm``
            is ``"group"``.
        losses: mean training loss of each epoch over the samples drawn (NaN for an epoch
            whose Poisson batches were all empty).
        epsilon: epsilon reached at ``delta`` (``math.inf`` when ``noise_multiplier`` is 0).
        delta, noise_multiplier, max_grad_norm, accountant: as used.
        norm: ``"group"`` when BatchNorm was replaced, else ``"batch"`` (architecture as given).
        sample_rate: Poisson sampling rate q = 1 / steps per epoch.
        steps: optimisation steps taken.
    """

    model: nn.Module
    losses: list[float]
    epsilon: float
    delta: float
    noise_multiplier: float
    max_grad_norm: float
    accountant: str
    norm: str
    sample_rate: float
    steps: int

    def record(self) -> dict[str, Any]:
        """The ``dp`` record of a :class:`stealguard.models.ModelCard` (``epsilon`` None when infinite)."""
        return {
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": self.max_grad_norm,
            "delta": self.delta,
            "epsilon": self.epsilon if math.isfinite(self.epsilon) else None,
            "accountant": self.accountant,
            "norm": self.norm,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
        }


def _epsilon(engine: PrivacyEngine, delta: float) -> float:
    with warnings.catch_warnings():
        for message in _QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        value = float(engine.get_epsilon(delta))
    return value if math.isfinite(value) else math.inf


def fit_dp(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    *,
    noise_multiplier: float,
    max_grad_norm: float,
    delta: float | None = None,
    accountant: str = "rdp",
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
    desc: str = "dp-sgd",
    augment: Augment | None = None,
) -> DPTraining:
    """Train ``model`` with DP-SGD (Opacus) on hard labels; return the model and the epsilon reached.

    Batches are Poisson samples with rate q = 1 / ceil(N / batch_size) (Opacus' default, so
    the expected batch size is about ``batch_size``); each epoch takes ceil(N / batch_size)
    steps. Per-sample gradients of the mean cross-entropy are clipped to ``max_grad_norm``
    and noised with standard deviation ``noise_multiplier * max_grad_norm`` before the
    ``optimizer`` step (see the module docstring for the update). BatchNorm layers are
    replaced by GroupNorm with ``opacus.validators.ModuleValidator.fix`` (which copies the
    model through an in-memory ``torch.save``/``torch.load`` of this very module; nothing
    is read from disk). ``schedule``, ``momentum`` and ``weight_decay`` act like in
    :func:`stealguard.models.fit`; weight decay is applied after the noise, which only
    post-processes the private gradient.

    Reproducibility: Opacus' ``secure_mode`` stays off, so sampling uses a
    ``torch.Generator`` seeded with ``seed``, the noise another one seeded with ``seed``,
    augmentation a third, and the global torch RNG is seeded with ``seed`` for the call and
    restored afterwards; the same model, data and seed give identical weights on the CPU.
    The price: pseudo-random noise and sampling are fine for experiments but are not the
    cryptographically secure randomness a deployed DP guarantee needs.

    Args:
        model: the network (e.g. a :class:`stealguard.models.Classifier`). Without
            BatchNorm it is trained in place; with BatchNorm it is left untouched and a
            GroupNorm copy is trained. Use the returned ``.model`` either way.
        inputs: float images in [0, 1], shape ``(N, ...)``, N >= 1.
        labels: int64 labels ``(N,)`` in [0, K).
        noise_multiplier: sigma >= 0, noise std relative to ``max_grad_norm``; 0 clips
            without noise (no privacy, epsilon infinite).
        max_grad_norm: clipping bound C > 0 of each per-sample gradient (L2 over all
            parameters).
        delta: delta of the reported (epsilon, delta) guarantee, in (0, 1); default
            :func:`default_delta` of N (1e-5, or the power of ten below 1/N when smaller).
        accountant: ``"rdp"`` (default) or ``"prv"`` (tighter, slower; needs
            ``noise_multiplier`` >= 0.3).
        epochs: passes over the data, >= 1.
        batch_size: expected samples per step, >= 1 (default 128).
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"`` (default ``"sgd"``).
        lr: base learning rate, > 0.
        momentum: SGD momentum in [0, 1) (default 0.9).
        weight_decay: L2 penalty >= 0 (default 5e-4).
        schedule: ``"cosine"``, ``"step"`` or ``"none"`` (default ``"cosine"``).
        seed: >= 0. device: ``"auto"``, ``"cpu"``, ``"cuda"``. progress: tqdm bar with the
            running epsilon (updated every epoch). desc: its label.
        augment: optional ``augment(batch, generator) -> batch`` applied to each batch
            (per-sample transformations keep the guarantee).

    Returns:
        :class:`DPTraining` with the trained model (eval mode), epoch losses and epsilon.

    Shape:
        inputs ``(N, C, H, W)``, labels ``(N,)``; the model maps ``(B, C, H, W)`` to ``(B, K)``.

    Raises:
        TypeError / ValueError: a parameter of the wrong type or out of range (the message
            names it), or a module Opacus cannot train even after the fix.
        FloatingPointError: the loss became NaN or infinite (lower ``lr``).
    """
    _check_module(model)
    inputs = _check_inputs(inputs)
    n = inputs.shape[0]
    if n < 1:
        raise ValueError("inputs must hold at least one sample, got N = 0")
    labels, soft = _check_targets(labels, n)
    if soft:
        raise TypeError("labels must be int64 class labels of shape (N,); DP-SGD here trains on hard labels only")
    num_classes = getattr(model, "num_classes", None)
    if isinstance(num_classes, int) and int(labels.max()) >= num_classes:
        raise ValueError(f"labels must be < num_classes = {num_classes}, got maximum {int(labels.max())}")
    noise_multiplier = check_number("noise_multiplier", noise_multiplier, low=0.0)
    max_grad_norm = check_number("max_grad_norm", max_grad_norm, low=0.0, low_inclusive=False)
    if delta is None:
        delta = default_delta(n)
    delta = check_number("delta", delta, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    check_choice("accountant", accountant, ACCOUNTANTS)
    if accountant == "prv" and noise_multiplier < PRV_MIN_NOISE:
        raise ValueError(
            f"accountant 'prv' needs noise_multiplier >= {PRV_MIN_NOISE} (opacus' PRV runs out of memory "
            f"for small noise), got {noise_multiplier!r}; use accountant 'rdp'"
        )
    lr, momentum, weight_decay, target_device = check_training_settings(
        epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay,
        schedule=schedule, seed=seed, progress=progress, desc=desc, augment=augment, device=device,
    )

    from opacus import PrivacyEngine
    from opacus.validators import ModuleValidator

    norm = "group" if _has_batchnorm(model) else "batch"
    if norm == "group":
        model = ModuleValidator.fix(model)
    model.train()
    problems = ModuleValidator.validate(model, strict=False)
    if problems:
        raise ValueError(f"Opacus cannot train this model with DP-SGD: {'; '.join(str(p) for p in problems)}")
    inplace_modules = _switch_off_inplace(model)
    model.to(target_device)
    sample_generator = torch.Generator().manual_seed(seed)
    noise_generator = torch.Generator(device=target_device).manual_seed(seed)
    augment_generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(torch.arange(n)), batch_size=batch_size, generator=sample_generator)

    rng_devices = [target_device.index or 0] if target_device.type == "cuda" else []
    wrapped: Any = None
    try:
        with torch.random.fork_rng(devices=rng_devices), warnings.catch_warnings():
            for message in _QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            torch.manual_seed(seed)
            engine = PrivacyEngine(accountant=accountant, secure_mode=False)
            wrapped, opt, dp_loader = engine.make_private(
                module=model,
                optimizer=make_optimizer(model, optimizer, lr, momentum, weight_decay),
                data_loader=loader,
                noise_multiplier=noise_multiplier,
                max_grad_norm=max_grad_norm,
                poisson_sampling=True,
                noise_generator=noise_generator,
            )
            steps_per_epoch = len(dp_loader)
            sample_rate = 1.0 / steps_per_epoch
            total_steps = epochs * steps_per_epoch
            losses: list[float] = []
            step = 0
            with tqdm(total=total_steps, desc=desc, disable=not progress, leave=False) as bar:
                for epoch in range(epochs):
                    total, seen = 0.0, 0
                    for (index,) in dp_loader:
                        for group in opt.param_groups:
                            group["lr"] = lr * _lr_factor(schedule, step, total_steps, epoch, epochs)
                        batch = inputs[index.to(inputs.device)]
                        if augment is not None and len(index):
                            batch = augment(batch, augment_generator)
                        logits = wrapped(batch.to(target_device, torch.float32))
                        loss = F.cross_entropy(logits, labels[index.to(labels.device)].to(target_device))
                        if len(index):
                            value = float(loss.detach())
                            if not math.isfinite(value):
                                raise FloatingPointError(f"training loss became {value} at epoch {epoch + 1}, step {step + 1}; lower lr")
                            total += value * len(index)
                            seen += len(index)
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                        step += 1
                        bar.update(1)
                    losses.append(total / seen if seen else math.nan)
                    if progress:
                        bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.4f}", eps=f"{_epsilon(engine, delta):.3g}", refresh=False)
            opt.zero_grad(set_to_none=True)
    finally:
        if wrapped is not None:
            trained = wrapped.to_standard_module()
        for module in inplace_modules:
            module.inplace = True
    trained.eval()
    return DPTraining(
        model=trained,
        losses=losses,
        epsilon=_epsilon(engine, delta),
        delta=delta,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        accountant=accountant,
        norm=norm,
        sample_rate=sample_rate,
        steps=step,
    )
