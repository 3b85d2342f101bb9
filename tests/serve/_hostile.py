"""Crafted hostile request bodies for a victim of input shape ``(1, 8, 8)`` (kept as regression cases).

Each case is ``(id, content_type, body, status)``: the status the server must answer.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np

SHAPE = (1, 8, 8)
HUGE_INT = "9" * 5000


def npy_header(shape: tuple[int, ...], descr: str = "<f4", fortran: bool = False) -> bytes:
    """A ``.npy`` header claiming ``shape`` (written without any check of the shape)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return buffer.getvalue()


def b64_body(shape: list[int], data: bytes = b"") -> bytes:
    return json.dumps({"inputs_b64": base64.b64encode(data).decode(), "shape": shape}).encode()


def _pixels() -> str:
    return json.dumps(np.zeros((1, *SHAPE)).tolist())


JSON = "application/json"
NPY = "application/x-npy"

NINE = [
    ("5000-digit int in inputs", JSON, ('{"inputs": [[[[' + HUGE_INT + "] ]]]}").encode(), 422),
    ("5000-digit int in shape", JSON, ('{"inputs_b64": "", "shape": [' + HUGE_INT + ", 1, 8, 8]}").encode(), 422),
    ("b64 shape [2**62, 2**62, 0]", JSON, b64_body([2**62, 2**62, 0]), 422),
    ("b64 shape [1]*65", JSON, b64_body([1] * 65, b"\0\0\0\0"), 422),
    ("b64 shape [1]*100000", JSON, b64_body([1] * 100_000, b"\0\0\0\0"), 413),
    ("npy shape (-1,-1,8,8)", NPY, npy_header((-1, -1, 8, 8)) + bytes(4 * 64), 422),
    ("npy shape (-1,1,-8,8)", NPY, npy_header((-1, 1, -8, 8)) + bytes(4 * 64), 422),
    ("npy shape (-2,-1,8,8)", NPY, npy_header((-2, -1, 8, 8)) + bytes(4 * 128), 422),
    ("npy shape (2**64,0,8,8)", NPY, npy_header((2**64, 0, 8, 8)), 422),
]
"""The nine requests that got a 500 before."""

OTHERS = [
    ("UTF-16 JSON with a boolean", JSON, '{"inputs": [[[[true]]]]}'.encode("utf-16"), 400),
    ("UTF-16 JSON without BOM", JSON, '{"inputs": [[[[1]]]]}'.encode("utf-16-le"), 400),
    ("UTF-32 JSON", JSON, '{"inputs": [[[[1]]]]}'.encode("utf-32"), 400),
    ("UTF-8 BOM", JSON, b"\xef\xbb\xbf" + _pixels().encode(), 400),
    ("charset utf-16", JSON + "; charset=utf-16", _pixels().encode("utf-16"), 415),
    ("boolean among numbers", JSON, _pixels().replace("0.0", "true", 1).encode(), 422),
    ("25-digit int in inputs", JSON, _pixels().replace("0.0", "1" * 25, 1).encode(), 422),
    ("nested 70 deep", JSON, ("[" * 70 + "0.5" + "]" * 70).join(['{"inputs": ', "}"]).encode(), 422),
    ("nested 100000 deep", JSON, ("[" * 100_000).join(['{"inputs": ', "}"]).encode(), 400),
    ("b64 negative batch", JSON, b64_body([-1, 1, 8, 8]), 422),
    ("b64 boolean in shape", JSON, b64_body([True, 1, 8, 8], bytes(256)), 422),
    ("b64 float in shape", JSON, b64_body([1.0, 1, 8, 8], bytes(256)), 422),  # type: ignore[list-item]
    ("b64 data longer than shape", JSON, b64_body([1, 1, 8, 8], bytes(4096)), 422),
    ("b64 batch over limit", JSON, b64_body([10**18, 1, 8, 8]), 413),
    ("huge key", JSON, json.dumps({"k" * 600_000: 1}).encode(), 422),
    ("npy object dtype", NPY, npy_header((1, 1, 8, 8), descr="|O") + bytes(8 * 64), 422),
    ("npy structured dtype", NPY, npy_header((1, 1, 8, 8), descr=[("a", "<f4")]) + bytes(4 * 64), 422),  # type: ignore[arg-type]
    ("npy 65 dims", NPY, npy_header((1,) * 65) + bytes(4), 422),
    ("npy header over 10000 bytes", NPY, b"\x93NUMPY\x02\x00" + (20_000).to_bytes(4, "little") + b" " * 20_000, 400),
    ("npy header not a dict", NPY, b"\x93NUMPY\x01\x00\x10\x00[1, 2, 3]      \n", 400),
    ("npy version 9", NPY, b"\x93NUMPY\x09\x00" + bytes(16), 400),
    ("npy shape (2**64,1,8,8)", NPY, npy_header((2**64, 1, 8, 8)), 413),
    ("npy fortran, wrong byte count", NPY, npy_header((1, 1, 8, 8), fortran=True) + bytes(7), 400),
]
"""Further hostile bodies: encodings, booleans, nesting, shapes, dtypes, headers."""
