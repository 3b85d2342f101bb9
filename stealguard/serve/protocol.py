"""uvicorn's HTTP/1.1 protocol (h11) with a deadline for every request head, the first included."""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol: a request head must be complete ``timeout_keep_alive`` seconds
    after the connection opened or after the previous response, else the connection is closed.

    uvicorn arms that timer only after a response and cancels it on any byte received, so a
    connection that never completes its first head (opened and left idle, or headers sent a
    byte at a time) would hold a file descriptor and count against ``limit_concurrency`` for
    ever, until every request, ``/healthz`` included, got 503. Here the timer is armed at
    connect and re-armed for the same deadline while the head is incomplete; a complete head
    cancels it as before. The body has its own deadline in the app (``ServeConfig.body_timeout``).
    """

    _head_deadline = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[arg-type]
        self._head_deadline = self.loop.time() + self.timeout_keep_alive
        self.timeout_keep_alive_task = self.loop.call_at(self._head_deadline, self.timeout_keep_alive_handler)

    def on_response_complete(self) -> None:
        self._head_deadline = self.loop.time() + self.timeout_keep_alive
        super().on_response_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        waiting_for_head = self.conn.their_state is h11.IDLE
        if waiting_for_head and self.timeout_keep_alive_task is None and not self.transport.is_closing():
            self.timeout_keep_alive_task = self.loop.call_at(self._head_deadline, self.timeout_keep_alive_handler)
