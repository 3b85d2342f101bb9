"""Name -> class registry of defenses: ``create``, ``names``, ``get``, ``parameters``, ``register``."""

from __future__ import annotations

from stealguard._registry import Registry
from stealguard.defenses.base import Defense

_REGISTRY: Registry[Defense] = Registry("defense", Defense)

register = _REGISTRY.register
names = _REGISTRY.names
get = _REGISTRY.get
parameters = _REGISTRY.parameters
create = _REGISTRY.create


def requirements(name: str) -> tuple[str, ...]:
    """What the defense ``name`` takes from its victim (its class's ``requires``).

    Raises:
        ValueError: unknown defense (the message lists the registered names).
    """
    return tuple(get(name).requires)
