"""``ImageDataset``: an in-memory image classification data set, and ``DataNotFoundError``.

Every loader in ``stealguard.data`` returns an ``ImageDataset``. Images are stored either as
``uint8`` in ``0..255`` (compact: CIFAR-10 train is 150 MiB instead of 600 MiB) or as
``float32`` in ``[0, 1]``; whatever the storage, everything handed out (``__getitem__``,
``tensors()``) is ``float32`` in pixel space ``[0, 1]``, the convention of the whole package.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset


class DataNotFoundError(FileNotFoundError):
    """A data set's files are not on disk.

    The message names every expected path and says how to get the data
    (``download=True`` / ``--download`` where supported, else where to put the files).

    Attributes:
        dataset: the data set's name.
        paths: the expected paths, as given.
    """

    def __init__(self, dataset: str, paths: Iterable[str | Path], hint: str) -> None:
        self.dataset = dataset
        self.paths = tuple(str(p) for p in paths)
        listing = "\n".join(f"  {p}" for p in self.paths)
        super().__init__(f"data set {dataset!r} not found; expected:\n{listing}\n{hint}")

    def __str__(self) -> str:
        return str(self.args[0])


def as_float_images(images: Tensor) -> Tensor:
    """``uint8`` images (0..255) as ``float32`` in ``[0, 1]``; float images are returned unchanged."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    return images


def _as_tensor(value: object, what: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise TypeError(f"{what} must be a torch.Tensor or numpy.ndarray, got {type(value).__name__}")


class ImageDataset(Dataset):
    """Images and integer labels held in memory.

    Args:
        images: ``(N, C, H, W)``, either ``uint8`` (values 0..255) or ``float32`` with every
            value in ``[0, 1]``. A numpy array is accepted and wrapped without copying.
        labels: ``(N,)`` integer class indices in ``[0, len(classes))``; stored as ``int64``.
        classes: class names, one per class index (at least one).
        name: data set name (for model cards and messages), non-empty.

    Shape:
        ``dataset[i]`` is ``(image (C, H, W) float32 in [0, 1], label int)``;
        ``tensors()`` is ``(images (N, C, H, W) float32 in [0, 1], labels (N,) int64)``.

    Raises:
        TypeError: images/labels not tensors or arrays; classes not strings; name not a string.
        ValueError: wrong number of dimensions, wrong dtype, float pixels outside ``[0, 1]`` or
            not finite, ``N`` mismatch between images and labels, labels out of range,
            empty or duplicate class names.

    Example:
        >>> ds = ImageDataset(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]),
        ...                   classes=("a", "b"), name="toy")
        >>> len(ds), ds.input_shape, ds.num_classes
        (4, (1, 8, 8), 2)
        >>> ds[1][0].dtype, ds[1][1]
        (torch.float32, 1)
    """

    def __init__(
        self,
        images: Tensor | np.ndarray,
        labels: Tensor | np.ndarray,
        *,
        classes: Sequence[str],
        name: str,
    ) -> None:
        images = _as_tensor(images, "images")
        labels = _as_tensor(labels, "labels")
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
            raise TypeError(f"classes must be a sequence of strings, got {classes!r}")
        classes = tuple(classes)
        if not classes:
            raise ValueError("classes must name at least one class, got an empty sequence")
        if len(set(classes)) != len(classes):
            raise ValueError(f"classes must be distinct, got {classes!r}")
        if images.dim() != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got shape {tuple(images.shape)}")
        if min(images.shape[1:]) < 1:
            raise ValueError(f"images must have C, H, W >= 1, got shape {tuple(images.shape)}")
        if images.dtype not in (torch.uint8, torch.float32):
            raise ValueError(f"images must be uint8 (0..255) or float32 in [0, 1], got dtype {images.dtype}")
        if images.dtype == torch.float32 and images.numel() > 0:
            if not bool(torch.isfinite(images).all()):
                raise ValueError("images contain NaN or infinite values")
            low, high = float(images.min()), float(images.max())
            if low < 0.0 or high > 1.0:
                raise ValueError(f"float32 images must lie in [0, 1], got values in [{low:g}, {high:g}]")
        if labels.dim() != 1:
            raise ValueError(f"labels must have shape (N,), got shape {tuple(labels.shape)}")
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            raise ValueError(f"labels must have an integer dtype, got {labels.dtype}")
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"images and labels disagree on N: {images.shape[0]} images, {labels.shape[0]} labels")
        labels = labels.to(torch.int64)
        if labels.numel() > 0:
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= len(classes):
                raise ValueError(
                    f"labels must lie in [0, {len(classes) - 1}] for {len(classes)} classes, got values in [{low}, {high}]"
                )
        self.images = images.contiguous()
        self.labels = labels.contiguous()
        self.classes: tuple[str, ...] = classes
        self.name = name

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer, got {type(index).__name__}; use subset() for many indices")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        return as_float_images(self.images[index]), int(self.labels[index])

    def __repr__(self) -> str:
        c, h, w = self.input_shape
        return f"ImageDataset(name={self.name!r}, N={len(self)}, shape=({c}, {h}, {w}), classes={self.num_classes})"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        """Number of classes K (``len(classes)``), whether or not all occur in this split."""
        return len(self.classes)

    def tensors(self) -> tuple[Tensor, Tensor]:
        """All images as ``float32`` in ``[0, 1]`` and the labels.

        Float32 storage is returned without a copy: do not modify it in place.

        Shape:
            ``(N, C, H, W)`` and ``(N,)``.
        """
        return as_float_images(self.images), self.labels

    def subset(self, indices: Sequence[int] | Tensor | np.ndarray) -> ImageDataset:
        """A new data set with the images at ``indices`` (in that order; repeats allowed).

        Args:
            indices: 1-D integer indices in ``[-N, N)``.

        Raises:
            ValueError: indices not 1-D integers, or out of range.
        """
        index = torch.as_tensor(np.asarray(indices) if not isinstance(indices, Tensor) else indices)
        if index.numel() == 0:
            index = index.reshape(0).to(torch.int64)
        if index.dim() != 1 or index.dtype.is_floating_point or index.dtype == torch.bool:
            raise ValueError(f"indices must be a 1-D sequence of integers, got dtype {index.dtype}, shape {tuple(index.shape)}")
        n = len(self)
        if index.numel() > 0 and (int(index.min()) < -n or int(index.max()) >= n):
            raise ValueError(f"indices must lie in [{-n}, {n - 1}], got values in [{int(index.min())}, {int(index.max())}]")
        index = index.to(torch.int64)
        return ImageDataset(self.images[index], self.labels[index], classes=self.classes, name=self.name)
