"""Shared test inputs for defenses: a hypothesis strategy for posterior batches and ``make_defense``.

Every name in ``stealguard.defenses.names()`` needs an entry in ``TEST_PARAMS`` (or
``SURROGATE_DEFENSES``); ``defense_names()`` marks names without one as skipped with a
message saying so. Test parameters must give deterministic defenses whose rows are
independent (batch == row by row), because the invariant tests check exactly that.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import strategies as st
from torch import nn

import stealguard.defenses as D

INPUT_DIM = 8
"""Feature count of the synthetic queries ``x`` (N, INPUT_DIM)."""

TEST_PARAMS: dict[str, dict[str, Any]] = {
    "none": {},
    "reverse_sigmoid": {"beta": 0.3, "gamma": 0.2},
    "reverse_sigmoid_keyed": {"beta": 0.3, "gamma": 0.2, "spread": 0.5, "seed": 5},
    "dcp": {"tau": 0.8, "beta": 0.3, "gamma": 0.2, "nu": 1000.0, "epsilon": 0.5},
    "random_noise": {"epsilon": 0.2, "norm": "l1", "consistent": True, "seed": 3},
    "topk": {"k": 3},
    "rounding": {"decimals": 2},
    "label_only": {},
}
"""Default test parameters per registered defense (deterministic, row-independent settings)."""

VARIANT_PARAMS: dict[str, tuple[str, dict[str, Any]]] = {
    "random_noise:space=logit": ("random_noise", {"epsilon": 2.0, "norm": "l1", "space": "logit", "consistent": True, "seed": 3}),
    "random_noise:space=logit,norm=l2": (
        "random_noise", {"epsilon": 1.0, "norm": "l2", "space": "logit", "consistent": True, "seed": 3}
    ),
    "dcp:variant=authors": ("dcp", {"beta": 0.5, "gamma": 0.2, "nu": 1000.0, "variant": "authors"}),
    "dcp:variant=authors,epsilon=0.3": ("dcp", {"beta": 1.2, "gamma": 0.2, "epsilon": 0.3, "variant": "authors"}),
}
"""Further settings of registered defenses that the invariant tests also cover, by spec (name, parameters)."""

SURROGATE_DEFENSES: dict[str, dict[str, Any]] = {
    "mad": {"epsilon": 0.5},
    "mad_argmax": {"epsilon": 0.5},
    "mad_keyed": {"epsilon": 0.5, "mix": 0.5, "seed": 7},
}
"""Defenses that take a ``surrogate=`` network; ``make_defense`` builds a small MLP for them."""

MISINFORMATION_DEFENSES: dict[str, dict[str, Any]] = {
    "adaptive_misinformation": {"tau": 0.8, "nu": 1000.0},
}
"""Defenses that take a ``misinformation=`` network; ``make_defense`` builds a small MLP (seed 1) for them."""

MAX_CLASSES: dict[str, int] = {"mad": 64, "mad_argmax": 64, "mad_keyed": 64}
"""Cap on K for defenses whose cost grows with K (default cap: 1000)."""


def has_test_params(name: str) -> bool:
    return name in TEST_PARAMS or name in VARIANT_PARAMS or name in SURROGATE_DEFENSES or name in MISINFORMATION_DEFENSES


def defense_names() -> list[Any]:
    """``names()`` as pytest params; names without test parameters are skipped with the reason."""
    return [
        pytest.param(
            name,
            marks=()
            if has_test_params(name)
            else pytest.mark.skip(
                reason=f"no test parameters for defense {name!r}: add it to TEST_PARAMS in tests/defenses/conftest.py"
            ),
        )
        for name in [*D.names(), *VARIANT_PARAMS]
    ]


def max_classes(name: str) -> int:
    return MAX_CLASSES.get(name, 1000)


def make_surrogate(num_classes: int, input_dim: int, seed: int = 0) -> nn.Module:
    """A tiny MLP ``(N, input_dim) -> (N, num_classes)``, initialised from ``seed`` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(input_dim, 16), nn.ReLU(), nn.Linear(16, num_classes))
    return net.eval()


