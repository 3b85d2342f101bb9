"""Errors of the HTTP client, importable without the ``serve`` extra (the CLI catches them)."""

from __future__ import annotations


class RemoteError(RuntimeError):
    """The server refused a request for good (bad key, bad input) or kept failing after the retries.

    Args:
        status: the last HTTP status, or None when no answer came back.
        message: what the server said (its ``detail``) or what went wrong.
    """

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status is not None else message)
        self.status = status
        self.message = message
