"""Name -> class registry of attacks: ``create``, ``names``, ``register``, ``parameters``."""

from __future__ import annotations

import inspect
from typing import Any

from stealguard.attacks.base import Attack

_REGISTRY: dict[str, type[Attack]] = {}


def register(name: str, cls: type[Attack], *, force: bool = False) -> None:
    """Add ``cls`` to the registry under ``name``.

    Raises:
        TypeError: ``cls`` is not an ``Attack`` subclass.
        ValueError: ``name`` is taken and ``force`` is False.
    """
    if not (isinstance(cls, type) and issubclass(cls, Attack)):
        raise TypeError(f"cls must be a subclass of Attack, got {cls!r}")
    if name in _REGISTRY and not force:
        raise ValueError(f"attack {name!r} is already registered (pass force=True to replace it)")
    _REGISTRY[name] = cls


def names() -> list[str]:
    """Registered attack names, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> type[Attack]:
    """The class registered under ``name``.

    Raises:
        ValueError: unknown name; the message lists the registered names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; available: {', '.join(names())}") from None


def parameters(name: str) -> list[str]:
    """Names of the keyword parameters the attack ``name`` accepts."""
    signature = inspect.signature(get(name).__init__)
    return [p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]


def create(name: str, **params: Any) -> Attack:
    """Build the attack ``name`` with keyword parameters ``params``.

    Raises:
        ValueError: unknown name, or a parameter out of its range (the message names it).
        TypeError: a parameter the attack does not take, or of the wrong type.
    """
    cls = get(name)
    accepted = parameters(name)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(
            f"attack {name!r} got unknown parameter(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted) if accepted else '(none)'}"
        )
    return cls(**params)
