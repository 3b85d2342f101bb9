"""IDX parser round trips, corrupt and missing files, MNIST-layout folders through load_dataset."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stealguard.data import DataNotFoundError, load_dataset
from stealguard.data.idx import load_idx_dataset, read_idx, write_idx
from stealguard.data.registry import IDX_CLASSES


def write_mnist_layout(folder: Path, *, n_train: int = 12, n_test: int = 5, gz: bool = True, k: int = 10, size: int = 6) -> Path:
    """A tiny MNIST-layout folder: uint8 (N, size, size) images, labels cycling through k classes."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, size, size), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", (np.arange(n) % k).astype(np.uint8))
    return folder


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(["u1", "i1", ">i2", "<i2", "i4", "f4", "f8"]),
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    gz=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_round_trip(tmp_path_factory: pytest.TempPathFactory, dtype: str, shape: list[int], gz: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, array)
    back = read_idx(path)
    assert back.shape == array.shape and back.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(back, array)


def test_header_layout_matches_the_specification(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x", np.arange(6, dtype=np.int16).reshape(2, 3))
    raw = path.read_bytes()
    assert raw[:4] == b"\x00\x00\x0b\x02" and struct.unpack(">II", raw[4:12]) == (2, 3)
    assert struct.unpack(">6h", raw[12:]) == (0, 1, 2, 3, 4, 5)


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    (tmp_path / "misnamed").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x03abc"))
    assert read_idx(tmp_path / "misnamed").tolist() == [97, 98, 99]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\x00\x00", "shorter than the 4-byte magic"),
        (b"\x01\x00\x08\x01\x00\x00\x00\x01x", "two zero bytes"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01x", "unknown dtype code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x02", "shorter than its 12-byte header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05abc", r"shape \(5,\) .* file has 11 bytes"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x02abc", "file has 11 bytes"),
        (b"\x1f\x8b\x08\x00garbage", "gzip data cannot be decompressed"),
    ],
)
def test_corrupt_files_raise_value_error_naming_the_file(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + match):
        read_idx(path)


def test_truncated_gzip_raises_value_error(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "t.gz", np.zeros((50, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_idx(path)


def test_write_rejects_unsupported(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="IDX supports"):
        write_idx(tmp_path / "x", np.zeros(3, np.uint64))


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_layout_loads(tmp_path: Path, gz: bool, split: str) -> None:
    write_mnist_layout(tmp_path / "mnist", gz=gz)
    ds = load_dataset("mnist", root=tmp_path, split=split)
    assert len(ds) == (12 if split == "train" else 5)
    assert ds.input_shape == (1, 6, 6) and ds.images.dtype == torch.uint8
    assert ds.classes == tuple(str(k) for k in range(10)) and ds.name == "mnist"
    raw = read_idx(next((tmp_path / "mnist").glob(f"{'train' if split == 'train' else 't10k'}-images*")))
    assert torch.equal(ds.images[:, 0], torch.from_numpy(raw))


def test_fashionmnist_has_class_names(tmp_path: Path) -> None:
    write_mnist_layout(tmp_path / "fashionmnist")
    ds = load_dataset("fashionmnist", root=tmp_path)
    assert ds.classes[0] == "T-shirt/top" and ds.classes[-1] == "Ankle boot" and ds.classes == IDX_CLASSES["fashionmnist"]


def test_any_idx_folder_works_by_name_and_classes_span_both_splits(tmp_path: Path) -> None:
    folder = write_mnist_layout(tmp_path / "myletters", n_train=4, n_test=30, k=26)
    test = load_dataset("myletters", root=tmp_path, split="test")
    train = load_dataset("myletters", root=tmp_path, split="train")
    assert train.num_classes == test.num_classes == 26 and train.name == "myletters"
    assert int(train.labels.max()) == 3
    assert folder.is_dir()


def test_missing_files_name_every_expected_path(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("mnist", root=tmp_path, split="test")
    message = str(info.value)
    assert str(folder / "t10k-images-idx3-ubyte[.gz]") in message
    assert str(folder / "t10k-labels-idx1-ubyte[.gz]") in message
    assert "download=True" in message and "--download" in message


def test_missing_labels_only(tmp_path: Path) -> None:
    folder = write_mnist_layout(tmp_path / "kmnist")
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError, match=re.escape(str(folder / "train-labels-idx1-ubyte"))):
        load_dataset("kmnist", root=tmp_path)


def test_count_mismatch_and_bad_shapes(tmp_path: Path) -> None:
    folder = write_mnist_layout(tmp_path / "m")
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="holds 12 images but .* holds 3 labels"):
        load_idx_dataset(folder, split="train", name="m")
    write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((3, 4), np.uint8))
    with pytest.raises(ValueError, match=r"must be 3-D \(N, H, W\)"):
        load_idx_dataset(folder, split="train", name="m")


def test_labels_beyond_known_classes(tmp_path: Path) -> None:
    write_mnist_layout(tmp_path / "mnist", k=12)
    with pytest.raises(ValueError, match="label 11, but mnist has 10 classes"):
        load_dataset("mnist", root=tmp_path)


def test_corrupt_file_through_load_dataset_names_it(tmp_path: Path) -> None:
    folder = write_mnist_layout(tmp_path / "mnist")
    bad = folder / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        load_dataset("mnist", root=tmp_path)


def test_a_decompression_bomb_is_refused_without_inflating(tmp_path, monkeypatch) -> None:
    import gzip as gz

    import stealguard.data.idx as idx_module

    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(gz.compress(b"\x00\x00\x08\x03" + b"\x00" * (4 << 20)))
    monkeypatch.setattr(idx_module, "MAX_IDX_BYTES", 1 << 20)
    with pytest.raises(ValueError, match="inflates to more than 1048576 bytes"):
        idx_module.read_idx(bomb)


def test_truncated_and_multi_member_gzip(tmp_path) -> None:
    import gzip as gz

    import numpy as np

    from stealguard.data.idx import read_idx, write_idx

    whole = write_idx(tmp_path / "a.gz", np.arange(12, dtype=np.uint8).reshape(3, 4))
    payload = gz.decompress(whole.read_bytes())
    split = tmp_path / "b.gz"
    split.write_bytes(gz.compress(payload[:7]) + gz.compress(payload[7:]))
    assert np.array_equal(read_idx(split), np.arange(12, dtype=np.uint8).reshape(3, 4))
    cut = tmp_path / "c.gz"
    cut.write_bytes(whole.read_bytes()[:-6])
    with pytest.raises(ValueError, match="corrupt IDX file"):
        read_idx(cut)
