"""Independent random streams derived from one run seed.

The attacker and the defender must not share randomness (Kerckhoffs: the attacker knows the
defense's algorithm, not its secrets). A run has one ``seed`` for the attacker's side (query
order, replica initialisation, training) and a ``defense_seed`` for the defender's side (MAD's
surrogate, a noise defense's generator). When a run names no ``defense_seed`` it is derived
from ``seed`` by :func:`derive_seed` through SHA-256, so that ``seed`` and ``defense_seed`` are
never equal by construction and the two streams do not overlap for any pair of seeds a user
is likely to pick.
"""

from __future__ import annotations

import hashlib

from stealguard._checks import check_int

SEED_BITS = 31
"""Derived seeds lie in ``[0, 2**31)``: valid for ``torch.manual_seed`` and NumPy alike."""


def derive_seed(seed: int, stream: str) -> int:
    """A seed for ``stream`` that is independent of ``seed`` itself.

    Args:
        seed: the run seed, >= 0.
        stream: a non-empty name of the consumer (e.g. ``"defense"``).

    Returns:
        An int in ``[0, 2**31)``; the same ``(seed, stream)`` always gives the same value.

    Raises:
        TypeError, ValueError: ``seed`` not an int >= 0, ``stream`` not a non-empty string.

    Example:
        >>> derive_seed(0, "defense") == derive_seed(0, "defense") != 0
        True
    """
    check_int("seed", seed, low=0)
    if not isinstance(stream, str) or not stream:
        raise TypeError(f"stream must be a non-empty string, got {stream!r}")
    digest = hashlib.sha256(f"stealguard:{stream}:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (1 << SEED_BITS)


def defense_seed_for(seed: int, defense_seed: int | None = None) -> int:
    """The defender's seed of a run: ``defense_seed`` when given, else ``derive_seed(seed, "defense")``.

    Raises:
        TypeError, ValueError: a seed that is not an int >= 0.
    """
    if defense_seed is not None:
        check_int("defense_seed", defense_seed, low=0)
        return defense_seed
    return derive_seed(seed, "defense")
