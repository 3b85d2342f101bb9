"""``jb_self``: JB-self (Juuti et al., "PRADA", EuroS&P 2019).

As JBDA, but the step is ``x - lambda_rho * sign(grad_x CE(F_A(x), y))`` with ``y`` the
black box's top-1 label of the parent: the opposite direction to JBDA's.
"""

from __future__ import annotations

from typing import ClassVar

from stealguard.attacks.jbda import JBDA


class JBSelf(JBDA):
    """JB-self: JBDA with the step direction reversed (see :class:`~stealguard.attacks.jbda.JBDA`)."""

    name = "jb_self"
    direction: ClassVar[float] = -1.0
