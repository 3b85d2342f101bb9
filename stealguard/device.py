"""Device resolution: ``auto`` picks CUDA when available, else the CPU; the label results record."""

from __future__ import annotations

import torch

DeviceLike = str | torch.device | None


def resolve_device(device: DeviceLike = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N" | torch.device | None`` into a ``torch.device``.

    ``None`` and ``"auto"`` select ``cuda`` when a GPU is visible, otherwise ``cpu``.

    Raises:
        ValueError: the string names no device, or names CUDA on a machine without one.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but no CUDA GPU is available; use --device cpu or auto")
    return resolved


def device_label(device: DeviceLike = "auto") -> str:
    """The device as a results row records it: ``"cpu"``, or ``"cuda:N (<GPU name>)"``.

    Example:
        >>> device_label("cpu")
        'cpu'

    Raises:
        ValueError: as :func:`resolve_device`.
    """
    resolved = resolve_device(device)
    if resolved.type != "cuda":
        return resolved.type
    index = resolved.index if resolved.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
