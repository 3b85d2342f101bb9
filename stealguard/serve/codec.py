"""Decoding and validation of prediction requests.

A request body carries a batch of inputs ``(B, *input_shape)`` in one of three forms:

* ``application/json`` with ``{"inputs": <nested list>}``;
* ``application/json`` with ``{"inputs_b64": <base64 of little-endian float32>, "shape": [B, ...]}``;
* ``application/x-npy``: a ``.npy`` file (read with ``allow_pickle=False``), float32 or float64.

JSON must be UTF-8 (a ``charset`` other than ``utf-8`` is a 415; bytes that are not UTF-8 a 400).

:func:`body_limit` bounds the body before it is read: at most ``max_body_bytes`` and at most
what ``max_batch`` inputs can take in the request's format (:data:`JSON_BYTES_PER_VALUE` bytes per
value in JSON, 8 in ``.npy``, plus :data:`BODY_OVERHEAD`). :func:`decode_inputs` then turns the body
into a float32 tensor, or raises :class:`InputError` with the HTTP status and a message that
names what was wrong (shape, dtype, NaN/Inf, range, empty or oversized batch, malformed body).
Every shape a body claims (``shape``, the ``.npy`` header, the nesting of ``inputs``) is checked
against ``(B, *input_shape)`` with ``B <= max_batch`` before anything is reshaped or allocated,
and a JSON body with more commas than the batch limit has values is refused before it is parsed.
Messages describe only the request, quote at most :data:`EXCERPT_CHARS` escaped characters of
it, and never anything the model computed.
"""

from __future__ import annotations

import base64
import binascii
import codecs
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
MAX_DIMS = 64
"""Most dimensions a claimed shape may have (numpy's own limit)."""
JSON_BYTES_PER_VALUE = 64
"""Bytes a JSON body may spend per input value (a 17-digit float, separators and indentation)."""
BODY_OVERHEAD = 64 * 1024
"""Bytes a body may hold beyond its values (JSON keys and brackets, a ``.npy`` header)."""
NPY_MAX_HEADER = 10_000
"""Largest ``.npy`` header read (numpy's default for untrusted files)."""
MAX_INT_DIGITS = 20
"""Longest JSON integer accepted (a pixel is 0 or 1, a batch size fits in 20 digits)."""
EXCERPT_CHARS = 80
"""Most characters of the request quoted in a message."""
WINDOW = 1 << 20
"""Bytes a whole-body scan (UTF-8 check, comma count, boolean search) takes at a time, so that a
large body on a worker thread holds the GIL for milliseconds, not for the whole scan."""


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


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` cut to ``limit`` characters and escaped as an ASCII literal (``...`` marks a cut).

    Safe to put in a response or a log line: no control characters, no newlines, bounded length.
    """
    return ascii(text[:limit]) + ("..." if len(text) > limit else "")


def _dim_text(size: int) -> str:
    """One claimed dimension, at most about 40 characters."""
    return str(size) if abs(size) < 10**40 else ("-" if size < 0 else "") + f"2**{abs(size).bit_length() - 1}+"


def _shape_excerpt(shape: Sequence[int]) -> str:
    """A claimed shape as ``(d0, d1, ...)``, each dimension and the whole bounded."""
    dims = [_dim_text(d) for d in shape[:8]]
    more = f", ... ({len(shape)} dimensions)" if len(shape) > 8 else ""
    return "(" + ", ".join(dims) + more + ")"


def _shape_text(shape: Sequence[int]) -> str:
    return "(B, " + ", ".join(str(d) for d in shape) + ")"


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` header, lower case, parameters dropped (JSON if absent)."""
    if not content_type or not content_type.strip():
        return JSON_TYPE
    return content_type.split(";", 1)[0].strip().lower()


def check_content_type(content_type: str | None) -> str:
    """The request's media type, one of :data:`CONTENT_TYPES` (JSON when the header is absent).

    Raises:
        InputError: 415 for another media type, or JSON with a ``charset`` other than UTF-8.
    """
    kind = media_type(content_type)
    if kind not in CONTENT_TYPES:
        raise InputError(415, f"unsupported Content-Type {excerpt(kind)}; send {' or '.join(CONTENT_TYPES)}")
    if kind == JSON_TYPE and content_type is not None:
        for parameter in content_type.split(";")[1:]:
            name, _, value = parameter.partition("=")
            charset = value.strip().strip('"').lower()
            if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
                raise InputError(415, f"JSON bodies must be UTF-8; got charset {excerpt(charset)}")
    return kind


def max_values(input_shape: Sequence[int], max_batch: int) -> int:
    """Most input values one request may carry: ``max_batch * prod(input_shape)``."""
    return max_batch * math.prod(int(d) for d in input_shape)


def body_limit(content_type: str | None, *, input_shape: Sequence[int], max_batch: int, max_body_bytes: int) -> int:
    """Largest body accepted for this ``Content-Type``, known before the body is read.

    ``min(max_body_bytes, values * per_value + BODY_OVERHEAD)`` with ``values`` from
    :func:`max_values` and ``per_value`` :data:`JSON_BYTES_PER_VALUE` for JSON, 8 (float64) for
    ``.npy``: a body larger than this cannot hold a valid batch.

    Raises:
        InputError: 415 as :func:`check_content_type`.
    """
    per_value = JSON_BYTES_PER_VALUE if check_content_type(content_type) == JSON_TYPE else 8
    return min(max_body_bytes, max_values(input_shape, max_batch) * per_value + BODY_OVERHEAD)


def _check_shape(shape: Sequence[int], input_shape: tuple[int, ...], max_batch: int) -> None:
    """Refuse a claimed batch shape that is not ``(B, *input_shape)`` with ``1 <= B <= max_batch``."""
    if len(shape) > MAX_DIMS:
        raise InputError(422, f"inputs must have shape {_shape_text(input_shape)}; the body claims {len(shape)} dimensions")
    if any(d < 0 for d in shape):
        raise InputError(422, f"inputs must have shape {_shape_text(input_shape)}; the body claims {_shape_excerpt(shape)} with a negative size")
    if len(shape) >= 1 and shape[0] == 0:
        raise InputError(422, "the batch is empty; send at least one input")
    if len(shape) != len(input_shape) + 1 or tuple(shape[1:]) != input_shape:
        raise InputError(422, f"inputs must have shape {_shape_text(input_shape)}, got {_shape_excerpt(shape)}")
    if shape[0] > max_batch:
        raise InputError(413, f"the batch holds {_dim_text(shape[0])} inputs, more than the limit of {max_batch} per request")


def _reject_constant(name: str) -> Any:
    raise InputError(422, f"inputs must be finite numbers; the body contains {name}")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise InputError(422, f"the body contains an integer of {len(text.lstrip('-'))} digits; at most {MAX_INT_DIGITS} are accepted")
    return int(text)


def _parse_float(text: str) -> float:
    # A Python-level hook makes the C parser enter the interpreter for every float, where the
    # GIL can pass to the event loop: a 32 MiB body parsed on a worker thread then holds the GIL
    # in short slices instead of for the whole parse (about 2 s; benchmarks/hostile_http.py).
    return float(text)


def _utf8(body: bytes) -> str:
    """``body`` decoded as strict UTF-8, :data:`WINDOW` bytes at a time.

    Raises:
        InputError: 400 naming the first offending byte.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    view, parts = memoryview(body), []
    for start in range(0, max(len(body), 1), WINDOW):
        try:
            parts.append(decoder.decode(view[start:start + WINDOW], final=start + WINDOW >= len(body)))
        except UnicodeDecodeError as err:
            raise InputError(400, f"malformed JSON body: not UTF-8 ({err.reason} near byte {start + err.start})") from None
    return "".join(parts)


