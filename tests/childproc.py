"""Run a child process with one thread per library; report its exit status (a negative one is the signal that ended it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PEAK_RSS_CODE = """
def peak_rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
"""
"""Source of ``peak_rss()`` for a child script: its own peak RSS in bytes since it started (``VmHWM``).

``RUSAGE_CHILDREN`` / ``os.wait4`` would not do: Linux carries the forking parent's
high-water mark over ``exec``, so a child of a big pytest process would report the parent's."""


RUN_CLI_CODE = """
def run_cli(argv):
    import contextlib, io, runpy, sys, traceback
    sys.argv = ["stealguard", *argv]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            runpy.run_module("stealguard.cli", run_name="__main__")
        return ["returned without exiting", stderr.getvalue()]
    except SystemExit as done:
        return [done.code, stderr.getvalue()]
    except BaseException:
        return ["traceback", stderr.getvalue() + traceback.format_exc()]
"""
"""Source of ``run_cli(argv)`` for a child script: run ``stealguard argv...`` as ``python -m`` would and return
``[exit status, stderr]`` (``"traceback"`` and the traceback when it raised instead of exiting)."""


def run_child(code: str, args: list[str], *, cwd: Path, timeout: float = 300) -> tuple[int, str, str]:
    """Run ``python -c code args...``; return ``(returncode, stdout, stderr)``; killed after ``timeout`` s."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    return done.returncode, done.stdout, done.stderr
