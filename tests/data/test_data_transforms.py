"""resize / to_channels: shapes, value range, exact identities, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stealguard.data import resize, to_channels
from stealguard.data.transforms import LUMA_601


def batch(n: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    return torch.rand((n, c, h, w), generator=torch.Generator().manual_seed(seed))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 3), c=st.sampled_from([1, 3]), h=st.integers(1, 20), w=st.integers(1, 20),
    out_h=st.integers(1, 24), out_w=st.integers(1, 24), seed=st.integers(0, 1000),
)
def test_resize_shape_range_and_input_untouched(n: int, c: int, h: int, w: int, out_h: int, out_w: int, seed: int) -> None:
    x = batch(n, c, h, w, seed)
    before = x.clone()
    y = resize(x, (out_h, out_w))
    assert y.shape == (n, c, out_h, out_w) and y.dtype == x.dtype
    if n:
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        assert float(y.min()) >= float(x.min()) - 1e-6 and float(y.max()) <= float(x.max()) + 1e-6
    assert torch.equal(x, before)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 3), h=st.integers(1, 9), w=st.integers(1, 9), seed=st.integers(0, 1000))
def test_gray_rgb_gray_is_identity_and_rgb_is_repeat(n: int, h: int, w: int, seed: int) -> None:
    gray = batch(n, 1, h, w, seed)
    rgb = to_channels(gray, 3)
    assert rgb.shape == (n, 3, h, w) and torch.equal(rgb[:, 0], rgb[:, 2]) and torch.equal(rgb[:, 1], gray[:, 0])
    torch.testing.assert_close(to_channels(rgb, 1), gray, atol=1e-6, rtol=0)


def test_resize_rows_are_independent() -> None:
    x = batch(4, 3, 10, 7, 0)
    y = resize(x, (5, 9))
    for i in range(4):
        torch.testing.assert_close(resize(x[i : i + 1], (5, 9))[0], y[i])


def test_luma_weights() -> None:
    assert sum(LUMA_601) == pytest.approx(1.0)
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]).view(4, 3, 1, 1)
    assert to_channels(colors, 1).flatten().tolist() == pytest.approx([0.299, 0.587, 0.114, 1.0])


def test_constant_images_stay_constant() -> None:
    x = torch.full((2, 3, 13, 17), 0.37)
    for size in ((4, 4), (13, 17), (40, 29)):
        torch.testing.assert_close(resize(x, size), torch.full((2, 3, *size), 0.37))


def test_downscale_is_antialiased() -> None:
    checker = (torch.arange(32).view(1, -1) + torch.arange(32).view(-1, 1)) % 2
    x = checker.float().view(1, 1, 32, 32)
    y = resize(x, (8, 8))
    torch.testing.assert_close(y, torch.full_like(y, 0.5), atol=0.02, rtol=0)


def test_upscale_of_2x2_interpolates_between_pixels() -> None:
    x = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).view(1, 1, 2, 2)
    y = resize(x, (2, 8))[0, 0, 0]
    assert y[0] == 0.0 and y[-1] == 1.0 and bool((y[1:] >= y[:-1]).all())


def test_same_size_or_channels_returns_input() -> None:
    x = batch(2, 3, 5, 5, 1)
    assert resize(x, (5, 5)) is x and to_channels(x, 3) is x


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: resize(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), (2, 2)), TypeError, "floating point"),
        (lambda: resize(torch.zeros(1, 4, 4), (2, 2)), ValueError, r"\(N, C, H, W\)"),
        (lambda: resize(torch.zeros(1, 1, 4, 4), (0, 2)), ValueError, "size entries must be >= 1"),
        (lambda: resize(torch.zeros(1, 1, 4, 4), 8), TypeError, r"pair \(H, W\)"),
        (lambda: resize([[0.0]], (2, 2)), TypeError, "torch.Tensor"),
        (lambda: to_channels(torch.zeros(1, 1, 4, 4), 2), ValueError, "1 .gray. or 3 .RGB., got 2"),
        (lambda: to_channels(torch.zeros(1, 4, 4, 4), 1), ValueError, "got C = 4"),
        (lambda: to_channels(torch.zeros(1, 1, 4, 4), True), TypeError, "channels must be an integer"),
    ],
)
def test_errors(call, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        call()