def _count(body: bytes, byte: bytes) -> int:
    """Occurrences of the single byte ``byte`` in ``body``, counted :data:`WINDOW` bytes at a time."""
    return sum(body.count(byte, start, start + WINDOW) for start in range(0, len(body), WINDOW))


def _contains(body: bytes, word: bytes) -> bool:
    """Whether ``word`` occurs in ``body``, searched :data:`WINDOW` bytes at a time."""
    return any(body.find(word, start, start + WINDOW + len(word) - 1) >= 0 for start in range(0, len(body), WINDOW))


def _from_json(body: bytes, input_shape: tuple[int, ...], max_batch: int) -> np.ndarray:
    text = _utf8(body)
    limit = max_values(input_shape, max_batch)
    if _count(body, b",") > limit + MAX_DIMS + 1:
        raise InputError(413, f"the JSON body holds more than {limit} values, the limit of {max_batch} inputs per request")
    try:
        payload = json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float)
    except RecursionError:
        raise InputError(400, "malformed JSON body: nested too deeply") from None
    except json.JSONDecodeError as err:
        raise InputError(400, f"malformed JSON body: {excerpt(err.msg)} at line {err.lineno} column {err.colno}") from None
    if not isinstance(payload, dict):
        raise InputError(422, f"the JSON body must be an object with key 'inputs' or 'inputs_b64', got {type(payload).__name__}")
    keys = set(payload)
    if keys == {"inputs"}:
        return _from_nested(payload["inputs"], body, input_shape)
    if keys == {"inputs_b64", "shape"}:
        return _from_base64(payload["inputs_b64"], payload["shape"], input_shape, max_batch)
    raise InputError(
        422,
        "the JSON body must hold exactly {'inputs'} or {'inputs_b64', 'shape'}, got keys "
        + excerpt(", ".join(sorted(keys)), limit=EXCERPT_CHARS),
    )


def _nesting(inputs: list[Any], deepest: int) -> list[int]:
    """Lengths along the first element of each level of a nested list, at most ``deepest`` levels."""
    sizes, level = [], inputs
    while isinstance(level, list) and len(sizes) < deepest:
        sizes.append(len(level))
        if not level:
            break
        level = level[0]
    return sizes


