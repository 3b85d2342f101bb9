"""ART classifiers around stealguard objects: black boxes, defended ART classifiers, replicas.

* :class:`ArtBlackBox`: a stealguard ``BlackBox`` (or ``RemoteBlackBox``, or any object with
  ``query``, ``input_shape``, ``num_classes``, ``queries_used``) as an ART
  ``BlackBoxClassifierNeuralNetwork``, so ART's extraction attacks (``KnockoffNets``,
  ``CopycatCNN``) query it. Every input ART sends goes through ``blackbox.query``: the
  black box applies its defense, counts the query and refuses past its budget, so
  ``blackbox.queries_used`` is what ART spent (``nb_stolen`` for the random strategies).
* :class:`DefendedClassifier`: an ART classifier with a stealguard defense applied to each
  answer as ``defense(x, probs)``, for the defenses an ART postprocessor cannot express.
* :func:`pytorch_classifier`: a stealguard model as an ART ``PyTorchClassifier`` that ART can
  train (soft-label cross-entropy, the model's own parameters, returned trained in place).

ART's input conventions hold throughout: channels-first float32 pixels in ``[0, 1]``
(``clip_values=(0, 1)``), ``input_shape = (C, H, W)`` and ``nb_classes = K``.

``FunctionallyEquivalentExtraction`` (Jagielski et al., arXiv:1909.01838) does not apply to a
stealguard black box: it recovers a network with one hidden dense ReLU layer from its
*logits*, sending flattened ``(N, C*H*W)`` points far outside ``[0, 1]`` (random normal
directions, steps of 1e4 along unit vectors) with as many queries as its searches need (no
``nb_stolen``). Every stealguard black box answers softmax probabilities, which underflow
to 0 at such inputs so the logits cannot be recovered from them; any defense other than
``none`` breaks the piecewise linearity the attack relies on; and stealguard's smallest
architecture, ``mlp``, has two hidden layers. :class:`ArtBlackBox` refuses its first query
(outside ``clip_values``), so nothing is spent.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from art.estimators.classification import BlackBoxClassifierNeuralNetwork, PyTorchClassifier
from torch import Tensor, nn

from stealguard._checks import check_choice, check_int, check_number
from stealguard.defenses.base import Defense
from stealguard.device import DeviceLike, resolve_device
from stealguard.interop.art.postprocessor import PREDS, apply_defense, as_defense
from stealguard.models.training import make_optimizer

CLIP_VALUES = (0.0, 1.0)
OPTIMIZERS = ("adam", "sgd")


class QueryAPI(Protocol):
    """What :class:`ArtBlackBox` needs of a black box (``BlackBox`` and ``RemoteBlackBox`` have it)."""

    input_shape: tuple[int, ...]
    num_classes: int
    queries_used: int

    def query(self, x: Tensor) -> Tensor: ...


def _check_blackbox(blackbox: Any) -> None:
    missing = [name for name in ("query", "input_shape", "num_classes", "queries_used") if not hasattr(blackbox, name)]
    if missing:
        raise TypeError(
            f"blackbox must be a stealguard BlackBox or RemoteBlackBox (query, input_shape, num_classes, "
            f"queries_used); {type(blackbox).__name__} lacks {', '.join(missing)}"
        )


def _as_pixels(x: np.ndarray) -> Tensor:
    """ART's numpy batch as a float32 CPU tensor (the black box checks shape and finiteness)."""
    array = np.asarray(x)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"queries must be floating-point pixels in [0, 1], got dtype {array.dtype}")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


class ArtBlackBox(BlackBoxClassifierNeuralNetwork):
    """A stealguard black box as an ART classifier (``predict`` only; ART cannot fit it).

    Args:
        blackbox: a ``stealguard.blackbox.BlackBox``, ``stealguard.serve.RemoteBlackBox`` or
            anything with ``query``, ``input_shape``, ``num_classes`` and ``queries_used``.
            Its defense, budget and query counter are the ones that apply.
        clip_values: the pixel range ART attacks keep to and queries must lie in, default
            ``(0, 1)``; None accepts any finite value.

    Shape:
        ``predict(x)``: ``x`` ``(N, C, H, W)`` float pixels (channels first) -> defended
        probabilities ``(N, K)`` float32, rows on the simplex.

    Raises:
        TypeError: ``blackbox`` lacks part of the black-box interface.
        ``predict`` raises ``ValueError`` for pixels outside ``clip_values`` (e.g. uint8 images
        in 0..255, which ART casts to float32 before they arrive) and the black box's errors:
        ``ValueError`` (wrong shape, NaN),
        ``stealguard.blackbox.BudgetExceededError`` (past the budget; nothing answered).

    Example:
        >>> from stealguard import models
        >>> from stealguard.blackbox import BlackBox
        >>> box = BlackBox(models.create("mlp", input_shape=(1, 8, 8), num_classes=10), budget=5, device="cpu")
        >>> classifier = ArtBlackBox(box)
        >>> classifier.predict(np.zeros((3, 1, 8, 8), dtype=np.float32)).shape, box.queries_used
        ((3, 10), 3)
    """

    def __init__(self, blackbox: QueryAPI, *, clip_values: tuple[float, float] = CLIP_VALUES) -> None:
        _check_blackbox(blackbox)
        self.blackbox = blackbox
        super().__init__(
            predict_fn=self._answer,
            input_shape=tuple(int(d) for d in blackbox.input_shape),
            nb_classes=int(blackbox.num_classes),
            channels_first=True,
            clip_values=clip_values,
        )

    @property
    def queries_used(self) -> int:
        """Queries the black box has answered (all callers together)."""
        return int(self.blackbox.queries_used)

    def _answer(self, x: np.ndarray) -> np.ndarray:
        pixels = _as_pixels(x)
        if self.clip_values is not None and pixels.numel():
            low, high = (float(np.min(bound)) for bound in self.clip_values)
            lowest, highest = float(pixels.min()), float(pixels.max())
            if lowest < low or highest > high:
                raise ValueError(
                    f"queries must lie in clip_values [{low:g}, {high:g}] (channels-first float pixels), "
                    f"got values in [{lowest:g}, {highest:g}]"
                )
        return self.blackbox.query(pixels).float().cpu().numpy()


