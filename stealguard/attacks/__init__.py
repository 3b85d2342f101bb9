"""Model-stealing attacks: one file per method, one registry line each.

Use ``create(name, **params)``; ``names()`` lists what is registered. Every attack is an
:class:`Attack`: ``replica = attack.run(blackbox, budget)``.
"""

from stealguard.attacks.art_extraction import ArtCopycat, ArtKnockoff
from stealguard.attacks.base import Attack
from stealguard.attacks.data_free import DataFreeAttack
from stealguard.attacks.dfme import DFME
from stealguard.attacks.inversion import Inverter, invert
from stealguard.attacks.jacobian import JacobianAttack
from stealguard.attacks.jb_self import JBSelf
from stealguard.attacks.jb_top3 import JBTop3
from stealguard.attacks.jbda import JBDA
from stealguard.attacks.knockoff import Knockoff
from stealguard.attacks.maze import MAZE
from stealguard.attacks.oracle import Oracle
from stealguard.attacks.registry import create, get, names, parameters, register
from stealguard.attacks.replica import ReplicaAttack

register("knockoff", Knockoff)
register("jbda", JBDA)
register("jb_self", JBSelf)
register("jb_top3", JBTop3)
register("dfme", DFME)
register("maze", MAZE)
register("art_knockoff", ArtKnockoff)
register("art_copycat", ArtCopycat)

__all__ = [
    "DFME",
    "JBDA",
    "MAZE",
    "ArtCopycat",
    "ArtKnockoff",
    "Attack",
    "DataFreeAttack",
    "Inverter",
    "JBSelf",
    "JBTop3",
    "JacobianAttack",
    "Knockoff",
    "Oracle",
    "ReplicaAttack",
    "create",
    "get",
    "invert",
    "names",
    "parameters",
    "register",
]
