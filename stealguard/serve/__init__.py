"""The defended prediction service over HTTP and its client.

* :func:`~stealguard.serve.app.create_app` / :func:`~stealguard.serve.app.serve`: the FastAPI
  app (``POST /v1/predict``, ``GET /v1/model``, ``GET /v1/usage``, ``GET /healthz``) under uvicorn.
* :class:`~stealguard.serve.remote.RemoteBlackBox`: the ``BlackBox`` interface over HTTP, so
  every attack runs unchanged against a URL.
* :mod:`~stealguard.serve.access` (keys, quotas, rate limits),
  :mod:`~stealguard.serve.codec` (request decoding and validation),
  :mod:`~stealguard.serve.forensics` (the per-key query log),
  :mod:`~stealguard.serve.replay` (idempotent retries), all kept in one
  :mod:`~stealguard.serve.stores` store: SQLite (one machine) or PostgreSQL (several).

The server side needs ``fastapi`` and ``uvicorn``; the client only ``httpx``.
"""

from typing import Any

from stealguard.serve.errors import RemoteError

__all__ = ["RemoteBlackBox", "RemoteError"]


def __getattr__(name: str) -> Any:
    """``RemoteBlackBox``, imported on first use (it needs httpx, the ``serve`` extra)."""
    if name == "RemoteBlackBox":
        from stealguard.serve.remote import RemoteBlackBox

        return RemoteBlackBox
    raise AttributeError(f"module 'stealguard.serve' has no attribute {name!r}")
