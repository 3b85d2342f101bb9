"""Run a child process and measure it alone: exit status (a negative one is the signal that ended it) and peak RSS."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from pathlib import Path


def run_child(args: list[str], *, cwd: Path, timeout: float = 300) -> tuple[int, str, str, int]:
    """Run ``args`` with one thread per library; return ``(returncode, stdout, stderr, peak RSS in bytes)``.

    The peak RSS is that child's own (``os.wait4``), not the maximum over every child the
    test process ever waited for (``RUSAGE_CHILDREN``). A child still running after
    ``timeout`` seconds is killed (returncode ``-9``).
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(args, stdout=out, stderr=err, cwd=cwd, env=env)
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return process.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"), usage.ru_maxrss * 1024