def _from_nested(inputs: Any, body: bytes, input_shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(inputs, list):
        raise InputError(422, f"'inputs' must be a nested list of numbers, got {type(inputs).__name__}")
    depth = len(_nesting(inputs, MAX_DIMS + 1))
    if depth > MAX_DIMS:
        raise InputError(422, f"inputs must have shape {_shape_text(input_shape)}; 'inputs' is nested more than {MAX_DIMS} deep")
    # One np.asarray per input (at most max_batch of them) rather than one over the whole list:
    # as fast, the GIL can pass to the event loop between inputs, and each parsed input is freed
    # as soon as it is converted rather than all at once at the end.
    rows = []
    try:
        for index, row in enumerate(inputs):
            rows.append(np.asarray(row))
            inputs[index] = None
    except ValueError:
        raise InputError(422, "'inputs' is ragged: every row must have the same shape") from None
    for row in rows:
        if row.dtype.kind not in "fiu":
            what = {"U": "a string", "O": "null, a ragged row or an integer too large", "b": "a boolean"}.get(row.dtype.kind, str(row.dtype))
            raise InputError(422, f"inputs must be numbers; the list contains {what}")
    if len({row.shape for row in rows}) > 1:
        raise InputError(422, "'inputs' is ragged: every row must have the same shape")
    array = np.stack(rows) if rows else np.zeros((0,))
    # The body holds nothing but {"inputs": [...]} and the list holds no string, so a JSON
    # true/false anywhere in the (UTF-8) body is a boolean in the list, which numpy turns into 0 / 1.
    if _contains(body, b"true") or _contains(body, b"false"):
        raise InputError(422, "inputs must be numbers; the list contains a boolean")
    return array


def _from_base64(data: Any, shape: Any, input_shape: tuple[int, ...], max_batch: int) -> np.ndarray:
    if not isinstance(data, str):
        raise InputError(422, f"'inputs_b64' must be a base64 string, got {type(data).__name__}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise InputError(422, f"'shape' must be a list of integers, got {type(shape).__name__} {excerpt(json.dumps(shape)[:200])}")
    _check_shape(shape, input_shape, max_batch)
    needed = 4 * math.prod(shape)
    if len(data) > 4 * math.ceil(needed / 3) + 4:
        raise InputError(422, f"'inputs_b64' holds about {3 * len(data) // 4} bytes; shape {_shape_excerpt(shape)} of float32 needs {needed}")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as err:
        raise InputError(400, f"'inputs_b64' is not valid base64: {excerpt(str(err))}") from None
    if len(raw) != needed:
        raise InputError(422, f"'inputs_b64' holds {len(raw)} bytes; shape {_shape_excerpt(shape)} of float32 needs {needed}")
    return np.frombuffer(raw, dtype="<f4").reshape(shape)


_NPY_DTYPES = (np.dtype("<f4"), np.dtype("<f8"), np.dtype(">f4"), np.dtype(">f8"))


def _from_npy(body: bytes, input_shape: tuple[int, ...], max_batch: int) -> np.ndarray:
    """Parse a ``.npy`` body; the header is checked against the limits and the body length before any allocation."""
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream, max_header_size=NPY_MAX_HEADER)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream, max_header_size=NPY_MAX_HEADER)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, TypeError, SyntaxError, OverflowError, RecursionError) as err:
        raise InputError(400, f"malformed .npy body: {excerpt(str(err))}") from None
    if dtype not in _NPY_DTYPES:
        raise InputError(422, f"the .npy array must be float32 or float64, got {excerpt(str(dtype))}")
    _check_shape(shape, input_shape, max_batch)
    payload = memoryview(body)[stream.tell():]
    needed = math.prod(shape) * dtype.itemsize
    if len(payload) != needed:
        raise InputError(400, f"malformed .npy body: shape {_shape_excerpt(shape)} of {dtype} needs {needed} data bytes, got {len(payload)}")
    return np.frombuffer(payload, dtype=dtype).reshape(shape, order="F" if fortran else "C")


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
        InputError: 415 unsupported content type or a JSON charset other than UTF-8; 400
            malformed JSON (or not UTF-8), base64 or .npy; 422 wrong keys, shape, dimensions or
            dtype, an integer of more than :data:`MAX_INT_DIGITS` digits, a boolean, NaN/Inf,
            values outside [0, 1], empty batch; 413 batch over ``max_batch`` (or a JSON body with
            more values than ``max_batch`` inputs hold).
    """
    kind = check_content_type(content_type)
    shape = tuple(int(d) for d in input_shape)
    try:
        array = _from_json(body, shape, max_batch) if kind == JSON_TYPE else _from_npy(body, shape, max_batch)
        _check_shape(array.shape, shape, max_batch)
        values = np.asarray(array, dtype=np.float64)
    except (ValueError, OverflowError, RecursionError) as err:
        raise InputError(400, f"malformed body: {excerpt(str(err))}") from None
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
