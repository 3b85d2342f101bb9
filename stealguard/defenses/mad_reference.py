"""Slow, per-sample reference of MAD, following the authors' published method step by step.

For each sample: K autograd calls give the rows of ``G = d log F(x; w) / dw``; ``G`` is
stacked ``(K, D)``; the objective ``H(y~) = ||G^T y~/||G^T y~|| - G^T y/||G^T y|| ||^2`` is
evaluated at each of the K vertices; the best vertex is interpolated into the budget.
It is the ground truth for the tests of :mod:`stealguard.defenses.mad` and the baseline of
``benchmarks/defense_latency.py``. Not registered as a defense; never used on a hot path.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stealguard.defenses.jacobian import last_linear


def reference_jacobian(surrogate: nn.Module, x: Tensor, *, jacobian: str = "full") -> Tensor:
    """``G (K, D)`` for ONE input ``x (1, ...)``: K autograd calls, one per row."""
    params = [last_linear(surrogate).weight] if jacobian == "last_layer" else [p for p in surrogate.parameters() if p.requires_grad]
    with torch.enable_grad():
        log_probs = torch.log_softmax(surrogate(x), dim=1)[0]
        rows = []
        for k in range(log_probs.shape[0]):
            grads = torch.autograd.grad(log_probs[k], params, retain_graph=k < log_probs.shape[0] - 1)
            rows.append(torch.cat([g.flatten() for g in grads]))
    return torch.stack(rows).double()


def reference_objective(jac: Tensor, y: Tensor, y_tilde: Tensor) -> Tensor:
    """``H(y~)`` for one sample from an explicit ``G (K, D)``; ``y, y~ (K,)``."""
    u = jac.T @ y_tilde
    v = jac.T @ y
    return (u / u.norm() - v / v.norm()).norm() ** 2


def reference_mad(
    surrogate: nn.Module, x: Tensor, probs: Tensor, *, epsilon: float, norm: str = "l1", jacobian: str = "full"
) -> Tensor:
    """MAD with the extreme-point oracle, one sample at a time. ``x (N, ...)``, ``probs (N, K)`` -> ``(N, K)`` float64."""
    surrogate = surrogate.eval()
    outputs = []
    for i in range(x.shape[0]):
        y = probs[i].double()
        jac = reference_jacobian(surrogate, x[i : i + 1].float(), jacobian=jacobian)
        k = y.shape[0]
        values = [reference_objective(jac, y, torch.eye(k, dtype=torch.float64)[j]) for j in range(k)]
        target = torch.eye(k, dtype=torch.float64)[int(torch.stack(values).argmax())]
        distance = (target - y).abs().sum() if norm == "l1" else (target - y).norm()
        alpha = min(1.0, epsilon / float(distance)) if float(distance) > 0 else 1.0
        outputs.append((1 - alpha) * y + alpha * target)
    return torch.stack(outputs)
