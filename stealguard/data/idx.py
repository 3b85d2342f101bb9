"""IDX files (the MNIST format) and data sets laid out like MNIST.

IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a dtype code
(0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of
dimensions ``d``, then ``d`` big-endian uint32 sizes, then the data in C order, big-endian.
Files may be gzip-compressed (recognised by content, not by name).

A folder in MNIST layout holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each raw or with ``.gz``.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from stealguard.data.base import DataNotFoundError, ImageDataset

_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES: dict[str, int] = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}

_PREFIX = {"train": "train", "test": "t10k"}


MAX_IDX_BYTES = 1 << 30
"""Largest IDX payload read, raw or after decompression (1 GiB; MNIST's largest file is 47 MB):
a small gzip file that inflates without bound (a decompression bomb) is refused, not expanded."""


def _inflate(raw: bytes, path: Path, limit: int) -> bytes:
    """Decompress every gzip member of ``raw`` into at most ``limit`` bytes.

    Raises:
        ValueError: corrupt data, or more than ``limit`` bytes (names the file).
    """
    out = bytearray()
    rest = raw
    try:
        while rest:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            out += inflater.decompress(rest, limit + 1 - len(out))
            if len(out) > limit:
                raise ValueError(f"IDX file {path} inflates to more than {limit} bytes; refusing to decompress it")
            if not inflater.eof:
                raise ValueError(f"corrupt IDX file {path}: gzip data cannot be decompressed (it ends early)")
            rest = inflater.unused_data
    except zlib.error as err:
        raise ValueError(f"corrupt IDX file {path}: gzip data cannot be decompressed ({err})") from err
    return bytes(out)


def _read_bytes(path: Path, limit: int | None = None) -> bytes:
    limit = MAX_IDX_BYTES if limit is None else limit
    size = path.stat().st_size
    if size > limit:
        raise ValueError(f"IDX file {path} holds {size} bytes, over the limit of {limit}")
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    return _inflate(raw, path, limit)


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (raw or gzip) into a native-byte-order numpy array.

    Args:
        path: the file.

    Returns:
        array with the dimensions and dtype stored in the header.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file, when the magic number, dtype code, or the length
            implied by the header does not match the file.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"corrupt IDX file {path}: {len(data)} bytes, shorter than the 4-byte magic number")
    zero, code, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00":
        raise ValueError(f"corrupt IDX file {path}: magic number must start with two zero bytes, got {data[:4].hex()}")
    if code not in _DTYPES:
        raise ValueError(f"corrupt IDX file {path}: unknown dtype code 0x{code:02x} (known: 08 09 0b 0c 0d 0e)")
    if ndim == 0:
        raise ValueError(f"corrupt IDX file {path}: header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"corrupt IDX file {path}: {len(data)} bytes, shorter than its {header}-byte header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _DTYPES[code]
    expected = header + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"corrupt IDX file {path}: header declares shape {dims} of {dtype.name} ({expected} bytes in all), "
            f"file has {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``.

    Args:
        path: destination.
        array: at least 1-D; dtype uint8, int8, int16, int32, float32 or float64.

    Raises:
        ValueError: unsupported dtype or a 0-d array.
    """
    path = Path(path)
    array = np.asarray(array)
    key = f"{array.dtype.kind}{array.dtype.itemsize}"
    if key not in _CODES or array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX supports 1..255-D arrays of uint8/int8/int16/int32/float32/float64, got {array.dtype} {array.shape}")
    big = array.astype(array.dtype.newbyteorder(">"), copy=False)
    payload = struct.pack(f">BBBB{array.ndim}I", 0, 0, _CODES[key], array.ndim, *array.shape) + big.tobytes(order="C")
    path.write_bytes(gzip.compress(payload, mtime=0) if path.suffix == ".gz" else payload)
    return path


def idx_files(split: str) -> tuple[str, str]:
    """Canonical base names (without ``.gz``) of the images and labels files of ``split``."""
    prefix = _PREFIX[split]
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _find(directory: Path, base: str) -> Path | None:
    for candidate in (directory / base, directory / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _images_tensor(array: np.ndarray, path: Path) -> torch.Tensor:
    if array.ndim != 3:
        raise ValueError(f"IDX images file {path} must be 3-D (N, H, W), got shape {array.shape}")
    if array.dtype == np.uint8:
        return torch.from_numpy(array).unsqueeze(1)
    if array.dtype.kind == "f":
        values = torch.from_numpy(array.astype(np.float32)).unsqueeze(1)
        if not bool(torch.isfinite(values).all()) or float(values.min()) < 0 or float(values.max()) > 1:
            raise ValueError(f"IDX images file {path} holds floats outside [0, 1]")
        return values
    raise ValueError(f"IDX images file {path} must hold uint8 (0..255) or float pixels, got {array.dtype}")


def _labels_array(path: Path) -> np.ndarray:
    array = read_idx(path)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise ValueError(f"IDX labels file {path} must be 1-D integers, got {array.dtype} of shape {array.shape}")
    if array.size and int(array.min()) < 0:
        raise ValueError(f"IDX labels file {path} holds negative labels")
    return array.astype(np.int64)


def load_idx_dataset(
    directory: str | Path,
    *,
    split: str,
    name: str,
    classes: Sequence[str] | None = None,
    hint: str = "",
) -> ImageDataset:
    """Load one split of a data set in MNIST layout from ``directory``.

    Args:
        directory: folder holding the four canonical IDX files (raw or ``.gz``).
        split: ``"train"`` (``train-*``) or ``"test"`` (``t10k-*``).
        name: data set name for the result and for messages.
        classes: class names; default ``"0"``, ``"1"``, ... up to the largest label found in
            either split's labels file, so that train and test agree.
        hint: how to get the files, appended to ``DataNotFoundError``'s message.

    Shape:
        images ``(N, 1, H, W)`` uint8.

    Raises:
        DataNotFoundError: the split's images or labels file is missing (message names both paths).
        ValueError: corrupt files, N mismatch, labels beyond ``classes``.
    """
    directory = Path(directory)
    image_base, label_base = idx_files(split)
    image_path, label_path = _find(directory, image_base), _find(directory, label_base)
    if image_path is None or label_path is None:
        expected = [directory / f"{image_base}[.gz]", directory / f"{label_base}[.gz]"]
        raise DataNotFoundError(
            name,
            expected,
            "IDX files may be gzip-compressed (.gz) or raw. " + (hint or f"Put the files in {directory}."),
        )
    images = _images_tensor(read_idx(image_path), image_path)
    labels = _labels_array(label_path)
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{image_path} holds {images.shape[0]} images but {label_path} holds {labels.shape[0]} labels")
    if classes is None:
        top = int(labels.max()) if labels.size else 0
        other = _find(directory, idx_files("test" if split == "train" else "train")[1])
        if other is not None:
            other_labels = _labels_array(other)
            if other_labels.size:
                top = max(top, int(other_labels.max()))
        classes = [str(k) for k in range(top + 1)]
    elif labels.size and int(labels.max()) >= len(classes):
        raise ValueError(f"{label_path} holds label {int(labels.max())}, but {name} has {len(classes)} classes")
    return ImageDataset(images, torch.from_numpy(labels), classes=tuple(classes), name=name)
