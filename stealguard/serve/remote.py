"""``RemoteBlackBox``: the :class:`~stealguard.blackbox.BlackBox` interface over HTTP.

Attacks use only ``query``, ``input_shape``, ``num_classes``, ``queries_used`` and
``remaining``, so every attack runs unchanged against a URL served by ``stealguard serve``.
Requests carry the inputs as ``.npy`` float32 bodies; 429 and 5xx answers and connection
errors are retried with exponential backoff (honouring ``Retry-After``); every batch carries a
fresh ``Idempotency-Key``, so a retry after a lost response is answered from the server's
store instead of being charged twice. What only the
defender can know, the L1 distortion between defended and clean answers, is not available:
:meth:`RemoteBlackBox.distortions` raises.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from typing import Any, Self

import httpx
import torch
from torch import Tensor

from stealguard._checks import check_int, check_number
from stealguard.blackbox import BudgetExceededError
from stealguard.serve.codec import NPY_TYPE, encode_npy
from stealguard.serve.errors import RemoteError
from stealguard.serve.replay import HEADER as IDEMPOTENCY_HEADER

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class RemoteBlackBox:
    """A defended prediction API at ``url``, queried like an in-process ``BlackBox``.

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:8000``.
        api_key: sent as ``X-API-Key``; None for an open server.
        budget: most queries this client sends (checked locally before a request), >= 0,
            or None for no local limit (the server's quota still applies).
        batch_size: inputs per request, >= 1 (capped at the server's ``max_batch``).
        timeout: seconds per request, > 0 (default 60).
        retries: extra attempts after a 429, a 5xx or a connection error, >= 0 (default 5).
        backoff: first wait in seconds, doubled on every retry (with up to 10% jitter),
            >= 0 (default 0.25); a ``Retry-After`` header overrides it. Waits are capped at
            ``max_wait`` seconds, > 0 (default 30).
        seed: seed of the jitter, >= 0.
        transport: an ``httpx`` transport to use instead of the network (tests).
        sleep: the wait function (``time.sleep``), replaceable in tests.

    Raises:
        ValueError, TypeError: a parameter out of range.
        RemoteError: the model card cannot be fetched (unreachable server, bad key).
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        budget: int | None = None,
        batch_size: int = 256,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.25,
        max_wait: float = 30.0,
        seed: int = 0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        if api_key is not None and not isinstance(api_key, str):
            raise TypeError(f"api_key must be a string or None, got {type(api_key).__name__}")
        self.url = url.rstrip("/")
        self.budget = None if budget is None else check_int("budget", budget, low=0)
        self.retries = check_int("retries", retries, low=0)
        self.backoff = check_number("backoff", backoff, low=0.0)
        self.max_wait = check_number("max_wait", max_wait, low=0.0, low_inclusive=False)
        check_number("timeout", timeout, low=0.0, low_inclusive=False)
        check_int("seed", seed, low=0)
        self._random = random.Random(seed)
        self._sleep = sleep
        headers = {"X-API-Key": api_key} if api_key is not None else {}
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)
        self.card: dict[str, Any] = self._request("GET", "/v1/model").json()
        self.input_shape = tuple(int(d) for d in self.card["input_shape"])
        self.num_classes = int(self.card["num_classes"])
        self.batch_size = min(check_int("batch_size", batch_size, low=1), int(self.card["max_batch"]))
        self.queries_used = 0

    @property
    def remaining(self) -> int | None:
        """Queries left: the smaller of the local budget and the server's quota for this key (None when neither limits)."""
        limits = [] if self.budget is None else [self.budget - self.queries_used]
        server = self.server_usage()["remaining"]
        if server is not None:
            limits.append(int(server))
        return min(limits) if limits else None

    def server_usage(self) -> dict[str, Any]:
        """The server's ``/v1/usage`` for this key: ``key``, ``used``, ``quota``, ``remaining``."""
        return self._request("GET", "/v1/usage").json()

    def query(self, x: Tensor) -> Tensor:
        """Defended probabilities of ``x`` from the server.

        Args:
            x: float tensor ``(N, *input_shape)``, finite, pixels in [0, 1]; any device.

        Returns:
            float32 ``(N, K)`` on ``x``'s device.

        Raises:
            TypeError: ``x`` is not a floating-point tensor.
            ValueError: wrong shape or non-finite values (checked locally, nothing is sent).
            BudgetExceededError: the local budget or the server's quota would be exceeded.
            RemoteError: the server refused the input or kept failing.
        """
        if not isinstance(x, Tensor) or not x.is_floating_point():
            kind = x.dtype if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"queries must be a floating-point tensor, got {kind}")
        if x.dim() != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"queries must have shape (N, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}")
        if x.numel() and not bool(torch.isfinite(x).all()):
            raise ValueError("queries must be finite; the batch contains NaN or Inf")
        n = int(x.shape[0])
        if self.budget is not None and self.queries_used + n > self.budget:
            raise BudgetExceededError(f"query of {n} inputs refused: {self.queries_used} of the budget of {self.budget} already used")
        answers = []
        for chunk in x.detach().split(self.batch_size):
            headers = {"Content-Type": NPY_TYPE, IDEMPOTENCY_HEADER: uuid.uuid4().hex}
            response = self._request("POST", "/v1/predict", content=encode_npy(chunk), headers=headers)
            answers.append(torch.tensor(response.json()["probabilities"], dtype=torch.float32))
            self.queries_used += int(chunk.shape[0])
        if not answers:
            return torch.zeros(0, self.num_classes, device=x.device)
        return torch.cat(answers).to(x.device)

    def distortions(self) -> Tensor:
        """Not available remotely: the distortion compares defended with clean answers, which only the defender sees.

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError("distortions are defender-side: a remote client never sees the clean answers")

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait(self, attempt: int, response: httpx.Response | None) -> float:
        header = response.headers.get("retry-after") if response is not None else None
        if header is not None and header.strip().isdigit():
            return min(float(header), self.max_wait)
        return min(self.backoff * 2**attempt * (1 + 0.1 * self._random.random()), self.max_wait)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send with retries; return a 2xx response or raise."""
        for attempt in range(self.retries + 1):
            response = None
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as err:
                failure = RemoteError(None, f"{method} {self.url}{path} failed: {type(err).__name__}: {err}")
            else:
                if response.is_success:
                    return response
                failure = _refusal(response)
                if response.status_code not in RETRY_STATUSES:
                    raise failure
            if attempt < self.retries:
                self._sleep(self._wait(attempt, response))
        raise failure


def _refusal(response: httpx.Response) -> Exception:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    detail = str(payload["detail"]) if isinstance(payload, dict) and "detail" in payload else response.text[:200]
    if response.status_code == 403 and "quota" in detail:
        return BudgetExceededError(f"the server's quota for this key is exhausted: {detail}")
    return RemoteError(response.status_code, detail)
