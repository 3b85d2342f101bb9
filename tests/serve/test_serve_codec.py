"""Request decoding: every malformed or invalid body gets its status and a precise message."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch

from stealguard.serve.codec import InputError, decode_inputs, encode_npy, media_type

SHAPE = (1, 2, 2)


def decode(body: bytes | str, content_type: str | None = "application/json", max_batch: int = 4) -> torch.Tensor:
    raw = body.encode() if isinstance(body, str) else body
    return decode_inputs(raw, content_type, input_shape=SHAPE, max_batch=max_batch)


def nested(batch: int, value: float = 0.5) -> list:
    return np.full((batch, *SHAPE), value).tolist()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def test_json_npy_and_base64_forms_decode_to_the_same_tensor() -> None:
    x = torch.rand(3, *SHAPE)
    from_json = decode(json.dumps({"inputs": x.tolist()}))
    from_npy = decode(encode_npy(x), "application/x-npy")
    b64 = base64.b64encode(x.numpy().astype("<f4").tobytes()).decode()
    from_b64 = decode(json.dumps({"inputs_b64": b64, "shape": [3, *SHAPE]}), "application/json; charset=utf-8")
    for decoded in (from_json, from_npy, from_b64):
        assert decoded.dtype == torch.float32 and torch.equal(decoded, x)


def test_float64_npy_and_integer_pixels_are_accepted() -> None:
    assert decode(npy(np.zeros((2, *SHAPE), dtype=np.float64)), "application/x-npy").shape == (2, *SHAPE)
    assert torch.equal(decode(json.dumps({"inputs": np.ones((1, *SHAPE), dtype=int).tolist()})), torch.ones(1, *SHAPE))


@pytest.mark.parametrize(
    ("body", "content_type", "status", "match"),
    [
        ('{"inputs": [[1]', "application/json", 400, "malformed JSON"),
        (b"\xff\xfe", "application/json", 400, "malformed JSON"),
        ("[1, 2]", "application/json", 422, "must be an object"),
        ('{"data": []}', "application/json", 422, "exactly"),
        ('{"inputs": 3}', "application/json", 422, "nested list"),
        (json.dumps({"inputs": nested(2)[:1] + [[[[0.1]]]]}), "application/json", 422, "ragged"),
        (json.dumps({"inputs": [[[["a", "b"], ["c", "d"]]]]}), "application/json", 422, "string"),
        (json.dumps({"inputs": [[[[True, 0.5], [0.5, 0.5]]]]}), "application/json", 422, "boolean"),
        (json.dumps({"inputs": [[[[None, 0.5], [0.5, 0.5]]]]}), "application/json", 422, "numbers"),
        ('{"inputs": [[[[NaN, 0.5], [0.5, 0.5]]]]}', "application/json", 422, "NaN"),
        ('{"inputs": [[[[Infinity, 0.5], [0.5, 0.5]]]]}', "application/json", 422, "Infinity"),
        ('{"inputs": [[[[1e999, 0.5], [0.5, 0.5]]]]}', "application/json", 422, "NaN or Inf"),
        (json.dumps({"inputs": nested(1, 1.5)}), "application/json", 422, r"\[0, 1\].*\[1.5, 1.5\]"),
        (json.dumps({"inputs": nested(1, -0.25)}), "application/json", 422, r"\[0, 1\]"),
        (json.dumps({"inputs": np.zeros((1, 1, 2, 3)).tolist()}), "application/json", 422, r"shape \(B, 1, 2, 2\), got \(1, 1, 2, 3\)"),
        (json.dumps({"inputs": np.zeros((1, 2, 2)).tolist()}), "application/json", 422, "shape"),
        ('{"inputs": []}', "application/json", 422, "empty"),
        (json.dumps({"inputs": nested(5)}), "application/json", 413, "5 inputs, more than the limit of 4"),
        ("[" * 100_000, "application/json", 400, "malformed JSON"),
        ('{"inputs_b64": "!!!", "shape": [1, 1, 2, 2]}', "application/json", 400, "base64"),
        ('{"inputs_b64": "AAAA", "shape": [1, 1, 2, 2]}', "application/json", 422, "holds 3 bytes"),
        ('{"inputs_b64": "AAAA", "shape": "x"}', "application/json", 422, "'shape'"),
        (b"not a npy file", "application/x-npy", 400, "malformed .npy"),
        (npy(np.zeros((1, *SHAPE), dtype=np.int32)), "application/x-npy", 422, "float32 or float64"),
        (npy(np.zeros((1, *SHAPE), dtype=np.float32))[:-4], "application/x-npy", 400, "data bytes"),
        ("x", "text/plain", 415, "Content-Type 'text/plain'"),
    ],
)
def test_bad_bodies_get_their_status_and_message(body: bytes | str, content_type: str, status: int, match: str) -> None:
    with pytest.raises(InputError, match=match) as caught:
        decode(body, content_type)
    assert caught.value.status == status


def test_npy_header_claiming_a_huge_array_is_refused_before_allocation() -> None:
    forged = io.BytesIO()
    np.lib.format.write_array_header_1_0(forged, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 1, 2, 2)})
    with pytest.raises(InputError, match="needs 16000000000000 data bytes, got 0") as caught:
        decode(forged.getvalue(), "application/x-npy")
    assert caught.value.status == 400


def test_media_type_drops_parameters_and_defaults_to_json() -> None:
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    assert media_type(None) == "application/json"
