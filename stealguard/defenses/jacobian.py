"""Geometry of the attacker's gradient: ``G = d log F(x; w) / dw`` under a surrogate.

MAD (Orekondy et al., "Prediction Poisoning", ICLR 2020, Eq. 5-6) compares the directions
``G^T y`` and ``G^T y~`` where ``G`` is the ``(K, D)`` Jacobian of the surrogate's
log-likelihood for one input. Every quantity MAD needs is an inner product of such
directions, so it needs only the per-sample Gram matrix ``M = G G^T`` of shape ``(K, K)``,
never ``G`` itself:

    <G^T a, G^T b> = a^T M b.

Two ways of obtaining it:

* ``last_layer`` (the paper's reference setting): ``w`` is the weight ``W (K, H)`` of the
  surrogate's final ``nn.Linear``. With logits ``z = W h + b`` and ``p = softmax(z)``,
  ``d log p_k / dW = (e_k - p) h^T``, hence ``G^T a = (a - (1^T a) p) (x) h`` and

      M = ||h||^2 (I - 1 p^T - p 1^T + ||p||^2 1 1^T).

  For ``a`` on the simplex ``G^T a = (a - p) (x) h``: the angle between ``G^T a`` and ``G^T b``
  is the angle between ``a - p`` and ``b - p``. One surrogate forward pass, no backward pass.
  :class:`LastLayerGeometry` uses this structure (``O(K)`` per sample, no ``K x K`` matrix).

* ``full``: ``w`` is every trainable surrogate parameter. :func:`full_gram` runs K backward
  passes vectorised over the batch (``is_grads_batched``) to get each layer's output
  gradients, then adds each layer's exact Gram contribution from its inputs and output
  gradients (``nn.Linear``, ``nn.Conv2d``, eval-mode ``nn.BatchNorm``), choosing per layer the
  cheaper of explicit per-sample gradients and the ``T x T`` position-Gram trick. Surrogates
  with other parametrised layers fall back to ``torch.func`` per-sample Jacobians.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stealguard.metrics import angular_deviation

JACOBIANS = ("last_layer", "full")


def last_linear(module: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` of ``module`` in ``modules()`` order (the output layer).

    Raises:
        ValueError: ``module`` contains no ``nn.Linear``.
    """
    found = None
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            found = sub
    if found is None:
        raise ValueError("surrogate must contain an nn.Linear output layer (its last nn.Linear produces the logits)")
    return found


