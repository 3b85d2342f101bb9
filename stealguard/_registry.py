"""A name -> class registry, one instance per concept (defenses, attacks).

``create(name, **params)`` rejects unknown names (``ValueError`` listing the registered
ones) and parameters the class does not take (``TypeError`` listing the accepted ones)
before the class checks the values itself.
"""

from __future__ import annotations

import inspect
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Registered subclasses of ``base`` by name; ``kind`` ("defense", "attack") words the errors."""

    def __init__(self, kind: str, base: type[T]) -> None:
        self.kind = kind
        self.base = base
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str, cls: type[T], *, force: bool = False) -> None:
        """Add ``cls`` under ``name``.

        Raises:
            TypeError: ``cls`` is not a subclass of the registry's base class.
            ValueError: ``name`` is taken and ``force`` is False.
        """
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"cls must be a subclass of {self.base.__name__}, got {cls!r}")
        if name in self._classes and not force:
            raise ValueError(f"{self.kind} {name!r} is already registered (pass force=True to replace it)")
        self._classes[name] = cls

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        """The class registered under ``name``.

        Raises:
            ValueError: unknown name; the message lists the registered names.
        """
        try:
            return self._classes[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}") from None

    def parameters(self, name: str) -> list[str]:
        """Names of the keyword-only parameters of ``name``'s constructor.

        A constructor that ends in ``**kwargs`` passes them up: the keyword-only parameters
        of the next constructor in the method resolution order are added, and so on.
        """
        names: list[str] = []
        for klass in self.get(name).__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            signature = inspect.signature(init)
            names += [p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in names]
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
                break
        return names

    def create(self, name: str, **params: Any) -> T:
        """Build ``name`` with keyword parameters ``params``.

        Raises:
            ValueError: unknown name, or a value out of range (raised by the class, naming it).
            TypeError: a parameter the class does not take, or of the wrong type.
        """
        cls = self.get(name)
        accepted = self.parameters(name)
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise TypeError(
                f"{self.kind} {name!r} got unknown parameter(s) {', '.join(unknown)}; "
                f"accepted: {', '.join(accepted) if accepted else '(none)'}"
            )
        return cls(**params)
