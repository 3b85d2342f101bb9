"""stealguard: defenses against model stealing, and the attacks that measure them.

Data flow: victim (``stealguard.models``) -> black box with a defense
(``stealguard.blackbox``, ``stealguard.defenses``) -> attack (``stealguard.attacks``)
-> replica -> metrics (``stealguard.metrics``, ``stealguard.evaluate``).
"""

__version__ = "0.1.0"
