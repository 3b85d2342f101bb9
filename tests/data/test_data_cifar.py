"""CIFAR pickle batches and the restricted unpickler."""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from stealguard.data import DataNotFoundError, load_dataset
from stealguard.data.cifar import CIFAR10_CLASSES
from stealguard.data.safepickle import SafeUnpickler, safe_loads


def _binstring(value: bytes) -> bytes:
    if len(value) < 256:
        return b"U" + bytes([len(value)]) + value
    return b"T" + struct.pack("<I", len(value)) + value


def py2_batch_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """Bytes as Python 2's cPickle (protocol 2) writes a CIFAR batch: str as BINSTRING, numpy 1.x globals."""
    assert data.dtype == np.uint8 and data.ndim == 2 and all(0 <= v < 256 for v in labels)
    shape = b"(" + b"".join(b"J" + struct.pack("<i", d) for d in data.shape) + b"t"
    dtype = b"cnumpy\ndtype\n" + _binstring(b"u1") + b"K\x00K\x01\x87R"
    dtype += b"(K\x03" + _binstring(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    array = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _binstring(b"b") + b"\x87R"
    array += b"(K\x01" + shape + dtype + b"\x89" + _binstring(data.tobytes()) + b"tb"
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return b"\x80\x02}(" + _binstring(b"data") + array + _binstring(b"labels") + label_list + b"u."


def fake_batch(n: int, seed: int, k: int = 10) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, k, n)]


def write_cifar10(folder: Path, *, n: int = 4, py2: bool = False, protocol: int = 4, meta: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data, labels = fake_batch(n, seed)
        if py2:
            (folder / name).write_bytes(py2_batch_pickle(data, labels))
        else:
            entry = {"batch_label": name, "data": data, "labels": labels, "filenames": [f"{i}.png" for i in range(n)]}
            (folder / name).write_bytes(pickle.dumps(entry, protocol=protocol))
    if meta:
        names = [f"class_{k}" for k in range(10)]
        (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names, "num_vis": 3072}, protocol=2))
    return folder


def test_py2_style_pickle_is_what_plain_pickle_reads() -> None:
    data, labels = fake_batch(3, 0)
    entry = pickle.loads(py2_batch_pickle(data, labels), encoding="latin1")
    np.testing.assert_array_equal(entry["data"], data)
    assert entry["labels"] == labels


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_safe_loads_reads_numpy_arrays_at_every_protocol(protocol: int) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 12)
    entry = {"data": array, "x": np.float32(1.5), "f": np.linspace(0, 1, 5), "labels": [1, 2]}
    back = safe_loads(pickle.dumps(entry, protocol=protocol))
    np.testing.assert_array_equal(back["data"], array)
    np.testing.assert_array_equal(back["f"], entry["f"])
    assert back["x"] == np.float32(1.5) and back["labels"] == [1, 2]


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_refuses_a_pickle_that_would_call_os_system(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"data": _Evil(marker), "labels": [0]})
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global (posix|os|nt)\.system"):
        safe_loads(payload)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("builtins", "eval"),
        ("builtins", "getattr"),
        ("subprocess", "Popen"),
        ("numpy", "load"),
        ("numpy.lib.npyio", "load"),
        ("torch", "load"),
    ],
)
def test_refuses_every_other_global(module: str, name: str) -> None:
    payload = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n."
    with pytest.raises(pickle.UnpicklingError, match=re.escape(f"{module}.{name}")):
        SafeUnpickler(io.BytesIO(payload)).load()


def test_loader_turns_a_malicious_batch_into_value_error(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path / "cifar10" / "cifar-10-batches-py")
    marker = tmp_path / "pwned"
    (folder / "test_batch").write_bytes(pickle.dumps({"data": _Evil(marker), "labels": [0]}))
    with pytest.raises(ValueError, match=re.escape(str(folder / "test_batch")) + ".*refusing to load global"):
        load_dataset("cifar10", root=tmp_path, split="test")
    assert not marker.exists()


