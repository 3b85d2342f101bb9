"""Device resolution: ``auto`` picks CUDA when available, else the CPU."""

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
