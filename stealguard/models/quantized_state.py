"""A quantized model's ``state_dict`` as plain tensors for safetensors, and back.

The ``state_dict`` of a model converted by ``torch.ao.quantization`` holds quantized
tensors (int8 values with per-channel scales and zero points), packed-parameter tuples
``(weight, bias)`` and ``torch.dtype`` entries; safetensors stores none of those. An entry
is written as plain tensors:

* a float or integer tensor: under its own key, unchanged;
* a per-channel quantized tensor ``KEY``: ``KEY:int_repr`` (int8/uint8 values),
  ``KEY:scales`` (float64, one per channel), ``KEY:zero_points`` (int64, one per channel);
* a per-tensor quantized tensor ``KEY``: ``KEY:int_repr``, ``KEY:scale`` (float64 scalar),
  ``KEY:zero_point`` (int64 scalar);
* a tuple ``KEY``: its items as ``KEY:0``, ``KEY:1``, ... (a ``None`` item is left out);
* ``None`` and ``torch.dtype`` entries: left out (the rebuilt model knows them).

The quantization axis, the quantized dtype and the module structure are not stored: on
load they come from a model rebuilt from the card (:func:`stealguard.models.quantization.build_quantized`),
and :func:`from_plain_tensors` refuses tensors that do not fit that reference.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

PER_CHANNEL = (torch.per_channel_affine, torch.per_channel_symmetric)
PER_TENSOR = (torch.per_tensor_affine, torch.per_tensor_symmetric)


def to_plain_tensors(state: Mapping[str, Any]) -> dict[str, Tensor]:
    """Flatten ``state`` (a quantized model's ``state_dict``) into contiguous CPU tensors.

    Raises:
        ValueError: a quantized tensor of a scheme other than per-tensor or per-channel
            affine/symmetric (e.g. the float-qparams scheme of quantized embeddings).
        TypeError: an entry that is neither a tensor, a tuple, ``None`` nor a dtype.
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        _encode(key, value, out)
    return out


def _encode(key: str, value: Any, out: dict[str, Tensor]) -> None:
    if value is None or isinstance(value, torch.dtype):
        return
    if isinstance(value, tuple):
        for index, item in enumerate(value):
            _encode(f"{key}:{index}", item, out)
        return
    if not isinstance(value, Tensor):
        raise TypeError(f"state entry {key!r} of type {type(value).__name__} cannot be stored as tensors")
    value = value.detach().to("cpu")
    if not value.is_quantized:
        out[key] = value.contiguous().clone()
        return
    scheme = value.qscheme()
    out[f"{key}:int_repr"] = value.int_repr().contiguous()
    if scheme in PER_CHANNEL:
        out[f"{key}:scales"] = value.q_per_channel_scales().to(torch.float64).contiguous()
        out[f"{key}:zero_points"] = value.q_per_channel_zero_points().to(torch.int64).contiguous()
    elif scheme in PER_TENSOR:
        out[f"{key}:scale"] = torch.tensor(value.q_scale(), dtype=torch.float64)
        out[f"{key}:zero_point"] = torch.tensor(value.q_zero_point(), dtype=torch.int64)
    else:
        raise ValueError(f"state entry {key!r} uses quantization scheme {scheme}; only per-tensor and per-channel int8 are stored")


def from_plain_tensors(tensors: Mapping[str, Tensor], reference: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """Rebuild a ``state_dict`` shaped like ``reference`` from :func:`to_plain_tensors` output.

    Quantized entries take their dtype and axis from ``reference`` and their values,
    scales and zero points from ``tensors``; ``None`` and dtype entries, and the module
    versions (``_metadata``, which quantized modules read when loading), are copied from
    ``reference``.

    Args:
        tensors: plain tensors read from a safetensors file.
        reference: ``state_dict`` of the model rebuilt from the card.
        source: what ``tensors`` came from (a file path), for error messages.

    Raises:
        ValueError: a tensor is missing, unexpected, or of the wrong dtype or shape; a
            scale is not finite and > 0; a zero point is outside the integer range.
    """
    used: set[str] = set()

    def take(key: str, like: Tensor) -> Tensor:
        if key not in tensors:
            raise ValueError(f"{source} does not match the int8 model: tensor {key!r} is missing")
        value = tensors[key]
        if value.dtype != like.dtype or value.shape != like.shape:
            raise ValueError(
                f"{source} does not match the int8 model: {key!r} is {value.dtype} {tuple(value.shape)}, "
                f"expected {like.dtype} {tuple(like.shape)}"
            )
        used.add(key)
        return value

    def decode(key: str, ref: Any) -> Any:
        if ref is None or isinstance(ref, torch.dtype):
            return ref
        if isinstance(ref, tuple):
            return tuple(decode(f"{key}:{index}", item) for index, item in enumerate(ref))
        if not isinstance(ref, Tensor):
            raise TypeError(f"reference entry {key!r} of type {type(ref).__name__} cannot be rebuilt from tensors")
        if not ref.is_quantized:
            return take(key, ref)
        values = take(f"{key}:int_repr", ref.int_repr())
        if ref.qscheme() in PER_CHANNEL:
            scales = take(f"{key}:scales", ref.q_per_channel_scales().to(torch.float64))
            zero_points = take(f"{key}:zero_points", ref.q_per_channel_zero_points().to(torch.int64))
            _check_qparams(key, scales, zero_points, values.dtype, source)
            return torch._make_per_channel_quantized_tensor(values, scales, zero_points, ref.q_per_channel_axis())
        scale = take(f"{key}:scale", torch.tensor(0.0, dtype=torch.float64))
        zero_point = take(f"{key}:zero_point", torch.tensor(0, dtype=torch.int64))
        _check_qparams(key, scale, zero_point, values.dtype, source)
        return torch._make_per_tensor_quantized_tensor(values, float(scale), int(zero_point))

    state: OrderedDict[str, Any] = OrderedDict((key, decode(key, value)) for key, value in reference.items())
    metadata = getattr(reference, "_metadata", None)
    if metadata is not None:
        state._metadata = copy.copy(metadata)  # type: ignore[attr-defined]
    unexpected = sorted(set(tensors) - used)
    if unexpected:
        more = " ..." if len(unexpected) > 10 else ""
        raise ValueError(f"{source} does not match the int8 model: unexpected tensors {unexpected[:10]}{more}")
    return state


def _check_qparams(key: str, scales: Tensor, zero_points: Tensor, values_dtype: torch.dtype, source: str) -> None:
    if not bool(torch.isfinite(scales).all()) or bool((scales <= 0).any()):
        raise ValueError(f"{source}: scales of {key!r} must be finite and > 0")
    info = torch.iinfo(values_dtype)
    if bool((zero_points < info.min).any()) or bool((zero_points > info.max).any()):
        raise ValueError(f"{source}: zero points of {key!r} must lie in [{info.min}, {info.max}] ({values_dtype} values)")
