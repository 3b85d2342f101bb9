"""Shape checks shared by the CIFAR-sized architectures."""

from __future__ import annotations


def require_side(arch: str, input_shape: tuple[int, int, int], side: int) -> None:
    """Raise ``ValueError`` unless ``input_shape`` is ``(C, side, side)``."""
    if input_shape[1:] != (side, side):
        raise ValueError(
            f"{arch} is the CIFAR-sized network and needs {side}x{side} inputs "
            f"(its classifier sees a fixed 512-feature map), got input_shape {input_shape}"
        )
