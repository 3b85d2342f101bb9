"""Name -> builder registry of architectures: ``create``, ``names``, ``register``.

A builder is a function ``build(input_shape, num_classes) -> nn.Module`` that maps
normalised ``(N, *input_shape)`` inputs to logits ``(N, num_classes)``, ends in an
``nn.Linear`` (the last module in ``.modules()`` order) and raises ``ValueError`` saying
why when it cannot take ``input_shape``. ``create`` wraps the net in a :class:`Classifier`;
``create(..., norm="group")`` builds the GroupNorm variant that DP-SGD trains
(:mod:`stealguard.models.dp`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import nn

from stealguard._checks import check_choice, check_int
from stealguard.models.base import Classifier

Builder = Callable[[tuple[int, int, int], int], nn.Module]

_REGISTRY: dict[str, Builder] = {}

NORMS = ("batch", "group")
GROUP_NORM_MAX_GROUPS = 32
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def register(name: str, builder: Builder, *, force: bool = False) -> None:
    """Add ``builder`` to the registry under ``name``.

    Raises:
        TypeError: ``builder`` is not callable or ``name`` is not a string.
        ValueError: ``name`` is taken and ``force`` is False.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if not callable(builder):
        raise TypeError(f"builder must be callable, got {builder!r}")
    if name in _REGISTRY and not force:
        raise ValueError(f"architecture {name!r} is already registered (pass force=True to replace it)")
    _REGISTRY[name] = builder


def names() -> list[str]:
    """Registered architecture names, sorted."""
    return sorted(_REGISTRY)


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """Return ``input_shape`` as a ``(C, H, W)`` tuple of positive ints.

    Raises:
        TypeError: not a sequence of integers.
        ValueError: not three entries, or an entry < 1.
    """
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence):
        raise TypeError(f"input_shape must be a (C, H, W) tuple of integers, got {input_shape!r}")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must have 3 entries (C, H, W), got {tuple(input_shape)!r}")
    for axis, value in zip("CHW", input_shape):
        check_int(f"input_shape {axis}", value, low=1)
    return (int(input_shape[0]), int(input_shape[1]), int(input_shape[2]))


def batchnorm_to_groupnorm(net: nn.Module) -> nn.Module:
    """Replace every BatchNorm in ``net`` (in place) by ``GroupNorm(gcd(32, C), C)``; return ``net``.

    The rule of Opacus' ``ModuleValidator.fix`` (opacus 1.6, ``_batchnorm_to_groupnorm``:
    Wu, He, "Group Normalization", ECCV 2018, arXiv:1803.08494, 32 groups where C allows),
    so a net DP-trained after ``ModuleValidator.fix`` is rebuilt with identical modules.
    A net without BatchNorm is returned unchanged.
    """
    for name, child in list(net.named_children()):
        if isinstance(child, _BATCH_NORMS):
            groups = math.gcd(GROUP_NORM_MAX_GROUPS, child.num_features)
            setattr(net, name, nn.GroupNorm(groups, child.num_features, affine=child.affine))
        else:
            batchnorm_to_groupnorm(child)
    return net


def create(
    arch: str,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    norm: str = "batch",
) -> Classifier:
    """Build the architecture ``arch`` for ``input_shape`` inputs and ``num_classes`` outputs.

    Weights are initialised from the global torch RNG (seed it with ``torch.manual_seed``
    for a reproducible initialisation).

    Args:
        arch: a name from :func:`names`.
        input_shape: ``(C, H, W)`` of one input.
        num_classes: K >= 2.
        mean, std: per-channel normalisation (length C) applied inside the model;
            defaults 0 and 1.
        norm: ``"batch"`` (default) builds the architecture as registered; ``"group"``
            replaces each BatchNorm by GroupNorm (:func:`batchnorm_to_groupnorm`), the
            variant DP-SGD trains. Architectures without BatchNorm are the same either way.

    Returns:
        A :class:`Classifier` in training mode, mapping ``(N, C, H, W)`` in [0, 1] to
        logits ``(N, K)``.

    Raises:
        ValueError: unknown ``arch`` (the message lists the registered names), an
            ``input_shape`` the architecture cannot take (the message says why),
            ``num_classes`` < 2, bad mean/std, or ``norm`` not in ``("batch", "group")``.
        TypeError: ``input_shape`` or ``num_classes`` of the wrong type.

    Example:
        >>> import torch
        >>> model = create("lenet", input_shape=(1, 28, 28), num_classes=10).eval()
        >>> model(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    if arch not in _REGISTRY:
        raise ValueError(f"unknown architecture {arch!r}; available: {', '.join(names())}")
    shape = check_input_shape(input_shape)
    check_int("num_classes", num_classes, low=2)
    check_choice("norm", norm, NORMS)
    net = _REGISTRY[arch](shape, num_classes)
    if norm == "group":
        net = batchnorm_to_groupnorm(net)
    return Classifier(net, input_shape=shape, num_classes=num_classes, mean=mean, std=std)
