"""Digits victims and query sets shared by the ART interop tests."""

from __future__ import annotations

import torch

from stealguard import data, defenses, models

SHAPE = (1, 8, 8)
K = 10


def digits_split() -> tuple[data.ImageDataset, data.ImageDataset]:
    """(victim's half, attacker's half) of the digits train split, stratified."""
    train = data.load_dataset("digits", split="train")
    return data.split_dataset(train, 0.5, 0, stratify=True)


def trained_victim(epochs: int = 5, seed: int = 0) -> models.Classifier:
    """A digits mlp trained for a few epochs on the victim's half (about a second on one thread)."""
    victim_part, _ = digits_split()
    x, y = victim_part.tensors()
    torch.manual_seed(seed)
    victim = models.create("mlp", input_shape=SHAPE, num_classes=K)
    models.fit(victim, x, y, epochs=epochs, optimizer="adam", lr=1e-2, batch_size=64, device="cpu", progress=False)
    return victim.eval()


def make_defense(spec: str) -> defenses.Defense:
    """``none``, ``dcp`` or ``mad`` (with a seeded random mlp surrogate, as the harness builds it)."""
    name, params = defenses.parse_defense_spec(spec)
    if name in ("mad", "mad_argmax"):
        torch.manual_seed(7)
        params["surrogate"] = models.create("mlp", input_shape=SHAPE, num_classes=K)
    if name == "adaptive_misinformation":
        torch.manual_seed(8)
        params["misinformation"] = models.create("mlp", input_shape=SHAPE, num_classes=K)
    return defenses.create(name, **params)