def forward_with_features(
    surrogate: nn.Module, x: Tensor, *, layer: nn.Linear | None = None, check: bool = True
) -> tuple[Tensor, Tensor]:
    """Run the surrogate and return ``(logits (N, K), h (N, H))``, ``h`` the input of its last ``nn.Linear``.

    Args:
        layer: the surrogate's output layer, when the caller has looked it up once
            (:func:`last_linear`); found here otherwise.
        check: verify that the last ``nn.Linear``'s output is the surrogate's output (callers
            that verified it once for a surrogate may skip it on later calls).

    Raises:
        ValueError: the last ``nn.Linear``'s output is not the surrogate's output.
    """
    layer = layer if layer is not None else last_linear(surrogate)
    captured: dict[str, Tensor] = {}

    def hook(_module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        captured["h"] = inputs[0]
        captured["z"] = output

    handle = layer.register_forward_hook(hook)
    try:
        logits = surrogate(x)
    finally:
        handle.remove()
    if check and ("z" not in captured or captured["z"].shape != logits.shape or not torch.equal(captured["z"], logits)):
        raise ValueError(
            "the surrogate's last nn.Linear must produce its output logits (jacobian='last_layer' needs it); "
            "use jacobian='full' for other architectures"
        )
    return logits, captured["h"].flatten(1)


class LastLayerGeometry:
    """Gradient geometry of the last-layer Jacobian for a batch, in closed form.

    Args:
        p: surrogate probabilities ``(N, K)``, float64.
        h_sq: squared norms ``||h||^2`` of the last layer's inputs ``(N,)``, float64.

    All directions are represented by ``a - (1^T a) p`` in ``R^K`` (the common factor ``h``
    changes no angle), so every method is ``O(N K)``.
    """

    def __init__(self, p: Tensor, h_sq: Tensor) -> None:
        self.p = p
        self.h_sq = h_sq
        self.p_sq = (p * p).sum(dim=1)

    @classmethod
    def of(
        cls, surrogate: nn.Module, x: Tensor, *, layer: nn.Linear | None = None, check: bool = True
    ) -> LastLayerGeometry:
        """Geometry of ``surrogate`` at inputs ``x`` (one forward pass, no gradients); see :func:`forward_with_features`."""
        with torch.no_grad():
            logits, h = forward_with_features(surrogate, x, layer=layer, check=check)
        return cls(torch.softmax(logits.double(), dim=1), (h.double() ** 2).sum(dim=1))

    def gram(self) -> Tensor:
        """The Gram matrix ``M = G G^T`` ``(N, K, K)`` (materialised; for tests and metrics)."""
        n, k = self.p.shape
        eye = torch.eye(k, dtype=self.p.dtype, device=self.p.device).expand(n, k, k)
        outer = self.p.unsqueeze(2) + self.p.unsqueeze(1)
        m = eye - outer + self.p_sq.view(n, 1, 1)
        return m * self.h_sq.view(n, 1, 1)

    def vertex_cosines(self, y: Tensor) -> Tensor:
        """``cos(G^T e_k, G^T y)`` for every vertex ``e_k``: ``(N, K)``; 0 where ``G^T y = 0``."""
        v = y - self.p
        v_norm = v.norm(dim=1, keepdim=True)
        p_dot_v = (self.p * v).sum(dim=1, keepdim=True)
        u_norm = (1 - 2 * self.p + self.p_sq.unsqueeze(1)).clamp_min(0).sqrt()
        return _safe_ratio(v - p_dot_v, u_norm * v_norm)

    def best_vertex(self, y: Tensor) -> Tensor:
        """``argmax_k H(e_k) = argmin_k cos(G^T e_k, G^T y)`` ``(N,)``, without the per-row factor ``1/||y - p||``."""
        shift = self.p_sq.unsqueeze(1) - torch.linalg.vecdot(self.p, y, dim=1).unsqueeze(1)
        scores = (y - self.p + shift) * (1 + self.p_sq.unsqueeze(1) - 2 * self.p).clamp_min(1e-300).rsqrt()
        return scores.argmin(dim=1)

    def subset_state(self, y: Tensor) -> SubsetSearch:
        """Incremental evaluator of ``cos(G^T 1_S, G^T y)`` for growing class sets ``S``."""
        return _LastLayerSubsets(self, y)


class GramGeometry:
    """Gradient geometry given the per-sample Gram matrices ``M (N, K, K)`` (float64)."""

    def __init__(self, gram: Tensor) -> None:
        self._gram = gram

    def gram(self) -> Tensor:
        """The Gram matrix ``(N, K, K)``."""
        return self._gram

    def vertex_cosines(self, y: Tensor) -> Tensor:
        """``cos(G^T e_k, G^T y) = (M y)_k / sqrt(M_kk y^T M y)``: ``(N, K)``; 0 where ``G^T y = 0``."""
        m_y = torch.einsum("nkj,nj->nk", self._gram, y)
        y_norm = (y * m_y).sum(dim=1, keepdim=True).clamp_min(0).sqrt()
        diag = torch.diagonal(self._gram, dim1=1, dim2=2).clamp_min(0).sqrt()
        return _safe_ratio(m_y, diag * y_norm)

    def best_vertex(self, y: Tensor) -> Tensor:
        """``argmax_k H(e_k) = argmin_k cos(G^T e_k, G^T y)`` ``(N,)``."""
        return self.vertex_cosines(y).argmin(dim=1)

    def subset_state(self, y: Tensor) -> SubsetSearch:
        """Incremental evaluator of ``cos(G^T 1_S, G^T y)`` for growing class sets ``S``."""
        return _GramSubsets(self._gram, y)


Geometry = LastLayerGeometry | GramGeometry


class SubsetSearch:
    """Cosines ``cos(G^T 1_{S + {j}}, G^T y)`` for every candidate class ``j`` while ``S`` grows.

    Used by MAD-argmax's greedy search over uniform targets on class subsets. Shapes: the
    set ``S`` is one boolean row per sample ``(N, K)``.
    """

    members: Tensor

    def candidate_cosines(self) -> Tensor:
        """``(N, K)``: cosine after adding class ``j`` to ``S`` (meaningless where ``j`` is in ``S``)."""
        raise NotImplementedError

    def add(self, classes: Tensor) -> None:
        """Add one class per sample, ``classes (N,)`` int64."""
        raise NotImplementedError


class _GramSubsets(SubsetSearch):
    def __init__(self, gram: Tensor, y: Tensor) -> None:
        self.gram = gram
        n, k = y.shape
        self.m_y = torch.einsum("nkj,nj->nk", gram, y)
        self.y_norm = (y * self.m_y).sum(dim=1).clamp_min(0).sqrt()
        self.diag = torch.diagonal(gram, dim1=1, dim2=2)
        self.members = torch.zeros(n, k, dtype=torch.bool, device=y.device)
        self.dot = torch.zeros(n, dtype=y.dtype, device=y.device)
        self.quad = torch.zeros(n, dtype=y.dtype, device=y.device)
        self.m_s = torch.zeros(n, k, dtype=y.dtype, device=y.device)

    def candidate_cosines(self) -> Tensor:
        dot = self.dot.unsqueeze(1) + self.m_y
        quad = self.quad.unsqueeze(1) + self.diag + 2 * self.m_s
        return _safe_ratio(dot, quad.clamp_min(0).sqrt() * self.y_norm.unsqueeze(1))

    def add(self, classes: Tensor) -> None:
        index = classes.unsqueeze(1)
        self.dot = self.dot + self.m_y.gather(1, index).squeeze(1)
        self.quad = self.quad + self.diag.gather(1, index).squeeze(1) + 2 * self.m_s.gather(1, index).squeeze(1)
        column = self.gram.gather(2, index.unsqueeze(1).expand(-1, self.gram.shape[1], 1)).squeeze(2)
        self.m_s = self.m_s + column
        self.members = self.members.scatter(1, index, True)


class _LastLayerSubsets(SubsetSearch):
    """Closed form for ``M`` of :class:`LastLayerGeometry`: ``G^T 1_S ~ 1_S - |S| p``."""

    def __init__(self, geometry: LastLayerGeometry, y: Tensor) -> None:
        n, k = y.shape
        self.p = geometry.p
        self.p_sq = geometry.p_sq
        self.v = y - self.p
        self.v_norm = self.v.norm(dim=1)
        self.p_dot_v = (self.p * self.v).sum(dim=1)
        self.members = torch.zeros(n, k, dtype=torch.bool, device=y.device)
        self.size = 0
        self.v_sum = torch.zeros(n, dtype=y.dtype, device=y.device)
        self.p_sum = torch.zeros(n, dtype=y.dtype, device=y.device)

    def candidate_cosines(self) -> Tensor:
        size = self.size + 1
        dot = self.v_sum.unsqueeze(1) + self.v - size * self.p_dot_v.unsqueeze(1)
        p_set = self.p_sum.unsqueeze(1) + self.p
        quad = size - 2 * size * p_set + size * size * self.p_sq.unsqueeze(1)
        return _safe_ratio(dot, quad.clamp_min(0).sqrt() * self.v_norm.unsqueeze(1))

    def add(self, classes: Tensor) -> None:
        index = classes.unsqueeze(1)
        self.size += 1
        self.v_sum = self.v_sum + self.v.gather(1, index).squeeze(1)
        self.p_sum = self.p_sum + self.p.gather(1, index).squeeze(1)
        self.members = self.members.scatter(1, index, True)


def _safe_ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` clamped to [-1, 1], 0 where the denominator vanishes."""
    tiny = 1e-150 if denominator.dtype == torch.float64 else 1e-30
    ratio = numerator / denominator.clamp_min(tiny)
    return torch.where(denominator > tiny, ratio, torch.zeros_like(ratio)).clamp(-1.0, 1.0)


def surrogate_gram(surrogate: nn.Module, x: Tensor, *, jacobian: str = "last_layer", chunk_size: int = 64) -> Tensor:
    """Per-sample Gram matrix ``M = G G^T`` of the surrogate's log-likelihood Jacobian.

    Args:
        surrogate: eval-mode classifier whose output is logits ``(N, K)``.
        x: inputs ``(N, ...)``.
        jacobian: ``"last_layer"`` (weight of the final ``nn.Linear``) or ``"full"`` (all parameters).
        chunk_size: samples per backward pass in ``full`` mode (bounds memory).

    Returns:
        ``(N, K, K)`` float64, symmetric positive semi-definite.
    """
    if jacobian == "last_layer":
        return LastLayerGeometry.of(surrogate, x).gram()
    if jacobian == "full":
        return full_gram(surrogate, x, chunk_size=chunk_size)
    raise ValueError(f"jacobian must be one of {', '.join(map(repr, JACOBIANS))}; got {jacobian!r}")


def gradient_angles(
    model: nn.Module, x: Tensor, y: Tensor, y_tilde: Tensor, *, jacobian: str = "full", chunk_size: int = 64
) -> Tensor:
    """Per-sample angle (radians, [0, pi]) between ``G^T y`` and ``G^T y~`` under ``model``'s own weights.

    ``G = d log F(x; w) / dw`` of ``model`` at its current weights, so ``-G^T y`` is the
    gradient of the soft cross-entropy an attacker training ``model`` on ``y`` follows:
    Orekondy et al.'s angular deviation (ICLR 2020, Sec. 4) measured on the attacker's
    model rather than on a defender's surrogate. ``model`` must be in eval mode.

    Shape:
        x ``(N, ...)``; y, y_tilde ``(N, K)`` (posteriors or one-hot labels) -> ``(N,)`` float64.
    """
    gram = surrogate_gram(model, x, jacobian=jacobian, chunk_size=chunk_size).detach().double()
    return angular_deviation(gram, y.to(gram), y_tilde.to(gram))


# ----------------------------------------------------------------------------------------------
# Full Jacobian: exact per-layer Gram contributions from layer inputs and output gradients.

_FAST_LAYERS = (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d)


def _trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters(recurse=False) if p.requires_grad]


def _supports_fast_path(surrogate: nn.Module) -> bool:
    for module in surrogate.modules():
        if not _trainable(module):
            continue
        if not isinstance(module, _FAST_LAYERS):
            return False
        if isinstance(module, nn.Conv2d) and (module.groups != 1 or module.padding_mode != "zeros"):
            return False
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and (module.training or not module.track_running_stats):
            return False
    return True


def full_gram(surrogate: nn.Module, x: Tensor, *, chunk_size: int = 64) -> Tensor:
    """Exact Gram matrices ``(N, K, K)`` (float64) of the full-parameter Jacobian ``d log F / dw``.

    The surrogate must treat samples independently (eval mode). Runs in chunks of
    ``chunk_size`` samples; each chunk costs one forward and K backward passes vectorised
    over the batch. Surrogates with layers other than Linear/Conv2d/eval BatchNorm use the
    ``torch.func`` fallback :func:`full_gram_func`.
    """
    if x.shape[0] == 0:
        raise ValueError("full_gram needs at least one input")
    if not _supports_fast_path(surrogate):
        return full_gram_func(surrogate, x, chunk_size=chunk_size)
    return torch.cat([_full_gram_chunk(surrogate, chunk) for chunk in x.split(chunk_size)])


@contextmanager
def _record_layers(surrogate: nn.Module) -> Iterator[list[tuple[nn.Module, Tensor, Tensor]]]:
    records: list[tuple[nn.Module, Tensor, Tensor]] = []

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        records.append((module, inputs[0].detach(), output))

    handles = [m.register_forward_hook(hook) for m in surrogate.modules() if _trainable(m)]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


def _full_gram_chunk(surrogate: nn.Module, x: Tensor) -> Tensor:
    with torch.enable_grad(), _record_layers(surrogate) as records:
        log_probs = torch.log_softmax(surrogate(x), dim=1)
        n, k = log_probs.shape
        if len({id(module) for module, _, _ in records}) != len(records):
            raise ValueError("full Jacobian needs every parametrised layer to run once per forward pass")
        outputs = [output for _, _, output in records]
        selectors = torch.eye(k, dtype=log_probs.dtype, device=log_probs.device).unsqueeze(1).expand(k, n, k)
        try:
            grads = torch.autograd.grad(log_probs, outputs, grad_outputs=selectors, is_grads_batched=True, allow_unused=True)
        except RuntimeError:
            per_class = [
                torch.autograd.grad(log_probs[:, c].sum(), outputs, retain_graph=c < k - 1, allow_unused=True)
                for c in range(k)
            ]
            grads = tuple(
                None if per_class[0][i] is None else torch.stack([g[i] for g in per_class]) for i in range(len(outputs))
            )
    gram = torch.zeros(n, k, k, dtype=torch.float64, device=x.device)
    for (module, layer_input, _), grad in zip(records, grads):
        if grad is not None:
            gram += _layer_gram(module, layer_input, grad.detach()).double()
    return gram


def _layer_gram(module: nn.Module, a: Tensor, g: Tensor) -> Tensor:
    """Gram contribution of one layer's parameters: ``a`` its input, ``g (K, N, *out)`` output gradients."""
    if isinstance(module, nn.Linear):
        k, n = g.shape[:2]
        positions = a.reshape(n, -1, a.shape[-1])
        out_grads = g.reshape(k, n, -1, g.shape[-1])
        gram = _positional_gram(positions, out_grads) if module.weight.requires_grad else 0
        if module.bias is not None and module.bias.requires_grad:
            gram = gram + _bias_gram(out_grads)
        return gram
    if isinstance(module, nn.Conv2d):
        k, n = g.shape[:2]
        patches = F.unfold(a, module.kernel_size, dilation=module.dilation, padding=module.padding, stride=module.stride)
        out_grads = g.reshape(k, n, g.shape[2], -1).transpose(2, 3)
        gram = _positional_gram(patches.transpose(1, 2), out_grads) if module.weight.requires_grad else 0
        if module.bias is not None and module.bias.requires_grad:
            gram = gram + _bias_gram(out_grads)
        return gram
    return _batchnorm_gram(module, a, g)


def _positional_gram(a: Tensor, g: Tensor) -> Tensor:
    """Gram of per-sample weight gradients ``sum_t g_k[t] a[t]^T`` for ``a (N, T, I)``, ``g (K, N, T, O)``.

    ``M_kj = sum_{t,s} <g_k[t], g_j[s]> <a[t], a[s]>``. Picks the cheaper of materialising the
    per-sample gradients (cost ~ K N T O I + N K^2 O I) and the position-Gram trick
    (cost ~ N T^2 I + K N T^2 O + N K^2 T O).
    """
    k, n, t, o = g.shape
    i = a.shape[2]
    explicit_cost = k * n * t * o * i + n * k * k * o * i
    trick_cost = n * t * t * i + k * n * t * t * o + n * k * k * t * o
    if t == 1:
        return torch.einsum("kno,jno->nkj", g[:, :, 0], g[:, :, 0]) * (a[:, 0] * a[:, 0]).sum(dim=1).view(n, 1, 1)
    if explicit_cost <= trick_cost:
        per_sample = torch.einsum("knto,nti->knoi", g, a).reshape(k, n, o * i)
        return torch.einsum("knd,jnd->nkj", per_sample, per_sample)
    positions = torch.bmm(a, a.transpose(1, 2))
    mixed = torch.einsum("knto,nts->knso", g, positions)
    return torch.einsum("knso,jnso->nkj", mixed, g)


def _bias_gram(g: Tensor) -> Tensor:
    """Gram of per-sample bias gradients ``sum_t g_k[t]`` for ``g (K, N, T, O)``."""
    summed = g.sum(dim=2)
    return torch.einsum("kno,jno->nkj", summed, summed)


def _batchnorm_gram(module: nn.Module, a: Tensor, g: Tensor) -> Tensor:
    """Eval-mode BatchNorm: per-sample ``dW_c = sum_t g[c, t] x_hat[c, t]``, ``db_c = sum_t g[c, t]``."""
    k, n, c = g.shape[:3]
    shape = (1, c) + (1,) * (a.dim() - 2)
    x_hat = (a - module.running_mean.view(shape)) / torch.sqrt(module.running_var.view(shape) + module.eps)
    g_flat = g.reshape(k, n, c, -1)
    gram = torch.zeros(n, k, k, dtype=g.dtype, device=g.device)
    if module.weight is not None and module.weight.requires_grad:
        dw = (g_flat * x_hat.reshape(1, n, c, -1)).sum(dim=3)
        gram = gram + torch.einsum("knc,jnc->nkj", dw, dw)
    if module.bias is not None and module.bias.requires_grad:
        db = g_flat.sum(dim=3)
        gram = gram + torch.einsum("knc,jnc->nkj", db, db)
    return gram


def full_gram_func(surrogate: nn.Module, x: Tensor, *, chunk_size: int = 16) -> Tensor:
    """Generic Gram via ``torch.func``: per-sample Jacobians ``vmap(jacrev)`` reduced parameter by parameter.

    Works for any surrogate whose forward ``torch.func`` can trace; memory grows with
    ``chunk_size * K * D``, so it is the fallback, not the default.
    """
    from torch.func import functional_call, jacrev, vmap

    params = {name: p.detach() for name, p in surrogate.named_parameters() if p.requires_grad}
    buffers = {name: b for name, b in surrogate.named_buffers()}

    def log_likelihood(weights: dict[str, Tensor], sample: Tensor) -> Tensor:
        logits = functional_call(surrogate, (weights, buffers), (sample.unsqueeze(0),))
        return torch.log_softmax(logits, dim=1).squeeze(0)

    per_sample = vmap(jacrev(log_likelihood), in_dims=(None, 0))
    grams = []
    for chunk in x.split(chunk_size):
        jac = per_sample(params, chunk)
        grams.append(sum(torch.einsum("nkd,njd->nkj", value.flatten(2), value.flatten(2)).double() for value in jac.values()))
    return torch.cat(grams)
