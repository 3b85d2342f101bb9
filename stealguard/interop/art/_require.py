"""The one place that checks ART is installed, with the install hint users need."""

from __future__ import annotations

import importlib

ART_VERSION = "1.20.1"
"""The ART release the adapters are written and tested against (the ``art`` extra pins it)."""

INSTALL_HINT = "install the art extra: pip install stealguard[art]"


def require_art() -> None:
    """Import ART or fail with the install hint.

    Raises:
        ImportError: ``adversarial-robustness-toolbox`` is not installed (or cannot be imported).
    """
    try:
        importlib.import_module("art")
    except ImportError as err:
        raise ImportError(f"IBM ART (adversarial-robustness-toolbox) is not available ({err}); {INSTALL_HINT}") from err
