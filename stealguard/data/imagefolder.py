"""ImageFolder trees: ``<top>/{train,test}/<class name>/*.{jpg,jpeg,png,bmp}``.

Classes are the sorted union of the class folders under ``train/`` and ``test/`` (so both
splits share label indices even when one lacks a class). Images are decoded with Pillow on a
thread pool (JPEG/PNG decoding releases the GIL) straight into one preallocated array, then
kept as RGB, or as one gray channel when every image of the split is grayscale.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from stealguard._checks import check_int
from stealguard.data.base import DataNotFoundError, ImageDataset

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
_FORMATS = ("JPEG", "PNG", "BMP")
_GRAY_MODES = ("1", "L", "LA", "La")
_CHUNK = 512


def _class_dirs(top: Path) -> list[str]:
    names: set[str] = set()
    for split in ("train", "test"):
        folder = top / split
        if folder.is_dir():
            names.update(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    return sorted(names)


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    files = [
        e.name
        for e in os.scandir(folder)
        if e.is_file() and not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in EXTENSIONS
    ]
    return [folder / n for n in sorted(files)]


MAX_SIDE = 4096
"""Largest width or height of an ImageFolder image: a header that declares more (a decompression
bomb: a small file that decodes to gigabytes) is refused before any pixel is decoded."""
MAX_TOTAL_BYTES = 8 << 30
"""Largest decoded ImageFolder split (all images, 3 channels of uint8), checked before allocating."""


class _WrongSize(Exception):
    """An image whose header declares another size than the folder's first image."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__(size)
        self.size = size


def _decode(path: Path, size: tuple[int, int] | None = None) -> tuple[np.ndarray, bool]:
    """Pixels of one file as ``(H, W)`` uint8 (gray) or ``(H, W, 3)`` uint8, and whether gray.

    With ``size`` (width, height), a file whose header declares another size raises
    :class:`_WrongSize` before any pixel is decoded.
    """
    try:
        with Image.open(path, formats=_FORMATS) as image:
            if size is not None and image.size != size:
                raise _WrongSize(image.size)
            image.load()
            if image.mode == "RGB":
                return np.asarray(image), False
            if image.mode == "L":
                return np.asarray(image), True
            if image.mode in _GRAY_MODES:
                return np.asarray(image.convert("L")), True
            if image.mode.startswith("I;16"):
                wide = np.asarray(image).astype(np.float32)
                return np.round(wide / 257.0).astype(np.uint8), True
            if image.mode in ("I", "F"):
                return np.asarray(image.convert("L")), True
            return np.asarray(image.convert("RGB")), False
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot decode image {path}: {err}") from err


def _size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path, formats=_FORMATS) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot decode image {path}: {err}") from err
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise ValueError(f"image {path} declares {width}x{height} pixels (WxH); each side must be in [1, {MAX_SIDE}]")
    return width, height


def load_imagefolder(top: str | Path, *, split: str, workers: int | None = None) -> ImageDataset:
    """Load ``<top>/<split>/<class>/*`` into memory.

    Args:
        top: the folder that holds ``train/`` and ``test/``.
        split: ``"train"`` or ``"test"``.
        workers: decoding threads, >= 1; default ``min(8, cpu_count)``.

    Shape:
        images ``(N, C, H, W)`` uint8 with C = 3, or C = 1 when every image is grayscale;
        all images must share one size.

    Raises:
        DataNotFoundError: ``<top>/<split>`` missing or holding no image files.
        ValueError: an image of a different size than the first (names both files and sizes),
            or a file Pillow cannot decode (names it).
    """
    top = Path(top)
    if workers is None:
        workers = min(8, os.cpu_count() or 1)
    check_int("workers", workers, low=1)
    folder = top / split
    classes = _class_dirs(top)
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        found = _image_files(folder / name)
        files.extend(found)
        labels.extend([index] * len(found))
    if not files:
        raise DataNotFoundError(
            top.name or str(top),
            [folder / "<class name>" / f"*{{{','.join(EXTENSIONS)}}}"],
            f"Expected an ImageFolder tree: {top}/{{train,test}}/<class name>/<image files>, "
            "one folder per class, all images of one size.",
        )
    width, height = _size(files[0])
    total = len(files) * width * height * 3
    if total > MAX_TOTAL_BYTES:
        raise ValueError(
            f"{folder}: {len(files)} images of {width}x{height} would take {total} bytes decoded, over the limit of {MAX_TOTAL_BYTES}"
        )
    pixels = np.empty((len(files), height, width, 3), dtype=np.uint8)
    gray = np.zeros(len(files), dtype=bool)

    def decode_range(start: int) -> None:
        for i in range(start, min(start + _CHUNK, len(files))):
            try:
                array, is_gray = _decode(files[i], (width, height))
            except _WrongSize as wrong:
                raise ValueError(
                    f"image {files[i]} is {wrong.size[0]}x{wrong.size[1]} (WxH), but {files[0]} is "
                    f"{width}x{height}; all images of an ImageFolder must share one size"
                ) from None
            pixels[i] = array[:, :, None] if is_gray else array
            gray[i] = is_gray

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(decode_range, range(0, len(files), _CHUNK)):
            pass
    images = pixels[..., :1] if bool(gray.all()) else pixels
    tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return ImageDataset(
        tensor, torch.tensor(labels, dtype=torch.int64), classes=tuple(classes), name=top.resolve().name or str(top)
    )
