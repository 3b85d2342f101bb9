"""Where a result came from: the code version (package version plus git commit), and paths as results record them."""

from __future__ import annotations

import functools
import os
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


def portable_path(path: str | os.PathLike[str], start: str | os.PathLike[str] | None = None) -> str:
    """``path`` relative to ``start`` (default the working directory), in POSIX form, as a result row records it.

    Rows are committed and read on other machines: a path relative to where the command ran
    (``benchmarks/victims/mnist-lenet``, ``../shared/data``) says the same there, an absolute one
    names this machine's folders. Where no relative path exists (another drive), the absolute path.

    Example:
        >>> portable_path(Path.cwd() / "runs" / "victim")
        'runs/victim'
    """
    absolute = Path(path).resolve()
    try:
        relative = os.path.relpath(absolute, Path(start).resolve() if start is not None else Path.cwd())
    except ValueError:
        return absolute.as_posix()
    return Path(relative).as_posix()
