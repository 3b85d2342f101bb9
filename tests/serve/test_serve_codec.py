"""Request decoding: every malformed or invalid body gets its status and a precise message."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch

from stealguard.serve.codec import (
    BODY_OVERHEAD,
    JSON_BYTES_PER_VALUE,
    InputError,
    body_limit,
    check_content_type,
    decode_inputs,
    encode_npy,
    excerpt,
    media_type,
)
from tests.serve import _hostile

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
    with pytest.raises(InputError, match="holds 1000000000000 inputs, more than the limit of 4") as caught:
        decode(forged.getvalue(), "application/x-npy")
    assert caught.value.status == 413
    with pytest.raises(InputError, match="needs 32 data bytes, got 0") as caught:
        decode(_hostile.npy_header((2, *SHAPE)), "application/x-npy")
    assert caught.value.status == 400


CRAFTED = _hostile.NINE + _hostile.OTHERS


@pytest.mark.parametrize(("content_type", "body", "status"), [case[1:] for case in CRAFTED], ids=[case[0] for case in CRAFTED])
def test_crafted_bodies_get_a_4xx_with_a_short_one_line_message(content_type: str, body: bytes, status: int) -> None:
    with pytest.raises(InputError) as caught:
        decode_inputs(body, content_type, input_shape=_hostile.SHAPE, max_batch=300)
    assert caught.value.status == status, caught.value.message
    assert len(caught.value.message) < 300 and "\n" not in caught.value.message and "\r" not in caught.value.message


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((-1, -1, 8, 8), "negative"),
        ((2**64, 0, 8, 8), r"got \(18446744073709551616, 0, 8, 8\)"),
        ((10**50, 1, 8, 8), r"2\*\*166\+ inputs"),
        ((1,) * 65, "65 dimensions"),
        ((0, 1, 8, 8), "empty"),
    ],
)
def test_claimed_shapes_are_named_in_the_message(shape: tuple[int, ...], match: str) -> None:
    with pytest.raises(InputError, match=match):
        decode_inputs(_hostile.npy_header(shape), "application/x-npy", input_shape=_hostile.SHAPE, max_batch=300)


def test_fortran_order_npy_decodes_to_the_same_values() -> None:
    x = np.random.default_rng(0).random((3, *SHAPE), dtype=np.float32)
    fortran = _hostile.npy_header(x.shape, fortran=True) + np.asfortranarray(x).tobytes(order="F")
    assert torch.equal(decode(fortran, "application/x-npy"), torch.from_numpy(x))


def test_a_json_body_with_more_values_than_the_batch_limit_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def parse(*args: object, **kwargs: object) -> object:
        raise AssertionError("the body was parsed")

    monkeypatch.setattr(json, "loads", parse)
    body = "[" + "0," * (4 * 4 + 66) + "0]"
    with pytest.raises(InputError, match="more than 16 values") as caught:
        decode(f'{{"inputs": {body}}}')
    assert caught.value.status == 413


def test_body_limit_is_what_max_batch_inputs_can_take_in_the_format() -> None:
    values = 4 * 4
    assert body_limit("application/json", input_shape=SHAPE, max_batch=4, max_body_bytes=10**9) == values * JSON_BYTES_PER_VALUE + BODY_OVERHEAD
    assert body_limit("application/x-npy", input_shape=SHAPE, max_batch=4, max_body_bytes=10**9) == values * 8 + BODY_OVERHEAD
    assert body_limit(None, input_shape=SHAPE, max_batch=4, max_body_bytes=2048) == 2048
    with pytest.raises(InputError, match="Content-Type 'text/csv'") as caught:
        body_limit("text/csv", input_shape=SHAPE, max_batch=4, max_body_bytes=2048)
    assert caught.value.status == 415


def test_json_valid_for_every_batch_size_fits_the_json_limit() -> None:
    x = np.random.default_rng(1).random((4, *SHAPE))
    pretty = json.dumps({"inputs": x.tolist()}, indent=4).encode()
    assert len(pretty) <= body_limit("application/json", input_shape=SHAPE, max_batch=4, max_body_bytes=10**9)
    assert decode(pretty).shape == (4, *SHAPE)


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("application/json; charset=UTF-8", None),
        ('application/json; charset="utf-8"', None),
        ("application/json; charset=utf-16", 415),
        ("application/json; charset=latin-1", 415),
        ("application/x-npy; charset=utf-16", None),
        ("text/" + "x" * 60_000, 415),
    ],
)
def test_json_must_be_utf8_and_content_types_are_quoted_short(header: str, status: int | None) -> None:
    if status is None:
        check_content_type(header)
        return
    with pytest.raises(InputError) as caught:
        check_content_type(header)
    assert caught.value.status == status and len(caught.value.message) < 200


def test_excerpt_is_short_escaped_and_marks_the_cut() -> None:
    assert excerpt("a\nb") == "'a\\nb'"
    assert excerpt("x" * 500) == "'" + "x" * 80 + "'..."
    assert excerpt("\u00e9\x00") == "'\\xe9\\x00'"


def test_media_type_drops_parameters_and_defaults_to_json() -> None:
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    assert media_type(None) == "application/json"
