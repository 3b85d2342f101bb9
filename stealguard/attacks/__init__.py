"""Model-stealing attacks: one file per method, one registry line each.

Use ``create(name, **params)``; ``names()`` lists what is registered. Every attack is an
:class:`Attack`: ``replica = attack.run(blackbox, budget)``.
"""

from stealguard.attacks.base import Attack
from stealguard.attacks.knockoff import Knockoff
from stealguard.attacks.registry import create, get, names, parameters, register

register("knockoff", Knockoff)

__all__ = ["Attack", "Knockoff", "create", "get", "names", "parameters", "register"]