def make_defense(name: str, num_classes: int, input_dim: int = INPUT_DIM) -> D.Defense:
    """Build the registered defense ``name`` (or the setting ``VARIANT_PARAMS[name]``) with its test parameters."""
    if name in VARIANT_PARAMS:
        base, params = VARIANT_PARAMS[name]
        return D.create(base, **params)
    if name in SURROGATE_DEFENSES:
        return D.create(name, surrogate=make_surrogate(num_classes, input_dim), **SURROGATE_DEFENSES[name])
    if name in MISINFORMATION_DEFENSES:
        model = make_surrogate(num_classes, input_dim, seed=1)
        return D.create(name, misinformation=model, **MISINFORMATION_DEFENSES[name])
    if name not in TEST_PARAMS:
        pytest.skip(f"no test parameters for defense {name!r}: add it to TEST_PARAMS in tests/defenses/conftest.py")
    return D.create(name, **TEST_PARAMS[name])


def make_queries(rows: int, input_dim: int = INPUT_DIM, seed: int = 0) -> torch.Tensor:
    """Distinct synthetic query rows ``(rows, input_dim)`` float32."""
    return torch.randn(rows, input_dim, generator=torch.Generator().manual_seed(seed))


ROW_KINDS = ("peaked", "flat", "onehot", "uniform", "near_zero", "tied")


def _row(kind: str, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """One float64 posterior row of the given kind."""
    logits = torch.randn(num_classes, generator=gen, dtype=torch.float64)
    if kind == "peaked":
        scale = 10 ** (1 + 1.5 * float(torch.rand(1, generator=gen)))
        return torch.softmax(scale * logits, dim=0)
    if kind == "flat":
        scale = 10 ** (-2 + 2 * float(torch.rand(1, generator=gen)))
        return torch.softmax(scale * logits, dim=0)
    if kind == "onehot":
        row = torch.zeros(num_classes, dtype=torch.float64)
        row[int(torch.randint(num_classes, (1,), generator=gen))] = 1.0
        return row
    if kind == "uniform":
        return torch.full((num_classes,), 1.0 / num_classes, dtype=torch.float64)
    if kind == "near_zero":
        row = torch.softmax(3 * logits, dim=0)
        tiny = torch.rand(num_classes, generator=gen) < 0.5
        row = torch.where(tiny, row * 1e-30, row)
        return row / row.sum()
    if kind == "tied":
        return torch.softmax(torch.randint(0, 3, (num_classes,), generator=gen).to(torch.float64), dim=0)
    raise ValueError(f"unknown row kind {kind!r}")


@st.composite
def posterior_batches(
    draw: st.DrawFn,
    *,
    min_rows: int = 0,
    max_rows: int = 16,
    min_classes: int = 2,
    max_classes: int = 1000,
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64),
) -> torch.Tensor:
    """Posterior batches ``(N, K)`` on the simplex.

    N in [min_rows, max_rows]; K mostly small (2..10), sometimes anywhere up to ``max_classes``,
    sometimes exactly ``max_classes``. Rows: softmax of random logits at high (peaked) or low
    (flat) inverse temperature, exact one-hot, uniform, rows with entries ~1e-30 and rows with
    exactly tied entries. float32 or float64 (built in float64, then cast).
    """
    rows = draw(st.integers(min_rows, max_rows))
    num_classes = draw(
        st.one_of(
            st.integers(min_classes, min(10, max_classes)),
            st.integers(min_classes, max_classes),
            st.just(max_classes),
        )
    )
    dtype = draw(st.sampled_from(dtypes))
    kinds = draw(st.lists(st.sampled_from(ROW_KINDS), min_size=rows, max_size=rows))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if rows == 0:
        return torch.empty(0, num_classes, dtype=dtype)
    return torch.stack([_row(kind, num_classes, gen) for kind in kinds]).to(dtype)
