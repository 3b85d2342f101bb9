"""What a defense needs from its victim, built from the victim's card: one builder below the runners and the server.

A defense declares what it takes from the victim in ``Defense.requires`` (MAD: a ``surrogate``
model of the attacker; adaptive misinformation: the victim's ``misinformation`` model).
:func:`build_defense` turns a spec string into the defense, providing each declared need from
the victim's card and folder: a surrogate is a randomly initialised copy of the victim's
architecture seeded with the defender's seed (or, named in the spec, a copy of the victim or a
saved model); a misinformation model is loaded from ``<victim>/misinformation/`` or trained
there once. The experiment runners (:mod:`stealguard.harness`) and the server
(:mod:`stealguard.serve`) both build defenses here, so neither imports the other for it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stealguard import defenses, models
from stealguard.defenses.base import Defense
from stealguard.defenses.misinformation import misinformation_for_victim
from stealguard.device import DeviceLike
from stealguard.models.base import Classifier

Victim = Path | str | tuple[Classifier, Any]
"""A victim directory written by ``save_model``, or the ``(model, card)`` pair itself."""


def load_victim(victim: Victim) -> tuple[Classifier, Any]:
    """``(model, card)`` from a directory written by ``save_model``, or the pair itself.

    Raises:
        FileNotFoundError: the directory does not exist.
    """
    if isinstance(victim, tuple):
        return victim
    path = Path(victim)
    if not path.is_dir():
        raise FileNotFoundError(f"victim directory {str(path)!r} does not exist; train one with `stealguard train ... --out {path}`")
    return models.load_model(path, device="cpu")


def make_surrogate(card: Any, seed: int) -> Classifier:
    """A randomly initialised copy of the victim's arch (``torch.manual_seed(seed)``), eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        surrogate = models.create(
            card.arch, input_shape=card.input_shape, num_classes=card.num_classes, mean=card.mean, std=card.std
        )
    return surrogate.eval()


SURROGATE_VICTIM = "victim"
"""``mad:surrogate=victim``: MAD optimises against a copy of the victim itself (the paper's
upper-bound ablation, where the defender's surrogate is the attacker's best possible model)."""
SURROGATE_RANDOM = "random"
"""``mad:surrogate=random`` (the default): a randomly initialised copy of the victim's architecture."""


def resolve_surrogate(
    source: str,
    *,
    card: Any,
    seed: int,
    victim_model: nn.Module | None = None,
    victim_dir: Path | str | None = None,
) -> Classifier:
    """The surrogate a spec's ``surrogate=<source>`` names, in eval mode.

    Args:
        source: ``"random"`` (:func:`make_surrogate` ``(card, seed)``), ``"victim"`` (a copy of
            the victim: ``victim_model``, else loaded from ``victim_dir``) or the directory of a
            saved stealguard model (``stealguard train --out DIR``) with the victim's input shape
            and class count, e.g. a model trained on public data as the defender's proxy.
        card: the victim's card. seed: the defender's seed (for ``"random"``).

    Raises:
        ValueError: ``"victim"`` without a victim to copy; a model directory whose input shape
            or class count differs from the victim's, or an int8 model (MAD differentiates
            the surrogate; quantized models have no gradients).
        FileNotFoundError: the directory does not exist or lacks the model files.
    """
    if source == SURROGATE_RANDOM:
        return make_surrogate(card, seed)
    if source == SURROGATE_VICTIM:
        if victim_model is None and victim_dir is None:
            raise ValueError("surrogate=victim needs the victim model or its directory; neither was given")
        model = victim_model if victim_model is not None else models.load_model(Path(victim_dir), device="cpu")[0]
        surrogate, surrogate_card = copy.deepcopy(model), card
    else:
        path = Path(source)
        if not path.is_dir():
            raise FileNotFoundError(
                f"surrogate={source!r}: no such model directory; give 'random', 'victim' or a folder written by `stealguard train`"
            )
        surrogate, surrogate_card = models.load_model(path, device="cpu")
        if tuple(surrogate_card.input_shape) != tuple(card.input_shape) or surrogate_card.num_classes != card.num_classes:
            raise ValueError(
                f"surrogate={source!r} takes inputs {tuple(surrogate_card.input_shape)} with {surrogate_card.num_classes} classes; "
                f"the victim takes {tuple(card.input_shape)} with {card.num_classes}"
            )
    if getattr(surrogate_card, "quantization", None) is not None:
        raise ValueError(f"surrogate={source!r} is an int8 model; MAD needs a float surrogate it can differentiate")
    for parameter in surrogate.parameters():
        parameter.requires_grad_(False)
    return surrogate.eval()


def build_defense(
    defense: str | Defense | None,
    *,
    card: Any,
    seed: int,
    victim_model: nn.Module | None = None,
    victim_dir: Path | str | None = None,
    data_root: Path | str | None = None,
    download: bool = False,
    device: DeviceLike = "cpu",
    progress: bool = False,
) -> tuple[Defense, str]:
    """The defense a spec names and its label (the spec string).

    ``seed`` is the defender's seed (a run's ``defense_seed``, never the attacker's). What the
    defense declares in ``requires`` and the spec does not give is provided here:

    * ``surrogate``: :func:`make_surrogate` ``(card, seed)``; ``surrogate=victim`` or
      ``surrogate=<model directory>`` in the spec picks another (:func:`resolve_surrogate`;
      ``victim_model`` is the victim to copy, else it is loaded from ``victim_dir``);
    * ``misinformation``: the victim's, loaded from ``<victim_dir>/misinformation/`` or trained on
      the training split of ``card.dataset`` (from ``data_root``, with ``download``, on ``device``,
      tqdm bar with ``progress``) and saved there (not saved without ``victim_dir``); see
      :func:`stealguard.defenses.misinformation.misinformation_for_victim`. The spec's other
      parameters are checked first, on the defense built around an untrained model of the
      victim's architecture, so a bad spec fails before any training.

    A defense that takes a ``seed`` gets ``seed``.

    Raises:
        ValueError: unparsable spec, unknown defense, a parameter out of range.
        TypeError: a parameter the defense does not take.
        stealguard.data.DataNotFoundError: a misinformation model must be trained and the data set is missing.
    """
    if defense is None:
        return defenses.create("none"), "none"
    if isinstance(defense, Defense):
        return defense, defense.name or type(defense).__name__
    if not isinstance(defense, str):
        raise TypeError(f"defense must be a spec string or a Defense, got {type(defense).__name__}")
    name, params = defenses.parse_defense_spec(defense)
    needs = defenses.requirements(name)
    if "seed" in defenses.parameters(name) and "seed" not in params:
        params["seed"] = seed
    if "surrogate" in needs:
        given = params.get("surrogate")
        if given is None or isinstance(given, str):
            source = SURROGATE_RANDOM if given is None else given
            params["surrogate"] = resolve_surrogate(source, card=card, seed=seed, victim_model=victim_model, victim_dir=victim_dir)
    if "misinformation" in needs and params.get("misinformation") is None:
        defenses.create(name, **{**params, "misinformation": make_surrogate(card, seed)})
        params["misinformation"] = misinformation_for_victim(
            card, victim_dir=victim_dir, data_root=data_root, download=download, device=device, progress=progress
        )
    return defenses.create(name, **params), defense.strip()
