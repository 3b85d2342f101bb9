"""Hostile HTTP against a real ``stealguard serve``: crafted bodies, oversized and stalled uploads.

Every crafted body gets its 4xx (never a 500, never a traceback in the log) and a short one-line
``detail``; an over-limit ``Content-Length`` is refused before a byte of the body is read (an
``Expect: 100-continue`` client is never told to continue); 300 stalled uploads leave ``/healthz``
answering; a stalled upload gets 408 and is closed, a connection that sends no complete head is
closed; a client that hangs up is an info line.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from stealguard.serve.app import ServeConfig, raise_open_file_limit
from tests.serve import _hostile
from tests.serve._server import Server

MAX_BATCH = 300
STALLS = 300
MAX_ACTIVE = STALLS + 10
WAIT_S = 60.0
"""Upper bound of every wait on the server (never reached when it behaves)."""


@pytest.fixture(scope="module")
def server(victim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("hostile-server")
    running = Server(
        victim_dir, root / "data", root / "server.log", "--max-batch", str(MAX_BATCH),
        "--max-active-requests", str(MAX_ACTIVE), "--body-timeout", "600", "--no-query-log",
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=WAIT_S) as http:
        yield http


def small_request(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/predict", json={"inputs": np.full((2, *_hostile.SHAPE), 0.5).tolist()})


def head(port: int, content_type: str, length: int | None, *extra: str) -> bytes:
    lines = ["POST /v1/predict HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Type: {content_type}", *extra]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by :data:`WAIT_S`)."""
    sock.settimeout(WAIT_S)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def detail_of(raw: bytes) -> str:
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])["detail"]


CRAFTED = _hostile.NINE + _hostile.OTHERS


@pytest.mark.parametrize(("content_type", "body", "status"), [case[1:] for case in CRAFTED], ids=[case[0] for case in CRAFTED])
def test_crafted_bodies_get_their_4xx_and_a_short_detail(
    client: httpx.Client, server: Server, content_type: str, body: bytes, status: int
) -> None:
    reply = client.post("/v1/predict", content=body, headers={"Content-Type": content_type})
    assert reply.status_code == status, reply.text[:300]
    assert set(reply.json()) == {"detail"} and len(reply.content) < 500
    assert small_request(client).status_code == 200
    assert server.alive()


def test_long_headers_and_bodies_are_never_echoed(client: httpx.Client) -> None:
    reply = client.post("/v1/predict", content=b"{}", headers={"Content-Type": "text/" + "x" * 60_000})
    assert reply.status_code == 415 and len(reply.content) < 500
    reply = client.post("/v1/predict", content=json.dumps({"k" * 589_000: [1]}).encode(), headers={"Content-Type": "application/json"})
    assert reply.status_code == 422 and len(reply.content) < 500


@pytest.mark.parametrize("expect", [False, True], ids=["plain", "expect-100-continue"])
def test_an_over_limit_content_length_is_refused_before_any_body_byte_is_sent(server: Server, expect: bool) -> None:
    extra = ["Expect: 100-continue"] if expect else []
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S) as sock:
        sock.sendall(head(server.port, "application/json", 32 * 1024 * 1024, *extra))
        raw = read_until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 413"), raw[:200]
    assert b"\r\nconnection: close\r\n" in raw.lower()
    assert "nothing was read" in detail_of(raw)


def test_a_32_mib_json_body_is_refused_unparsed_while_a_small_request_is_answered(client: httpx.Client, server: Server) -> None:
    big = b'{"inputs": [' + b"0.5," * (8 * 1024 * 1024 - 4) + b"0.5]}"
    assert len(big) > 32 * 1024 * 1024 - 64
    with ThreadPoolExecutor(max_workers=2) as pool:
        refused = pool.submit(client.post, "/v1/predict", content=big, headers={"Content-Type": "application/json"})
        answered = pool.submit(small_request, client)
        assert answered.result().status_code == 200
        reply = refused.result()
    assert reply.status_code == 413
    assert "nothing was read" in reply.json()["detail"]


