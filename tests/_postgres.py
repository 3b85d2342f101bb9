"""A throwaway PostgreSQL server for the tests: ``initdb`` in a temporary directory, a free loopback port.

PostgreSQL refuses to run as root; under root the server runs as the system user
:data:`PG_USER` (created once with ``useradd --system`` if absent) on a directory it owns.
Connections: trust authentication, on 127.0.0.1 only, and a unix socket inside the directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

PG_USER = "stealguard-pg"
START_TIMEOUT_S = 180
"""Bound for ``pg_ctl start -w`` (it returns as soon as the server accepts connections)."""


class Unavailable(Exception):
    """PostgreSQL cannot be run here; the message says why (the tests skip with it)."""


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise Unavailable(f"PostgreSQL's {name} is not installed (looked on PATH and in /usr/lib/postgresql/*/bin)")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: None (this one) unless we are root, then :data:`PG_USER`."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise Unavailable(f"running as root and there is no useradd to create the {PG_USER!r} user PostgreSQL needs")
    done = subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER], capture_output=True, text=True, check=False
    )
    if done.returncode not in (0, 9):  # 9: the user exists (created concurrently)
        raise Unavailable(f"useradd {PG_USER} failed: {done.stderr.strip()}")
    return pwd.getpwnam(PG_USER)


class PostgresServer:
    """A PostgreSQL server in a fresh temporary directory; :meth:`stop` removes it all.

    Raises:
        Unavailable: initdb/pg_ctl missing, or no account to run them as.
        RuntimeError: initdb or the start failed (their output included).
    """

    def __init__(self) -> None:
        self._initdb, self._pg_ctl = _binary("initdb"), _binary("pg_ctl")
        self._user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="stealguard-pg-"))
        self.data = self.root / "data"
        self.port = 0
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        try:
            self._run(self._initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--no-instructions")
            (self.data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
            self._start()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        extra: dict[str, Any] = {}
        if self._user is not None:
            extra = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        done = subprocess.run(
            list(command), capture_output=True, text=True, check=False, cwd=self.root, env={**os.environ, "LC_ALL": "C"}, **extra
        )
        if done.returncode != 0:
            raise RuntimeError(f"{Path(command[0]).name} failed ({done.returncode}): {(done.stdout + done.stderr).strip()[-2000:]}")
        return done

    def _start(self) -> None:
        last: Exception | None = None
        for _ in range(3):  # the free port can be taken between choosing and binding it
            self.port = _free_port()
            options = (
                f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c shared_buffers=16MB -c max_connections=200"
            )
            try:
                self._run(self._pg_ctl, "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options,
                          "-w", "-t", str(START_TIMEOUT_S), "start")
                return
            except RuntimeError as err:
                last = err
        raise RuntimeError(f"PostgreSQL did not start: {last}; log: {self.log()[-2000:]}")

    def log(self) -> str:
        """The server's log so far."""
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def url(self, database: str = "postgres") -> str:
        """``postgresql://postgres@127.0.0.1:PORT/database``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (immediate shutdown) and remove its directory."""
        try:
            self._run(self._pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
