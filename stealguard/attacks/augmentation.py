"""Synthetic-query steps of the Jacobian-based attacks, batched, in pixel space.

All steps take images in [0, 1] (the models normalise inside) and return images clipped to
[0, 1] in pixel space. (The reference code of Orekondy et al. clips normalised tensors to
[0, 1], which is the wrong range.) Gradients are taken with the substitute in eval mode
and the loss summed over the batch, so every row's step depends on that row alone: a batch
gives the same result as its rows one by one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PIXEL_RANGE = (0.0, 1.0)


def _chunks(count: int, chunk: int) -> list[slice]:
    return [slice(start, min(start + chunk, count)) for start in range(0, count, chunk)]


def input_gradient(model: nn.Module, x: Tensor, labels: Tensor) -> Tensor:
    """``grad_x CE(F(x), labels)`` per row, same shape as ``x``; ``model`` in eval mode, weights untouched."""
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            inputs = x.detach().clone().requires_grad_(True)
            loss = F.cross_entropy(model(inputs), labels, reduction="sum")
            (grad,) = torch.autograd.grad(loss, inputs)
    finally:
        model.train(was_training)
    return grad


def jacobian_step(model: nn.Module, x: Tensor, labels: Tensor, step: float, *, chunk: int = 512) -> Tensor:
    """One Jacobian-based augmentation step ``clip(x + step * sign(grad_x CE(F(x), y)), 0, 1)``.

    JBDA (Papernot et al., AsiaCCS 2017, Sec. 4.2, as implemented by Orekondy et al. 2020)
    uses ``step = +lambda``; JB-self (Juuti et al., EuroS&P 2019) ``step = -lambda``. The sign
    of ``lambda`` itself alternates every tau rounds (Papernot et al., Sec. 6.2).

    Shape:
        x: ``(N, C, H, W)`` in [0, 1]; labels: int64 ``(N,)``; returns ``(N, C, H, W)`` in [0, 1].
    """
    device = next(model.parameters()).device
    out = torch.empty_like(x)
    for part in _chunks(x.shape[0], chunk):
        xs = x[part].to(device)
        grad = input_gradient(model, xs, labels[part].to(device))
        out[part] = (xs + step * grad.sign()).clamp(*PIXEL_RANGE).to(x.device)
    return out


def targeted_linf_steps(
    model: nn.Module,
    x: Tensor,
    targets: Tensor,
    *,
    radius: float = 0.1,
    step: float = 0.01,
    steps: int = 8,
    chunk: int = 512,
) -> Tensor:
    """Targeted iterative L-inf attack towards ``targets`` (the JB-top-k step of Juuti et al.).

    ``steps`` times: ``x' <- clip_[0,1](clip_[x-r, x+r](x' - step * sign(grad CE(F(x'), t))))``,
    starting at ``x' = x`` (a descent on the cross-entropy to the target class).

    Shape:
        x: ``(N, C, H, W)`` in [0, 1]; targets: int64 ``(N,)``; returns ``(N, C, H, W)`` in
        [0, 1], within ``radius`` of ``x`` in L-inf.
    """
    device = next(model.parameters()).device
    out = torch.empty_like(x)
    for part in _chunks(x.shape[0], chunk):
        origin = x[part].to(device)
        target = targets[part].to(device)
        adv = origin.clone()
        for _ in range(steps):
            grad = input_gradient(model, adv, target)
            adv = torch.minimum(torch.maximum(adv - step * grad.sign(), origin - radius), origin + radius)
            adv = adv.clamp(*PIXEL_RANGE)
        out[part] = adv.to(x.device)
    return out


def top_other_classes(model: nn.Module, x: Tensor, labels: Tensor, k: int, *, chunk: int = 512) -> Tensor:
    """The substitute's ``k`` most likely classes other than ``labels``, int64 ``(N, k)``, most likely first."""
    device = next(model.parameters()).device
    rows = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for part in _chunks(x.shape[0], chunk):
                logits = model(x[part].to(device)).float()
                logits.scatter_(1, labels[part].to(device).unsqueeze(1), float("-inf"))
                rows.append(logits.topk(k, dim=1).indices.cpu())
    finally:
        model.train(was_training)
    return torch.cat(rows) if rows else torch.zeros(0, k, dtype=torch.int64)