@pytest.mark.parametrize("py2", [True, False])
def test_cifar10_canonical_layout(tmp_path: Path, py2: bool) -> None:
    folder = write_cifar10(tmp_path / "cifar10" / "cifar-10-batches-py", py2=py2)
    train = load_dataset("cifar10", root=tmp_path)
    test = load_dataset("cifar10", root=tmp_path, split="test")
    assert len(train) == 20 and len(test) == 4 and train.input_shape == (3, 32, 32)
    assert train.images.dtype == torch.uint8 and train.classes == tuple(f"class_{k}" for k in range(10))
    data, labels = fake_batch(4, 5)
    np.testing.assert_array_equal(test.images.numpy().reshape(4, -1), data)
    assert test.labels.tolist() == labels
    first, _ = fake_batch(4, 0)
    assert int(train.images[0, 1, 0, 0]) == int(first[0, 1024])  # row layout: R plane, G plane, B plane
    assert folder.is_dir()


def test_cifar10_files_directly_in_folder_without_meta(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "cifar10", meta=False, protocol=2)
    ds = load_dataset("cifar10", root=tmp_path, split="test")
    assert ds.classes == CIFAR10_CLASSES and len(ds) == 4


def test_cifar100_with_meta(tmp_path: Path) -> None:
    folder = tmp_path / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    for seed, name in enumerate(("train", "test")):
        data, labels = fake_batch(6, seed, k=100)
        entry = {"data": data, "fine_labels": labels, "coarse_labels": [v // 5 for v in labels]}
        (folder / name).write_bytes(pickle.dumps(entry))
    names = [f"fine{k:02d}" for k in range(100)]
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": names, "coarse_label_names": [f"c{k}" for k in range(20)]}))
    ds = load_dataset("cifar100", root=tmp_path, split="test")
    assert ds.num_classes == 100 and ds.classes[7] == "fine07" and ds.labels.tolist() == fake_batch(6, 1, k=100)[1]


def test_cifar_imagefolder_fallback(tmp_path: Path) -> None:
    from PIL import Image

    for split in ("train", "test"):
        for name in ("airplane", "cat"):
            folder = tmp_path / "cifar10" / "cifar10-jpg" / split / name
            folder.mkdir(parents=True)
            Image.new("RGB", (32, 32), (10, 20, 30)).save(folder / "0001.png")
    ds = load_dataset("cifar10", root=tmp_path, split="test")
    assert ds.name == "cifar10" and ds.classes == ("airplane", "cat") and len(ds) == 2


def test_missing_cifar_names_every_expected_path(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("cifar10", root=tmp_path, split="train")
    message = str(info.value)
    for k in range(1, 6):
        assert str(tmp_path / "cifar10" / "cifar-10-batches-py" / f"data_batch_{k}") in message
    assert str(tmp_path / "cifar10" / "cifar10-jpg" / "train") in message and "download=True" in message


def test_one_missing_batch_is_not_found(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path / "cifar10" / "cifar-10-batches-py")
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataNotFoundError, match=re.escape(str(folder / "data_batch_3"))):
        load_dataset("cifar10", root=tmp_path)
    assert len(load_dataset("cifar10", root=tmp_path, split="test")) == 4


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ([1, 2, 3], "expected a dict"),
        ({"data": np.zeros((2, 3072), np.uint8)}, "keys 'data' and 'labels' required"),
        ({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, r"shape \(n, 3072\)"),
        ({"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}, "uint8"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "2 images but"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": ["a", "b"]}, "list of integers"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, "label 10 beyond the 10 classes"),
    ],
)
def test_corrupt_batches_raise_value_error(tmp_path: Path, entry: object, match: str) -> None:
    folder = write_cifar10(tmp_path / "cifar10", meta=False)
    (folder / "test_batch").write_bytes(pickle.dumps(entry))
    with pytest.raises(ValueError, match=match):
        load_dataset("cifar10", root=tmp_path, split="test")


def test_truncated_batch_names_the_file(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path / "cifar10", meta=False)
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:100])
    with pytest.raises(ValueError, match=re.escape(str(folder / "test_batch")) + " is not a readable CIFAR pickle"):
        load_dataset("cifar10", root=tmp_path, split="test")
