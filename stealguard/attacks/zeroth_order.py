"""Zeroth-order gradients through a black box, and logits recovered from its probabilities.

The data-free attacks train their generator through the victim, which answers only
probabilities. They estimate the gradient of a per-sample loss ``L(x)`` by forward
differences along random unit directions (DFME, Truong et al., CVPR 2021, Eq. 5; MAZE,
Kariyappa et al., CVPR 2021, Eq. 7):

    grad L(x) ~= (d / m) * sum_i (L(x + eps * u_i) - L(x)) / eps * u_i,   u_i uniform on the unit sphere of R^d

which costs ``m + 1`` evaluations (queries) per sample.

The reference implementations (MAZE's ``attacks/attack_utils.py::zoge_backward``, DFME's
``approximate_gradients.py::estimate_gradient_objective``) take ``x`` to be the generator's
output *before* tanh, so the perturbed points need no clipping (``clip=False`` here, with
the loss mapping them to pixels); ``clip=True`` perturbs pixels and clips to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

LOG_FLOOR = 1e-8
"""Probabilities are clamped to at least this before the log: a defense may return exact zeros."""


def recover_logits(probs: Tensor) -> Tensor:
    """Logits up to a constant from probabilities: ``log(max(p, 1e-8))`` minus its row mean.

    The victim's logits are unobservable; ``log p`` equals them up to a per-row constant,
    removed by centring (DFME, Sec. 3.3). Finite for any input rows, zeros included.

    Shape:
        probs ``(N, K)`` -> ``(N, K)``, float32, rows summing to 0.
    """
    logs = torch.log(probs.float().clamp_min(LOG_FLOOR))
    return logs - logs.mean(dim=1, keepdim=True)


def random_unit_directions(count: int, shape: tuple[int, ...], generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
    """``count`` directions drawn uniformly on the unit sphere of ``R^prod(shape)``, shape ``(count, *shape)``."""
    u = torch.randn(count, *shape, generator=generator).to(device)
    return u / u.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * len(shape)))


def forward_difference_points(
    x: Tensor, directions: int, epsilon: float, generator: torch.Generator, *, clip: bool = True
) -> tuple[Tensor, Tensor]:
    """The points a forward-difference estimate evaluates, and the directions used.

    Returns ``(points, u)``: ``points`` ``(N * (m + 1), ...)`` = the N inputs followed by
    ``x + epsilon * u`` for each of the m directions (direction-major: all N inputs for u_1,
    then for u_2, ...); ``u`` ``(m, N, ...)``. With ``clip`` (default) points are clipped to
    [0, 1] (pixel space, the range a prediction API accepts) and the returned ``u`` is the
    displacement actually made, divided by ``epsilon`` (equal to the drawn direction where
    nothing was clipped); without it (pre-tanh points) ``u`` is the drawn direction.
    """
    n = x.shape[0]
    u = random_unit_directions(directions * n, tuple(x.shape[1:]), generator, x.device).view(directions, n, *x.shape[1:])
    if not clip:
        return torch.cat([x, (x.unsqueeze(0) + epsilon * u).reshape(directions * n, *x.shape[1:])]), u
    shifted = (x.unsqueeze(0) + epsilon * u).clamp(0.0, 1.0)
    moved = (shifted - x.unsqueeze(0)) / epsilon
    return torch.cat([x, shifted.reshape(directions * n, *x.shape[1:])]), moved


def forward_difference_gradient(values: Tensor, u: Tensor, epsilon: float) -> Tensor:
    """Combine losses at the points of :func:`forward_difference_points` into gradient estimates.

    Args:
        values: per-point losses ``(N * (m + 1),)`` in the order of the points.
        u: the directions ``(m, N, ...)``.
        epsilon: the smoothing step, > 0.

    Returns:
        ``(N, ...)``: ``(d / m) * sum_i (L(x + eps u_i) - L(x)) / eps * u_i`` per sample.
    """
    m, n = u.shape[0], u.shape[1]
    d = u[0, 0].numel()
    base, shifted = values[:n], values[n:].view(m, n)
    slopes = (shifted - base.unsqueeze(0)) / epsilon
    return (d / m) * (slopes.view(m, n, *([1] * (u.dim() - 2))) * u).sum(dim=0)


def estimate_gradient(
    loss: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    directions: int,
    epsilon: float,
    generator: torch.Generator,
    clip: bool = True,
) -> Tensor:
    """Forward-difference estimate of ``grad_x loss(x)`` for a per-sample loss ``(N, ...) -> (N,)``; ``(N, ...)``.

    ``loss`` is called once, on all ``N * (directions + 1)`` points together. ``clip``: see
    :func:`forward_difference_points`.
    """
    points, u = forward_difference_points(x, directions, epsilon, generator, clip=clip)
    return forward_difference_gradient(loss(points), u, epsilon)