class DefendedClassifier(BlackBoxClassifierNeuralNetwork):
    """An ART classifier whose answers pass through a stealguard defense that sees the inputs.

    ``predict(x)`` returns ``defense(x, softmax(classifier.predict(x)))`` (or without the
    softmax for ``preds="probs"``). This is the way to run MAD, MAD-argmax, adaptive
    misinformation or consistent ``random_noise`` inside ART: an ART ``Postprocessor`` is
    called as ``postprocessor(preds)`` with the predictions only, never the inputs ``x``,
    while these defenses compute their answer from ``x`` (MAD from the surrogate's gradient
    at ``x``, adaptive misinformation from the misinformation model's output at ``x``,
    consistent noise from a hash of ``x``). Posterior-only defenses work here too.

    Args:
        classifier: the victim as an ART classifier (``predict``, ``input_shape``, ``nb_classes``),
            e.g. a ``PyTorchClassifier``; its clip values and channel order carry over.
        defense: a stealguard ``Defense`` or a spec string (``"mad:epsilon=0.5"`` needs a
            surrogate, so pass MAD as an instance).
        preds: what ``classifier.predict`` returns: ``"logits"`` (default, as a
            ``PyTorchClassifier`` of a stealguard model) or ``"probs"``.
        device: where the defense runs (``auto``, ``cpu``, ``cuda``); default ``cpu``.

    Attributes:
        queries_used: inputs answered so far.

    Shape:
        ``predict(x)``: ``x`` ``(N, *input_shape)`` -> defended probabilities ``(N, K)``.

    Raises:
        TypeError: ``classifier`` is not an ART classifier, or ``defense`` is not a defense/spec.
        ValueError: a bad spec or ``preds``.
    """

    def __init__(self, classifier: Any, defense: Defense | str, *, preds: str = "logits", device: DeviceLike = "cpu") -> None:
        missing = [name for name in ("predict", "input_shape", "nb_classes") if not hasattr(classifier, name)]
        if missing:
            raise TypeError(f"classifier must be an ART classifier; {type(classifier).__name__} lacks {', '.join(missing)}")
        self.classifier = classifier
        self.defense = as_defense(defense)
        self.preds = check_choice("preds", preds, PREDS)
        self.device = resolve_device(device)
        self.queries_used = 0
        super().__init__(
            predict_fn=self._answer,
            input_shape=tuple(int(d) for d in classifier.input_shape),
            nb_classes=int(classifier.nb_classes),
            channels_first=bool(getattr(classifier, "channels_first", True)),
            clip_values=getattr(classifier, "clip_values", None),
        )

    def _answer(self, x: np.ndarray) -> np.ndarray:
        rows = int(x.shape[0])
        preds = self.classifier.predict(x, batch_size=max(rows, 1))
        defended = apply_defense(self.defense, _as_pixels(x), preds, kind=self.preds, device=self.device)
        self.queries_used += rows
        return defended


def pytorch_classifier(
    model: nn.Module,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    optimizer: str = "adam",
    lr: float = 1e-3,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    device: DeviceLike = "auto",
) -> PyTorchClassifier:
    """``model`` (pixels in [0, 1] -> logits) as an ART ``PyTorchClassifier`` ready for ART to train.

    The loss is ``torch.nn.CrossEntropyLoss``, which ART feeds soft labels (probabilities)
    as they are and one-hot labels as class indices; the optimizer trains ``model``'s own
    parameters, so ``model`` itself is the trained replica afterwards (ART moves it to ``device``).

    Args:
        model: maps ``(N, *input_shape)`` float pixels to logits ``(N, num_classes)``.
        input_shape: ``(C, H, W)``. num_classes: K >= 2.
        optimizer: ``"adam"`` (default) or ``"sgd"``. lr: > 0. momentum: SGD momentum in [0, 1).
        weight_decay: L2 penalty >= 0.
        device: ``auto``, ``cpu`` or ``cuda`` (ART uses the current CUDA device).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``. ValueError: a parameter out of range.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    check_int("num_classes", num_classes, low=2)
    name = check_choice("optimizer", optimizer, OPTIMIZERS)
    rate = check_number("lr", lr, low=0, low_inclusive=False)
    beta = check_number("momentum", momentum, low=0, high=1, high_inclusive=False)
    decay = check_number("weight_decay", weight_decay, low=0)
    where = resolve_device(device)
    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        optimizer=make_optimizer(model, name, rate, beta, decay),
        input_shape=tuple(int(d) for d in input_shape),
        nb_classes=int(num_classes),
        clip_values=CLIP_VALUES,
        channels_first=True,
        device_type="gpu" if where.type == "cuda" else "cpu",
    )
