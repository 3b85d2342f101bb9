"""Decoding and validation of prediction requests.

A request body carries a batch of inputs ``(B, *input_shape)`` in one of three forms:

* ``application/json`` with ``{"inputs": <nested list>}``;
* ``application/json`` with ``{"inputs_b64": <base64 of little-endian float32>, "shape": [B, ...]}``;
* ``application/x-npy``: a ``.npy`` file (read with ``allow_pickle=False``), float32 or float64.

:func:`decode_inputs` turns any of them into a float32 tensor, or raises :class:`InputError`
with the HTTP status and a message that names what was wrong (shape, dtype, NaN/Inf, range,
empty or oversized batch, malformed body). Messages describe only the request itself, never
anything the model computed.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

JSON_TYPE = "application/json"
NPY_TYPE = "application/x-npy"
CONTENT_TYPES = (JSON_TYPE, NPY_TYPE)
VALUE_RANGE = (0.0, 1.0)
"""Valid pixel range of every input (images are float pixels in [0, 1])."""


class InputError(Exception):
    """A request the server refuses: ``status`` is the HTTP status, ``message`` says why.

    Args:
        status: a 4xx HTTP status code.
        message: one line naming what was wrong with the request.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _shape_text(shape: Sequence[int]) -> str:
    return "(B, " + ", ".join(str(d) for d in shape) + ")"


def _reject_constant(name: str) -> Any:
    raise InputError(422, f"inputs must be finite numbers; the body contains {name}")


def _from_json(body: bytes) -> np.ndarray:
    try:
        payload = json.loads(body, parse_constant=_reject_constant)
    except InputError:
        raise
    except RecursionError:
        raise InputError(400, "malformed JSON body: nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(400, f"malformed JSON body: {err}") from None
    if not isinstance(payload, dict):
        raise InputError(422, f"the JSON body must be an object with key 'inputs' or 'inputs_b64', got {type(payload).__name__}")
    keys = set(payload)
    if keys == {"inputs"}:
        return _from_nested(payload["inputs"], body)
    if keys == {"inputs_b64", "shape"}:
        return _from_base64(payload["inputs_b64"], payload["shape"])
    raise InputError(
        422,
        "the JSON body must hold exactly {'inputs'} or {'inputs_b64', 'shape'}, got keys "
        + ", ".join(sorted(repr(k) for k in keys)),
    )


def _from_nested(inputs: Any, body: bytes) -> np.ndarray:
    if not isinstance(inputs, list):
        raise InputError(422, f"'inputs' must be a nested list of numbers, got {type(inputs).__name__}")
    # The body holds nothing but {"inputs": [...]}, so a JSON true/false anywhere in it is a
    # boolean inside the list, which numpy would silently turn into 0.0 / 1.0.
    if b"true" in body or b"false" in body:
        raise InputError(422, "inputs must be numbers; the list contains a boolean")
    try:
        array = np.asarray(inputs)
    except ValueError:
        raise InputError(422, "'inputs' is ragged: every row must have the same shape") from None
    if array.dtype.kind not in "fiu":
        what = {"U": "a string", "O": "null, a ragged row or an integer too large", "b": "a boolean"}.get(array.dtype.kind, str(array.dtype))
        raise InputError(422, f"inputs must be numbers; the list contains {what}")
    return array


def _from_base64(data: Any, shape: Any) -> np.ndarray:
    if not isinstance(data, str):
        raise InputError(422, f"'inputs_b64' must be a base64 string, got {type(data).__name__}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InputError(422, f"'shape' must be a list of non-negative integers, got {shape!r}"[:300])
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as err:
        raise InputError(400, f"'inputs_b64' is not valid base64: {err}") from None
    count = math.prod(shape)
    if len(raw) != 4 * count:
        raise InputError(422, f"'inputs_b64' holds {len(raw)} bytes; shape {shape} of float32 needs {4 * count}")
    return np.frombuffer(raw, dtype="<f4").reshape(shape)


def _from_npy(body: bytes) -> np.ndarray:
    """Parse a ``.npy`` body; the header is checked against the body length before any allocation."""
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as err:
        raise InputError(400, f"malformed .npy body: {err}") from None
    if dtype not in (np.dtype("<f4"), np.dtype("<f8"), np.dtype(">f4"), np.dtype(">f8")):
        raise InputError(422, f"the .npy array must be float32 or float64, got {dtype}")
    payload = memoryview(body)[stream.tell():]
    needed = math.prod(shape) * dtype.itemsize
    if len(payload) != needed:
        raise InputError(400, f"malformed .npy body: shape {tuple(shape)} of {dtype} needs {needed} data bytes, got {len(payload)}")
    return np.frombuffer(payload, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` header, lower case, parameters dropped (JSON if absent)."""
    if not content_type:
        return JSON_TYPE
    return content_type.split(";", 1)[0].strip().lower()


def decode_inputs(body: bytes, content_type: str | None, *, input_shape: Sequence[int], max_batch: int) -> Tensor:
    """Decode and validate a prediction request body.

    Args:
        body: the raw request body.
        content_type: the ``Content-Type`` header (``application/json`` when absent).
        input_shape: the victim's input shape ``(C, H, W)``.
        max_batch: most inputs in one request, >= 1.

    Returns:
        float32 tensor ``(B, *input_shape)`` with ``1 <= B <= max_batch``, every value finite
        and in ``[0, 1]``.

    Raises:
        InputError: 415 unsupported content type; 400 malformed JSON, base64 or .npy; 422 wrong
            keys, shape or dtype, NaN/Inf, values outside [0, 1], empty batch; 413 batch over
            ``max_batch``.
    """
    kind = media_type(content_type)
    if kind == JSON_TYPE:
        array = _from_json(body)
    elif kind == NPY_TYPE:
        array = _from_npy(body)
    else:
        raise InputError(415, f"unsupported Content-Type {kind!r}; send {' or '.join(CONTENT_TYPES)}")
    shape = tuple(int(d) for d in input_shape)
    if array.ndim >= 1 and array.shape[0] == 0:
        raise InputError(422, "the batch is empty; send at least one input")
    if array.ndim != len(shape) + 1 or tuple(array.shape[1:]) != shape:
        raise InputError(422, f"inputs must have shape {_shape_text(shape)}, got {tuple(array.shape)}")
    batch = array.shape[0]
    if batch > max_batch:
        raise InputError(413, f"the batch holds {batch} inputs, more than the limit of {max_batch} per request")
    values = np.asarray(array, dtype=np.float64)
    if not np.isfinite(values).all():
        raise InputError(422, "inputs must be finite; the batch contains NaN or Inf")
    low, high = VALUE_RANGE
    smallest, largest = float(values.min()), float(values.max())
    if smallest < low or largest > high:
        raise InputError(422, f"inputs must be pixels in [{low:g}, {high:g}]; the batch holds values in [{smallest:g}, {largest:g}]")
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))


def encode_npy(x: Tensor) -> bytes:
    """The ``.npy`` bytes of ``x`` as float32 (the compact request form).

    Shape:
        x: any float tensor, e.g. ``(B, C, H, W)``.
    """
    buffer = io.BytesIO()
    np.save(buffer, x.detach().to("cpu", torch.float32).contiguous().numpy(), allow_pickle=False)
    return buffer.getvalue()
