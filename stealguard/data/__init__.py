"""Data sets as in-memory ``ImageDataset``s (float32 pixels in ``[0, 1]``, ``(N, C, H, W)``).

* ``load_dataset(name, root=, split=, download=)``: digits (bundled), mnist, fashionmnist,
  kmnist and any IDX folder, cifar10, cifar100, imagefolder; ``names()`` lists them.
* ``load_queryset(name, input_shape=, ...)``: the same, converted to a victim's input shape
  for an attacker (``adapt_dataset`` does that for a data set in hand); ``split_dataset``
  carves a seeded, disjoint part out of a data set.
* ``name:half=0|1[,seed=S]`` wherever a name goes (``parse_dataset_spec``, ``take_half``):
  a stratified, seeded half of the train split, e.g. ``cifar10:half=0`` for a victim and
  ``cifar10:half=1`` for the attacker's disjoint query set.
* ``default_normalization(train_set)``: per-channel mean / std for the model card.
* ``resize`` / ``to_channels``: the pure tensor transforms behind ``load_queryset``.
"""

from stealguard.data.base import DataNotFoundError, ImageDataset
from stealguard.data.queryset import adapt_dataset, load_queryset
from stealguard.data.registry import load_dataset, names
from stealguard.data.split import DatasetSpec, parse_dataset_spec, split_dataset, take_half
from stealguard.data.stats import default_normalization
from stealguard.data.transforms import resize, to_channels

__all__ = [
    "DataNotFoundError",
    "DatasetSpec",
    "ImageDataset",
    "adapt_dataset",
    "default_normalization",
    "load_dataset",
    "load_queryset",
    "names",
    "parse_dataset_spec",
    "resize",
    "split_dataset",
    "take_half",
    "to_channels",
]
