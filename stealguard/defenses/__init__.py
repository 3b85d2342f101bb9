"""Posterior-perturbation defenses: one file per method, one registry line each.

Use ``create(name, **params)``; ``names()`` lists what is registered.
"""

from stealguard.defenses.base import Defense, check_query, to_simplex
from stealguard.defenses.mad import MAD, MADArgmax
from stealguard.defenses.none import NoDefense
from stealguard.defenses.registry import create, get, names, parameters, register
from stealguard.defenses.spec import defense_from_spec, parse_defense_spec

register("none", NoDefense)
register("mad", MAD)
register("mad_argmax", MADArgmax)

__all__ = [
    "MAD",
    "MADArgmax",
    "Defense",
    "NoDefense",
    "check_query",
    "create",
    "defense_from_spec",
    "get",
    "names",
    "parameters",
    "parse_defense_spec",
    "register",
    "to_simplex",
]
