"""Name -> class registry of answer inverters, keyed by the defense each one undoes."""

from __future__ import annotations

from stealguard._registry import Registry
from stealguard.attacks.inversion.base import Inverter

_REGISTRY: Registry[Inverter] = Registry("inverter", Inverter)

register = _REGISTRY.register
names = _REGISTRY.names
get = _REGISTRY.get
parameters = _REGISTRY.parameters
create = _REGISTRY.create
