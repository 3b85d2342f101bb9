"""ImageFolder trees written with Pillow in tmp_path."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stealguard.data import DataNotFoundError, imagefolder, load_dataset
from stealguard.data.imagefolder import load_imagefolder


def write_tree(
    top: Path, layout: dict[str, dict[str, int]], *, mode: str = "RGB", size: tuple[int, int] = (5, 4), ext: str = "png"
) -> Path:
    """``layout[split][class] = count`` images of ``mode`` and ``size`` (W, H); pixel value encodes (class, index)."""
    for split, classes in layout.items():
        for c, (name, count) in enumerate(sorted(classes.items())):
            folder = top / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                value = 40 * c + i
                color = value if mode == "L" else (value, 255 - value, 7)
                Image.new(mode, size, color).save(folder / f"{i:04d}.{ext}")
    return top


def test_rgb_tree_classes_sorted_and_labels_follow_folders(tmp_path: Path) -> None:
    top = write_tree(tmp_path / "tree", {"train": {"zebra": 2, "ant": 3, "Mole": 1}, "test": {"ant": 1, "zebra": 1}})
    ds = load_dataset("imagefolder", root=top)
    assert ds.classes == ("Mole", "ant", "zebra")
    assert ds.labels.tolist() == [0, 1, 1, 1, 2, 2]
    assert ds.input_shape == (3, 4, 5) and ds.images.dtype == torch.uint8 and ds.name == "tree"
    assert ds.images[1, :, 0, 0].tolist() == [40, 215, 7]
    test = load_dataset("imagefolder", root=top, split="test")
    assert test.classes == ds.classes and test.labels.tolist() == [1, 2]


def test_classes_are_the_union_of_both_splits(tmp_path: Path) -> None:
    top = write_tree(tmp_path / "t", {"train": {"a": 1, "c": 1}, "test": {"b": 1, "c": 1}})
    train = load_dataset("imagefolder", root=top)
    assert train.classes == ("a", "b", "c") and train.labels.tolist() == [0, 2]


def test_all_gray_gives_one_channel(tmp_path: Path) -> None:
    top = write_tree(tmp_path / "g", {"train": {"x": 2, "y": 2}}, mode="L", ext="bmp")
    ds = load_dataset("imagefolder", root=top)
    assert ds.input_shape == (1, 4, 5) and ds.images[3, 0, 0, 0].item() == 41


def test_mixed_gray_and_rgb_gives_rgb_with_gray_repeated(tmp_path: Path) -> None:
    top = write_tree(tmp_path / "m", {"train": {"x": 1}})
    Image.new("L", (5, 4), 99).save(top / "train" / "x" / "0009.jpg", quality=100)
    Image.new("RGBA", (5, 4), (1, 2, 3, 4)).save(top / "train" / "x" / "0010.png")
    ds = load_dataset("imagefolder", root=top)
    assert ds.input_shape == (3, 4, 5) and len(ds) == 3
    gray = ds.images[1].float()
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2]) and abs(gray.mean().item() - 99) < 2
    assert ds.images[2, :, 0, 0].tolist() == [1, 2, 3]


def test_non_images_and_hidden_files_are_ignored(tmp_path: Path) -> None:
    top = write_tree(tmp_path / "n", {"train": {"x": 2}})
    (top / "train" / "x" / "notes.txt").write_text("hello")
    (top / "train" / "x" / ".hidden.png").write_bytes(b"junk")
    (top / "train" / "x" / "UPPER.PNG").write_bytes((top / "train" / "x" / "0000.png").read_bytes())
    assert len(load_dataset("imagefolder", root=top)) == 3


def test_size_mismatch_names_the_file(tmp_path: Path) -> None:
    top = write_tree(tmp_path / "s", {"train": {"a": 2, "b": 1}})
    odd = top / "train" / "b" / "0000.png"
    Image.new("RGB", (6, 4), 0).save(odd)
    with pytest.raises(ValueError, match=re.escape(str(odd)) + r" is 6x4 \(WxH\), but .*0000.png is 5x4"):
        load_dataset("imagefolder", root=top)


def test_undecodable_file_names_it(tmp_path: Path) -> None:
    top = write_tree(tmp_path / "u", {"train": {"a": 2}})
    bad = top / "train" / "a" / "0001.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot decode image " + re.escape(str(bad))):
        load_dataset("imagefolder", root=top)


def test_missing_split_or_empty_tree(tmp_path: Path) -> None:
    top = write_tree(tmp_path / "e", {"train": {"a": 1}})
    with pytest.raises(DataNotFoundError, match=re.escape(str(top / "test"))):
        load_dataset("imagefolder", root=top, split="test")
    with pytest.raises(DataNotFoundError, match=re.escape(str(tmp_path / "nowhere" / "train"))):
        load_dataset("imagefolder", root=tmp_path / "nowhere")


@pytest.mark.parametrize("workers", [1, 3])
def test_result_does_not_depend_on_thread_count(tmp_path: Path, workers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imagefolder, "_CHUNK", 2)
    top = write_tree(tmp_path / "w", {"train": {"a": 7, "b": 5}})
    ds = load_imagefolder(top, split="train", workers=workers)
    reference = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted((top / "train").glob("*/*.png"))])
    np.testing.assert_array_equal(ds.images.permute(0, 2, 3, 1).numpy(), reference)


def test_workers_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workers"):
        load_imagefolder(tmp_path, split="train", workers=0)


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    from stealguard.data import imagefolder

    top = write_tree(tmp_path / "bomb", {"train": {"a": 2}})
    huge = top / "train" / "a" / "0000.png"
    Image.new("L", (5000, 10), 0).save(huge)
    with pytest.raises(ValueError, match=re.escape(str(huge)) + r" declares 5000x10 pixels"):
        load_dataset("imagefolder", root=top)
    decoded: list[Path] = []
    original = imagefolder._decode
    monkeypatch.setattr(imagefolder, "_decode", lambda path, size=None: decoded.append(path) or original(path, size))
    monkeypatch.setattr(imagefolder, "MAX_TOTAL_BYTES", 10)
    small = write_tree(tmp_path / "many", {"train": {"a": 3}})
    with pytest.raises(ValueError, match="over the limit of 10"):
        load_dataset("imagefolder", root=small)
    assert decoded == []
