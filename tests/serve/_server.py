"""A real ``stealguard serve`` process on a free loopback port, for the end-to-end tests.

Start-up waits for the server itself to say it is ready, not for a fixed time: every worker
process prints ``Application startup complete.`` once its model and store are loaded, and then
``/healthz`` must answer. The overall bound is generous (a loaded machine can take minutes to
import torch) and the wait ends at once, with the log, when the process exits.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

STARTUP_S = 600.0
"""Bound on the start-up of a server whose process stays alive (it normally takes seconds)."""
READY_LINE = "Application startup complete."


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _workers(args: tuple[str, ...]) -> int:
    return int(args[args.index("--workers") + 1]) if "--workers" in args else 1


class Server:
    """``python -m stealguard.cli serve ...`` in a subprocess; stderr and stdout go to ``log``.

    Args:
        victim: victim directory. data_dir: the server's databases. log: its output file (appended to).
        args: further ``serve`` arguments (``--defense``, ``--keys``, ``--workers``, ``--store``, ...).
        port: the port to listen on (default a free one), e.g. to restart a server where it was.
    """

    def __init__(self, victim: Path, data_dir: Path, log: Path, *args: str, port: int | None = None) -> None:
        self.port = free_port() if port is None else port
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.workers = _workers(args)
        level = args[args.index("--log-level") + 1] if "--log-level" in args else "info"
        self._ready_lines = self.workers if level in ("trace", "debug", "info") else 0  # uvicorn prints it at info
        command = [
            sys.executable, "-m", "stealguard.cli", "serve", "--victim", str(victim), "--data-dir", str(data_dir),
            "--port", str(self.port), "--threads", "1", "--log-level", "info", *args,
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self._start = log.stat().st_size if log.exists() else 0
        self._out = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=self._out, stderr=subprocess.STDOUT, env=env)
        self._wait()

    def output(self) -> str:
        """What this server (not an earlier one on the same log) has printed so far."""
        with open(self.log, "rb") as handle:
            handle.seek(self._start)
            return handle.read().decode("utf-8", errors="replace")

    def _wait(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._out.close()
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.output()[-2000:]}")
            if self.output().count(READY_LINE) >= self._ready_lines:
                try:
                    if httpx.get(f"{self.url}/healthz", timeout=5.0).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server process alive but not ready after {STARTUP_S} s: {self.output()[-2000:]}")

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the process (no shutdown of any kind) and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self._out.close()

    def stop(self) -> None:
        """Terminate (SIGTERM, graceful shutdown) and wait."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()
