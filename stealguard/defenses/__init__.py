"""Posterior-perturbation defenses: one file per method, one registry line each.

Use ``create(name, **params)``; ``names()`` lists what is registered.
"""

from stealguard.defenses.adaptive_misinformation import AdaptiveMisinformation
from stealguard.defenses.base import Defense, DefenseOutputError, check_query
from stealguard.defenses.dcp import DCP
from stealguard.defenses.label_only import LabelOnly
from stealguard.defenses.mad import MAD, MADArgmax
from stealguard.defenses.mad_keyed import MADKeyed
from stealguard.defenses.none import NoDefense
from stealguard.defenses.random_noise import RandomNoise
from stealguard.defenses.registry import create, get, names, parameters, register, requirements
from stealguard.defenses.reverse_sigmoid import ReverseSigmoid
from stealguard.defenses.reverse_sigmoid_keyed import ReverseSigmoidKeyed
from stealguard.defenses.rounding import Rounding
from stealguard.defenses.simplex import onto_simplex
from stealguard.defenses.spec import defense_from_spec, parse_defense_spec
from stealguard.defenses.topk import TopK

register("none", NoDefense)
register("reverse_sigmoid", ReverseSigmoid)
register("reverse_sigmoid_keyed", ReverseSigmoidKeyed)
register("dcp", DCP)
register("random_noise", RandomNoise)
register("topk", TopK)
register("rounding", Rounding)
register("label_only", LabelOnly)
register("mad", MAD)
register("mad_argmax", MADArgmax)
register("mad_keyed", MADKeyed)
register("adaptive_misinformation", AdaptiveMisinformation)

__all__ = [
    "DCP",
    "MAD",
    "AdaptiveMisinformation",
    "Defense",
    "DefenseOutputError",
    "LabelOnly",
    "MADArgmax",
    "MADKeyed",
    "NoDefense",
    "RandomNoise",
    "ReverseSigmoid",
    "ReverseSigmoidKeyed",
    "Rounding",
    "TopK",
    "check_query",
    "create",
    "defense_from_spec",
    "get",
    "names",
    "onto_simplex",
    "parameters",
    "parse_defense_spec",
    "register",
    "requirements",
]
