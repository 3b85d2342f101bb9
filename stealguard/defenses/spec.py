"""Parse the CLI's defense spec ``name:key=value,key=value`` into a defense."""

from __future__ import annotations

from typing import Any

from stealguard.defenses.base import Defense
from stealguard.defenses.registry import create


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_defense_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"mad:epsilon=0.5,norm=l1"`` into ``("mad", {"epsilon": 0.5, "norm": "l1"})``.

    Values become int, float, bool (``true``/``false``) or None (``none``) where they parse
    as such, else stay strings.

    Raises:
        ValueError: an empty name, or a parameter without ``=``.
    """
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise ValueError(f"defense spec {spec!r} has no defense name; expected NAME[:key=value,...]")
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"defense parameter {item!r} in {spec!r} must look like key=value")
        params[key.strip()] = _parse_value(value.strip())
    return name, params


def defense_from_spec(spec: str, **extra: Any) -> Defense:
    """Build the defense a spec names; ``extra`` adds parameters not expressible as text (a surrogate)."""
    name, params = parse_defense_spec(spec)
    return create(name, **params, **extra)
