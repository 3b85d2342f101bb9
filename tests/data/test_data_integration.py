"""Real data sets from ../shared/data (or $STEALGUARD_DATA_ROOT); skipped when absent."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest
import torch

from stealguard.data import default_normalization, load_dataset, load_queryset
from stealguard.data.cifar import CIFAR10_CLASSES

pytestmark = pytest.mark.integration

def _require(root: Path, *relative: str) -> None:
    missing = [r for r in relative if not (root / r).exists()]
    if missing:
        pytest.skip(f"real data files missing under {root}: {', '.join(missing)}")


def test_mnist_sizes_and_published_statistics(real_data: Path) -> None:
    _require(real_data, "mnist/train-images-idx3-ubyte.gz", "mnist/t10k-images-idx3-ubyte.gz")
    train = load_dataset("mnist", root=real_data)
    test = load_dataset("mnist", root=real_data, split="test")
    assert (len(train), len(test)) == (60000, 10000)
    assert train.input_shape == (1, 28, 28) and train.num_classes == 10
    assert torch.bincount(train.labels).min() > 5000
    mean, std = default_normalization(train)
    assert mean[0] == pytest.approx(0.1307, abs=5e-4) and std[0] == pytest.approx(0.3081, abs=5e-4)
    assert float(train.tensors()[0].mean()) == pytest.approx(0.1307, abs=5e-4)


def test_fashionmnist_loads_with_class_names(real_data: Path) -> None:
    _require(real_data, "fashionmnist/train-images-idx3-ubyte.gz", "fashionmnist/t10k-images-idx3-ubyte.gz")
    train = load_dataset("fashionmnist", root=real_data)
    test = load_dataset("fashionmnist", root=real_data, split="test")
    assert (len(train), len(test)) == (60000, 10000) and test.input_shape == (1, 28, 28)
    assert train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot"
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    query = load_queryset("fashionmnist", root=real_data, split="test", input_shape=(3, 32, 32))
    assert query.input_shape == (3, 32, 32) and len(query) == 10000


@pytest.fixture(scope="module")
def cifar_tree(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The archive's test split only (it comes first in the archive, so reading stops early)."""
    _require(real_data, "cifar10/cifar10-jpg.tar.gz")
    if not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python's tarfile has no safe extraction filter")
    out = tmp_path_factory.mktemp("cifar10")
    with tarfile.open(real_data / "cifar10" / "cifar10-jpg.tar.gz") as tar:
        keep = []
        for member in tar:
            if member.name.startswith("cifar10-jpg/train"):
                break
            keep.append(member)
        tar.extractall(out, members=keep, filter="data")
    return out / "cifar10-jpg"


def test_cifar10_imagefolder_from_archive(cifar_tree: Path) -> None:
    test = load_dataset("imagefolder", root=cifar_tree, split="test")
    assert test.classes == CIFAR10_CLASSES and test.name == "cifar10-jpg"
    assert len(test) == 10000 and torch.bincount(test.labels).tolist() == [1000] * 10
    assert test.input_shape == (3, 32, 32) and test.images.dtype == torch.uint8
    mean, _ = default_normalization(test)
    assert mean == pytest.approx([0.4942, 0.4851, 0.4504], abs=0.01)  # published CIFAR-10 test means; JPEG shifts them slightly


def test_cifar10_by_name_from_an_extracted_jpg_tree(cifar_tree: Path, tmp_path: Path) -> None:
    for name in CIFAR10_CLASSES:
        folder = tmp_path / "cifar10" / "cifar10-jpg" / "test" / name
        folder.mkdir(parents=True)
        for source in sorted((cifar_tree / "test" / name).iterdir())[:5]:
            shutil.copyfile(source, folder / source.name)
    query = load_queryset("cifar10", root=tmp_path, split="test", input_shape=(1, 28, 28))
    assert query.name == "cifar10" and query.classes == CIFAR10_CLASSES and query.input_shape == (1, 28, 28)
    assert len(query) == 50 and torch.bincount(query.labels).tolist() == [5] * 10
