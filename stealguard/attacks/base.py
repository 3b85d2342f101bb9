"""The one abstraction every model-stealing attack implements.

``replica = attack.run(blackbox, budget)``: the attack may issue at most ``budget`` queries
to ``blackbox`` (it sees nothing else of the victim) and returns the trained replica.
Replica factory and training settings go in the constructor (keyword-only, checked there).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from torch import nn

from stealguard._checks import check_int
from stealguard.blackbox import BlackBox


class Attack(abc.ABC):
    """Base class of model-stealing attacks; subclasses implement :meth:`_run`."""

    name: ClassVar[str] = ""

    def run(self, blackbox: BlackBox, budget: int) -> nn.Module:
        """Steal a replica from ``blackbox`` with at most ``budget`` queries.

        Raises:
            ValueError: ``budget`` < 1 or more than the black box has left.
        """
        check_int("budget", budget, low=1)
        if blackbox.remaining is not None and budget > blackbox.remaining:
            raise ValueError(f"budget {budget} exceeds the {blackbox.remaining} queries the black box has left")
        start = blackbox.queries_used
        replica = self._run(blackbox, budget)
        used = blackbox.queries_used - start
        if used > budget:
            raise RuntimeError(f"{type(self).__name__} issued {used} queries, over its budget of {budget}")
        return replica

    @abc.abstractmethod
    def _run(self, blackbox: BlackBox, budget: int) -> nn.Module:
        """Issue at most ``budget`` queries through ``blackbox`` and return the replica."""

    def params(self) -> dict[str, Any]:
        """Public parameters of this attack (JSON-serialisable), for result files."""
        return {}

    def report(self) -> dict[str, Any]:
        """What the last :meth:`run` found out along the way (JSON-serialisable; e.g. rounds run)."""
        return {}
