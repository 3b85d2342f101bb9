"""Where a result came from: the code version (package version plus git commit)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from stealguard import _version


@functools.cache
def code_version() -> str:
    """``stealguard.__version__`` plus the git commit of the source tree (``+g<sha>``, ``.dirty``
    when the package's files differ from it, new files included), or the version alone outside a git checkout.

    Example:
        >>> code_version().startswith(_version.__version__)
        True
    """
    source = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=source, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "."], cwd=source, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return _version.__version__
    return f"{_version.__version__}+g{sha}{'.dirty' if dirty else ''}"
