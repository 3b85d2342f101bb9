"""Device resolution and the label results record."""

from __future__ import annotations

import pytest
import torch

from stealguard.device import device_label, resolve_device


@pytest.mark.parametrize("given", ["cpu", torch.device("cpu")])
def test_the_cpu_is_the_cpu(given) -> None:
    assert resolve_device(given) == torch.device("cpu") and device_label(given) == "cpu"


def test_auto_picks_what_the_machine_has() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected == resolve_device(None).type
    assert device_label("auto").split(":")[0] == expected


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", 3.5])
def test_names_of_no_device_are_refused(bad) -> None:
    with pytest.raises(ValueError, match="device must be"):
        resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused() -> None:
    with pytest.raises(ValueError, match="no CUDA GPU"):
        device_label("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_gpu_label_names_the_card() -> None:
    assert device_label("cuda") == f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name()})"