def test_a_chunked_body_is_cut_off_at_the_limit_while_streaming(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"inputs": ['
        for _ in range(4096):
            yield b"0.5," * 1024

    reply = client.post("/v1/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert reply.status_code == 413
    assert "while streaming" in reply.json()["detail"]


def _wait_for_busy(client: httpx.Client) -> httpx.Response:
    """Send small requests until one is refused as busy (each one answered meanwhile is fine)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        reply = small_request(client)
        if reply.status_code == 503:
            return reply
        assert reply.status_code == 200
    raise AssertionError(f"no 503 within {WAIT_S} s")


def test_300_stalled_uploads_do_not_stop_healthz(server: Server, client: httpx.Client) -> None:
    stalled = []
    try:
        for _ in range(MAX_ACTIVE):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)
            sock.sendall(head(server.port, "application/json", 100_000) + b'{"inputs": [[[[0.5, ')
            stalled.append(sock)
        busy = _wait_for_busy(client)
        assert busy.headers["retry-after"] == "1" and "busy" in busy.json()["detail"]
        for _ in range(3):
            assert client.get("/healthz").json() == {"status": "ok"}
            assert client.get("/v1/model").status_code == 200
        for sock in stalled:
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
    finally:
        for sock in stalled:
            sock.close()
    assert server.alive()


def test_a_client_that_hangs_up_mid_body_is_an_info_line(server: Server, client: httpx.Client) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S) as sock:
        sock.sendall(head(server.port, "application/json", 10_000) + b'{"inputs": [')
        assert client.get("/healthz").status_code == 200
    deadline = time.monotonic() + WAIT_S
    while "client hung up" not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log.read_text()
    assert "INFO:     client hung up while sending /v1/predict" in log
    assert small_request(client).status_code == 200


def test_the_log_holds_no_traceback_and_no_long_line(server: Server, client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200
    log = server.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log
    assert max(len(line) for line in log.splitlines()) < 1000


@pytest.fixture(scope="module")
def impatient(victim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with half-second body and header deadlines."""
    root = tmp_path_factory.mktemp("impatient-server")
    running = Server(victim_dir, root / "data", root / "server.log", "--body-timeout", "0.5", "--header-timeout", "0.5", "--no-query-log")
    yield running
    running.stop()


def test_a_stalled_upload_gets_408_and_is_closed(impatient: Server) -> None:
    with socket.create_connection(("127.0.0.1", impatient.port), timeout=WAIT_S) as sock:
        sock.sendall(head(impatient.port, "application/x-npy", 10_000) + b"\x93NUMPY")
        raw = read_until_closed(sock)
    assert status_of(raw) == 408 and "did not arrive within 0.5 s" in detail_of(raw)
    assert httpx.get(f"{impatient.url}/healthz", timeout=WAIT_S).status_code == 200


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"], ids=["idle", "partial head"])
def test_a_connection_without_a_complete_head_is_closed(impatient: Server, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", impatient.port), timeout=WAIT_S) as sock:
        sock.sendall(sent)
        assert read_until_closed(sock) == b""
    with httpx.Client(base_url=impatient.url, timeout=WAIT_S) as http:
        assert [http.get("/healthz").status_code for _ in range(3)] == [200] * 3


def test_a_head_sent_a_byte_at_a_time_does_not_extend_the_deadline(impatient: Server) -> None:
    trickle = b"GET /healthz HTTP/1.1\r\n" + b"X-Slow: " + b"a" * 1000
    closed = False
    with socket.create_connection(("127.0.0.1", impatient.port), timeout=WAIT_S) as sock:
        for byte in trickle:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.05)
            sock.setblocking(False)
            try:
                closed = sock.recv(1) == b""
            except BlockingIOError:
                pass
            sock.setblocking(True)
            if closed:
                break
    assert closed, "the server still waited for the head after 50 s of trickling"


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"the hard open-file limit is {hard}")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        raised = raise_open_file_limit()
        now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert raised == now > 256
        assert now == hard or hard == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_serve_passes_the_connection_cap_and_logging_to_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from stealguard.serve import app

    seen: dict[str, object] = {}
    monkeypatch.setenv(app.CONFIG_ENV, "")
    monkeypatch.setattr(app, "check_config", lambda config: None)
    monkeypatch.setattr(app, "raise_open_file_limit", lambda: 300)
    monkeypatch.setattr(uvicorn, "run", lambda target, **kwargs: seen.update(kwargs))
    app.serve(app.ServeConfig(victim="unused", max_connections=1000), port=0)
    assert seen["limit_concurrency"] == 300 - app.FILE_RESERVE
    assert seen["log_config"]["loggers"]["stealguard"]["level"] == "INFO"  # type: ignore[index]
    assert seen["http"] == "stealguard.serve.protocol:HeadDeadlineProtocol" and seen["timeout_keep_alive"] == 10.0
    app.serve(app.ServeConfig(victim="unused", max_connections=100), port=0)
    assert seen["limit_concurrency"] == 100


@pytest.mark.parametrize(
    ("field", "value"), [("body_timeout", 0.0), ("header_timeout", -1.0), ("max_active_requests", 0), ("max_connections", 0)],
)
def test_limits_out_of_range_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        ServeConfig(victim="unused", **{field: value})
