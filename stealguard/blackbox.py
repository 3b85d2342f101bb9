"""``BlackBox``: the one funnel through which an attacker reaches the victim.

It runs the victim in eval mode without gradients, applies the defense, counts queries,
refuses to answer past its budget and records the L1 distortion of every answer. Attacks
see nothing but this interface (``query``, ``input_shape``, ``num_classes``,
``queries_used``, ``remaining``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stealguard._checks import check_int
from stealguard.defenses.base import Defense
from stealguard.defenses.none import NoDefense
from stealguard.device import DeviceLike, resolve_device


class BudgetExceededError(RuntimeError):
    """A query batch would take the black box past its query budget."""


class BlackBox:
    """A defended prediction API in-process.

    Args:
        model: the victim; maps ``(N, *input_shape)`` pixels in [0, 1] to logits ``(N, K)``.
            Must expose ``input_shape`` and ``num_classes`` (as ``Classifier`` does) unless
            they are given here.
        defense: applied to every answer; ``None`` means ``none``.
        budget: most queries (inputs) ever answered; ``None`` for unlimited.
        batch_size: inputs per victim forward pass.
        device: where the victim runs (``auto``, ``cpu``, ``cuda``).

    Raises:
        ValueError: budget or batch_size out of range, or the shapes cannot be determined.
    """

    def __init__(
        self,
        model: nn.Module,
        defense: Defense | None = None,
        *,
        budget: int | None = None,
        batch_size: int = 512,
        device: DeviceLike = "auto",
        input_shape: tuple[int, ...] | None = None,
        num_classes: int | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.defense = defense if defense is not None else NoDefense()
        self.budget = None if budget is None else check_int("budget", budget, low=0)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
        classes = num_classes if num_classes is not None else getattr(model, "num_classes", None)
        if shape is None or classes is None:
            raise ValueError("input_shape and num_classes must be given when the model does not expose them")
        self.input_shape = tuple(int(d) for d in shape)
        self.num_classes = int(classes)
        self.queries_used = 0
        self._distortions: list[Tensor] = []

    @property
    def remaining(self) -> int | None:
        """Queries left in the budget (``None`` when unlimited)."""
        return None if self.budget is None else self.budget - self.queries_used

    def query(self, x: Tensor) -> Tensor:
        """Answer a batch of queries with defended posteriors.

        Args:
            x: float tensor ``(N, *input_shape)``, finite; any device.

        Returns:
            Defended probabilities ``(N, K)``, float32, on ``x``'s device.

        Raises:
            TypeError: ``x`` is not a floating-point tensor.
            ValueError: wrong shape or non-finite values.
            BudgetExceededError: answering would exceed the budget (nothing is answered).
        """
        self._check_input(x)
        n = x.shape[0]
        if self.budget is not None and self.queries_used + n > self.budget:
            raise BudgetExceededError(
                f"query of {n} inputs refused: {self.queries_used} of the budget of {self.budget} already used"
            )
        answers = []
        for chunk in x.split(self.batch_size) if n else [x]:
            chunk = chunk.to(self.device, torch.float32)
            with torch.no_grad():
                clean = torch.softmax(self.model(chunk).float(), dim=1)
            defended = self.defense(chunk, clean)
            self._distortions.append((defended - clean).abs().sum(dim=1).cpu())
            answers.append(defended)
        self.queries_used += n
        return torch.cat(answers).to(x.device)

    def distortions(self) -> Tensor:
        """L1 distance between defended and clean answer of every query so far, shape ``(queries_used,)``."""
        if not self._distortions:
            return torch.zeros(0)
        return torch.cat(self._distortions)

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            kind = x.dtype if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"queries must be a floating-point tensor, got {kind}")
        if tuple(x.shape[1:]) != self.input_shape or x.dim() != len(self.input_shape) + 1:
            raise ValueError(f"queries must have shape (N, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}")
        if x.numel() and not bool(torch.isfinite(x).all()):
            raise ValueError("queries must be finite; the batch contains NaN or Inf")
