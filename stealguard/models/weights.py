"""Read a ``model.safetensors`` file against the tensors a model expects, checking before loading.

A weights file comes from whoever handed over the model folder. :func:`read_weights` reads
its header first (at most :data:`MAX_HEADER_BYTES`, parsed by safetensors without loading any
tensor), compares every name, dtype and shape with what the rebuilt model expects, and only
then copies the expected tensors out of the memory-mapped file; floating-point tensors holding
NaN or an infinity are refused. A wrong dtype is refused rather than cast, a missing or extra
tensor is named, and the file must be exactly header plus tensors (safetensors refuses
trailing bytes), so nothing the file declares is allocated unless the model needs it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

MAX_HEADER_BYTES = 16 << 20
"""Largest safetensors header accepted (16 MiB; a ResNet-18's is about 12 KB)."""
_LISTED = 10
_KEY_CHARS = 80

TensorSpec = tuple[torch.dtype, tuple[int, ...]]
"""``(dtype, shape)`` of one tensor."""

_FILE_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def specs(tensors: Mapping[str, Tensor]) -> dict[str, TensorSpec]:
    """``{name: (dtype, shape)}`` of ``tensors``."""
    return {key: (value.dtype, tuple(value.shape)) for key, value in tensors.items()}


def _key(name: str) -> str:
    return repr(name if len(name) <= _KEY_CHARS else name[:_KEY_CHARS] + "...")


def _keys(names: list[str]) -> str:
    shown = ", ".join(_key(n) for n in names[:_LISTED])
    return f"[{shown}{' ...' if len(names) > _LISTED else ''}]"


_TORCH_DTYPES = {name: dtype for dtype, name in _FILE_DTYPES.items()}


def _dtype_name(dtype: torch.dtype | str) -> str:
    """A dtype as torch names it (``torch.float32``), also for a safetensors name (``"F32"``)."""
    if isinstance(dtype, str):
        return str(_TORCH_DTYPES[dtype]) if dtype in _TORCH_DTYPES else dtype
    return str(dtype)


def check_specs(found: Mapping[str, tuple[torch.dtype | str, tuple[int, ...]]], expected: Mapping[str, TensorSpec], *, arch: str, source: str) -> None:
    """Raise ``ValueError`` naming missing or unexpected tensors, then shape and dtype mismatches.

    Args:
        found: ``{name: (dtype, shape)}`` of what ``source`` holds; a dtype may be a
            safetensors name (``"F32"``).
        expected: ``{name: (dtype, shape)}`` the architecture needs.
        arch: the architecture, for the message.
        source: what was read (a path, or ``"the model"``), for the message.
    """
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"weights in {source} do not match architecture {arch!r}: missing keys {_keys(missing)}, unexpected keys {_keys(unexpected)}"
        )
    wrong = [f"{key}: {tuple(found[key][1])} vs {shape}" for key, (_, shape) in expected.items() if tuple(found[key][1]) != shape]
    if wrong:
        raise ValueError(
            f"weights in {source} do not match architecture {arch!r}: shape mismatch (got vs expected) {'; '.join(wrong[:_LISTED])}"
        )
    mistyped = [
        f"{key} is {_dtype_name(found[key][0])}, expected {_dtype_name(dtype)}"
        for key, (dtype, _) in expected.items()
        if _dtype_name(found[key][0]) != _dtype_name(dtype)
    ]
    if mistyped:
        raise ValueError(
            f"weights in {source} do not match architecture {arch!r}: dtype mismatch: {'; '.join(mistyped[:_LISTED])}"
        )


def _check_lengths(path: Path, max_data_bytes: int) -> None:
    """Refuse a header over :data:`MAX_HEADER_BYTES` or tensor data over ``max_data_bytes`` before mapping the file."""
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(8)
    if len(head) < 8:
        raise ValueError(f"{path} is not a valid safetensors file: {size} bytes, shorter than the 8-byte header length")
    length = int.from_bytes(head, "little")
    if length > MAX_HEADER_BYTES:
        raise ValueError(f"{path} is not a valid safetensors file: it declares a header of {length} bytes, over the limit of {MAX_HEADER_BYTES}")
    if 8 + length > size:
        raise ValueError(f"{path} is not a valid safetensors file: it declares a header of {length} bytes but holds {size - 8}")
    if size - 8 - length > max_data_bytes:
        raise ValueError(f"{path} holds {size - 8 - length} bytes of tensor data, over the limit of {max_data_bytes}")


def read_weights(
    path: str | os.PathLike[str], expected: Mapping[str, TensorSpec], *, arch: str, max_data_bytes: int
) -> dict[str, Tensor]:
    """The tensors of the safetensors file ``path``, after checking them against ``expected``.

    Args:
        path: the ``model.safetensors`` file.
        expected: ``{name: (dtype, shape)}`` the rebuilt model needs (every one must be there,
            with exactly that dtype and shape, and nothing else).
        arch: the architecture, for messages.
        max_data_bytes: most bytes of tensor data the file may hold (checked from its size
            before it is mapped).

    Returns:
        ``{name: tensor}`` on the CPU, for exactly the names of ``expected``.

    Raises:
        ValueError: the file is not a safetensors file, its header is over
            :data:`MAX_HEADER_BYTES` or its data over ``max_data_bytes``, a tensor is missing or unexpected or of the wrong shape
            or dtype, or a floating-point tensor holds NaN or an infinity (the message names
            the file and the tensor).
    """
    path = Path(path)
    try:
        _check_lengths(path, max_data_bytes)
    except OSError as err:
        raise ValueError(f"{path} cannot be read: {err.strerror or err}") from None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            found = {}
            for key in handle.keys():  # noqa: SIM118  (safe_open has keys(), no __iter__)
                view = handle.get_slice(key)
                found[key] = (view.get_dtype(), tuple(view.get_shape()))
            check_specs(found, expected, arch=arch, source=str(path))
            tensors = {key: handle.get_tensor(key) for key in expected}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is not a valid safetensors file: {' '.join(str(err).split())[:300]}") from None
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"{path}: tensor {_key(key)} holds NaN or infinite values")
    return tensors
