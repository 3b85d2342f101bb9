"""Name -> class registry of attacks: ``create``, ``names``, ``get``, ``parameters``, ``register``."""

from __future__ import annotations

from stealguard._registry import Registry
from stealguard.attacks.base import Attack

_REGISTRY: Registry[Attack] = Registry("attack", Attack)

register = _REGISTRY.register
names = _REGISTRY.names
get = _REGISTRY.get
parameters = _REGISTRY.parameters
create = _REGISTRY.create
