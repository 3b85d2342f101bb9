"""Name -> class registry of defenses: ``create``, ``names``, ``register``."""

from __future__ import annotations

import inspect
from typing import Any

from stealguard.defenses.base import Defense

_REGISTRY: dict[str, type[Defense]] = {}


def register(name: str, cls: type[Defense], *, force: bool = False) -> None:
    """Add ``cls`` to the registry under ``name``.

    Raises:
        TypeError: ``cls`` is not a ``Defense`` subclass.
        ValueError: ``name`` is taken and ``force`` is False.
    """
    if not (isinstance(cls, type) and issubclass(cls, Defense)):
        raise TypeError(f"cls must be a subclass of Defense, got {cls!r}")
    if name in _REGISTRY and not force:
        raise ValueError(f"defense {name!r} is already registered (pass force=True to replace it)")
    _REGISTRY[name] = cls


def names() -> list[str]:
    """Registered defense names, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> type[Defense]:
    """The class registered under ``name``.

    Raises:
        ValueError: unknown name; the message lists the registered names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown defense {name!r}; available: {', '.join(names())}") from None


def parameters(name: str) -> list[str]:
    """Names of the keyword parameters the defense ``name`` accepts."""
    signature = inspect.signature(get(name).__init__)
    return [p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]


def create(name: str, **params: Any) -> Defense:
    """Build the defense ``name`` with keyword parameters ``params``.

    Raises:
        ValueError: unknown name, or a parameter out of its range (the message names it).
        TypeError: a parameter the defense does not take, or of the wrong type.
    """
    cls = get(name)
    accepted = parameters(name)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(
            f"defense {name!r} got unknown parameter(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted) if accepted else '(none)'}"
        )
    return cls(**params)
