"""stealguard: defenses against model stealing, and the attacks that measure them.

Data flow: victim (``stealguard.models``) -> black box with a defense
(``stealguard.blackbox``, ``stealguard.defenses``) -> attack (``stealguard.attacks``)
-> replica -> metrics (``stealguard.metrics``, ``stealguard.evaluate``).

A run is a value: ``stealguard.run(spec, env)`` runs a :class:`stealguard.runspec.RunSpec`
and returns its :class:`stealguard.runspec.RunResult`.
"""

from typing import Any

from stealguard._version import __version__

__all__ = ["__version__", "run"]


def __getattr__(name: str) -> Any:
    """``stealguard.run``, imported on first use (so ``import stealguard`` stays light)."""
    if name == "run":
        from stealguard.harness.run import run

        return run
    raise AttributeError(f"module 'stealguard' has no attribute {name!r}")
