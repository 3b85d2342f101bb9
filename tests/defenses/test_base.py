"""The ``Defense.__call__`` boundary refuses to hide a defense's own NaN/Inf or empty rows."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from stealguard.defenses import Defense, DefenseOutputError


class _Broken(Defense):
    """Returns the clean rows with one row replaced by a fixed bad value."""

    name = "broken"

    def __init__(self, row: int, value: float) -> None:
        self.row, self.value = row, value

    def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
        out = probs.clone()
        out[self.row] = self.value
        return out


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bad_perturb_output_raises_naming_defense_and_row(value, dtype):
    probs = torch.softmax(torch.randn(4, 5, generator=torch.Generator().manual_seed(0)), dim=1).to(dtype)
    with pytest.raises(DefenseOutputError, match=r"defense 'broken' produced row 2 ") as err:
        _Broken(row=2, value=value)(torch.zeros(4, 3), probs)
    for entry in probs[2].tolist():
        assert f"{entry:.3g}" not in str(err.value)


def test_negative_round_off_is_clamped_not_refused():
    class _RoundOff(Defense):
        name = "round_off"

        def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
            return probs + torch.tensor([-1e-12, 1e-12], dtype=probs.dtype)

    out = _RoundOff()(torch.zeros(3, 1), torch.tensor([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]))
    assert (out >= 0).all()
    torch.testing.assert_close(out.sum(dim=1), torch.ones(3))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0])
def test_bad_perturb_output_of_a_single_row_raises(value):
    """A single row skips the reduction over row totals; the check still holds."""
    with pytest.raises(DefenseOutputError, match=r"defense 'broken' produced row 0 "):
        _Broken(row=0, value=value)(torch.zeros(1, 3), torch.tensor([[0.2, 0.3, 0.5]]))


@pytest.mark.parametrize(
    "probs,match",
    [([[0.5, float("nan")]], "finite"), ([[1.5, -0.5]], "non-negative"), ([[0.7, 0.7]], "sum to 1")],
)
def test_bad_single_row_input_raises(probs, match):
    class _Identity(Defense):
        name = "identity"

        def _perturb(self, x: Tensor, probs: Tensor) -> Tensor:
            return probs

    with pytest.raises(ValueError, match=match):
        _Identity()(torch.zeros(1, 1), torch.tensor(probs))
