"""Pure metric functions on tensors. Each states its shape and range.

The gradient angular deviation follows Orekondy et al., "Prediction Poisoning" (ICLR 2020),
Sec. 4: the angle between the attacker's gradient directions ``G^T y`` and ``G^T y~``
where ``G = d log F(x; w) / dw`` is ``(K, D)``. It needs only the per-sample Gram matrix
``M = G G^T`` of shape ``(N, K, K)``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def accuracy(predictions: Tensor, labels: Tensor) -> float:
    """Fraction of ``predictions.argmax(1) == labels``; ``predictions (N, K)``, ``labels (N,)``. Range [0, 1]."""
    if predictions.shape[0] != labels.shape[0]:
        raise ValueError(f"predictions and labels differ in length: {predictions.shape[0]} vs {labels.shape[0]}")
    if labels.numel() == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return float((predictions.argmax(dim=1) == labels).double().mean())


def fidelity(replica_outputs: Tensor, victim_outputs: Tensor) -> float:
    """Top-1 agreement between two ``(N, K)`` score tensors. Range [0, 1]."""
    if replica_outputs.shape != victim_outputs.shape:
        raise ValueError(f"shapes differ: {tuple(replica_outputs.shape)} vs {tuple(victim_outputs.shape)}")
    if replica_outputs.shape[0] == 0:
        raise ValueError("fidelity of an empty set is undefined")
    return float((replica_outputs.argmax(dim=1) == victim_outputs.argmax(dim=1)).double().mean())


def l1_distance(p: Tensor, q: Tensor) -> Tensor:
    """Row-wise L1 distance ``sum_k |p_k - q_k|`` of ``(N, K)`` tensors -> ``(N,)``; range [0, 2] on the simplex."""
    return (p - q).abs().sum(dim=1)


def l2_distance(p: Tensor, q: Tensor) -> Tensor:
    """Row-wise L2 distance of ``(N, K)`` tensors -> ``(N,)``; range [0, sqrt(2)] on the simplex."""
    return (p - q).norm(dim=1)


def gradient_cosine(gram: Tensor, y: Tensor, y_tilde: Tensor) -> Tensor:
    """Cosine between ``G^T y`` and ``G^T y~`` from the Gram matrix ``M = G G^T``.

    ``cos = y~^T M y / sqrt(y~^T M y~ * y^T M y)``. Shapes: ``gram (N, K, K)``, ``y, y_tilde (N, K)``
    -> ``(N,)`` in [-1, 1]. A zero-norm direction gives cosine 1 (no deviation measurable).
    """
    m_y = torch.einsum("nkj,nj->nk", gram, y)
    m_yt = torch.einsum("nkj,nj->nk", gram, y_tilde)
    dot = (y_tilde * m_y).sum(dim=1)
    norms = ((y_tilde * m_yt).sum(dim=1).clamp_min(0) * (y * m_y).sum(dim=1).clamp_min(0)).sqrt()
    tiny = torch.finfo(gram.dtype).tiny ** 0.5
    cosine = torch.where(norms > tiny, dot / norms.clamp_min(tiny), torch.ones_like(dot))
    return cosine.clamp(-1.0, 1.0)


def angular_deviation(gram: Tensor, y: Tensor, y_tilde: Tensor) -> Tensor:
    """Angle in radians ``[0, pi]`` between ``G^T y`` and ``G^T y~``; shapes as :func:`gradient_cosine` -> ``(N,)``."""
    return torch.arccos(gradient_cosine(gram, y, y_tilde))


def mad_objective(gram: Tensor, y: Tensor, y_tilde: Tensor) -> Tensor:
    """MAD's objective ``H(y~) = || G^T y~/||G^T y~|| - G^T y/||G^T y|| ||^2 = 2 - 2 cos`` (Orekondy et al. 2020, Eq. 5) -> ``(N,)`` in [0, 4]."""
    return 2.0 - 2.0 * gradient_cosine(gram, y, y_tilde)
