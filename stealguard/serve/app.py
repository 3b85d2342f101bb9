"""The defended prediction service: a FastAPI app over a victim, a defense and access control.

Endpoints:

* ``POST /v1/predict``: a batch ``(B, *input_shape)`` as JSON ``{"inputs": [...]}``, JSON
  ``{"inputs_b64": ..., "shape": [...]}`` (little-endian float32) or a ``.npy`` body
  (``Content-Type: application/x-npy``) -> ``{"probabilities": [[...]], "labels": [...]}``,
  the defended posteriors and their top-1 labels. The key travels in ``X-API-Key``.
* ``GET /v1/model``: the public model card (input shape, classes, limits; nothing about the defense).
* ``GET /v1/usage``: the calling key's queries used and remaining.
* ``GET /healthz``; the OpenAPI schema at ``/openapi.json`` (``/docs`` renders it).

A request goes: a free request slot (503 with ``Retry-After`` when ``max_active_requests`` are
in progress) -> key (401) -> content type (415) -> body within the limit of its format
(:func:`stealguard.serve.codec.body_limit`; 413 from ``Content-Length`` before any byte is read,
or while streaming) read within ``body_timeout`` seconds (408) -> a stored answer when it repeats
an earlier request's ``Idempotency-Key`` (:mod:`stealguard.serve.replay`; 400/422) -> decode and
validate on a worker thread (400/415/422/413) -> quota and rate reserved in the store (403/429 with
``Retry-After``; 503 when the store fails) -> batched inference on the worker thread -> the
reservation settled with the query-log rows and the replay, in one transaction of the store
(:mod:`stealguard.serve.stores`), before the answer leaves. Every refusal is
``{"detail": "<one line>"}`` quoting at most a short escaped excerpt of the request; a refusal
sent before the whole body was read carries ``Connection: close`` (and an ``Expect:
100-continue`` request is never told to continue). A client that hangs up is logged at info
level; anything unexpected is a 500 with a fixed message. Messages, headers and log lines never
carry the clean posteriors; the answers carry what the defense returns, which for some rows is
the clean posterior itself by design (``none``; DCP's confident rows, top probability above
``tau``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from stealguard._checks import check_int, check_number
from stealguard._version import __version__
from stealguard.artifacts import build_defense, load_victim
from stealguard.device import resolve_device
from stealguard.serve.access import AccessControl, AccessDenied, KeyPolicy, Usage, load_keys, retry_after_header
from stealguard.serve.codec import CONTENT_TYPES, VALUE_RANGE, InputError, body_limit, decode_inputs, excerpt
from stealguard.serve.forensics import QueryLog
from stealguard.serve.inference import InferenceError, Predictor
from stealguard.serve.replay import HEADER as IDEMPOTENCY_HEADER
from stealguard.serve.replay import REPLAYED_HEADER, ReplayStore, body_digest, check_idempotency_key
from stealguard.serve.stores import Store, StoreError, is_url, open_store
from stealguard.serve.stores.sqlite import SqliteStore

LOGGER = logging.getLogger("stealguard.serve")
CONFIG_ENV = "STEALGUARD_SERVE_CONFIG"
STORE_DB = "serve.sqlite"
"""The embedded store's file in ``data_dir``: usage, reservations, query log, replays."""
USAGE_DB = "usage.sqlite"
QUERY_LOG_DB = "queries.sqlite"
REPLAY_DB = "replays.sqlite"
"""Files of earlier versions, imported once into :data:`STORE_DB` when present."""
MESSAGE_CHARS = 300
"""Longest ``detail`` of a refusal (longer ones are cut)."""
FILE_RESERVE = 64
"""Open files a server process keeps for itself beyond its connections (databases, logs, model)."""


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """Everything a server process needs; JSON-able so that worker processes can rebuild it.

    Args:
        victim: victim directory written by ``stealguard train``.
        defense: defense spec ``name[:key=value,...]`` (MAD gets the seeded surrogate of ``build_defense``).
        data_dir: directory of the embedded SQLite store (created if absent); unused with ``store``.
        store: ``postgresql://user@host:port/database`` to keep usage, rate state, the query log and
            the replays in PostgreSQL, shared by server processes on several machines; None (default):
            SQLite in ``data_dir``. Prefer ``PGPASSWORD`` or ``~/.pgpass`` to a password in the URL.
        keys: key file (see :mod:`stealguard.serve.access`), or None for an open server.
        quota: the anonymous caller's total queries (open server only), >= 0 or None.
        rate: the anonymous caller's queries per second, > 0 or None.
        burst: the anonymous caller's bucket size, >= 1 or None (default ``max(rate, 1)``).
        max_batch: most inputs per request and per forward pass, >= 1 (default 1024).
        max_body_bytes: largest request body, >= 1024 (default 32 MiB); a JSON body is further
            bounded by what ``max_batch`` inputs take (:func:`stealguard.serve.codec.body_limit`).
        body_timeout: seconds a request body may take to arrive, > 0 (default 30; then 408).
        header_timeout: seconds a connection may take to send a complete request head, from its
            opening or from the previous response, > 0 (default 10; then it is closed; uvicorn's
            ``timeout_keep_alive``, armed at connect by :mod:`stealguard.serve.protocol`).
        max_active_requests: predict requests one process serves at once, body upload included,
            >= 1 (default 64; more get 503 with ``Retry-After``). ``/healthz`` is not counted.
        max_connections: open connections one process keeps, >= 1 (default 1000; uvicorn's
            ``limit_concurrency``, every request past it gets 503, ``/healthz`` included); lowered
            to the open-file limit less :data:`FILE_RESERVE` when that is smaller.
        seed: seed of the defense (and MAD's surrogate), >= 0.
        device: ``auto``, ``cpu`` or ``cuda``.
        threads: torch intra-op threads per process, >= 1 (default 1: requests are small, and
            several intra-op threads per worker contend for the cores), or None for torch's default.
        query_log: keep the forensic query log (default True).
        data_root: where the data sets are, for a defense that trains a model on first use
            (``adaptive_misinformation`` without a saved misinformation model); None: the default root.

    Raises:
        TypeError, ValueError: a field out of range.
    """

    victim: str
    defense: str = "none"
    data_dir: str = "serve_data"
    store: str | None = None
    keys: str | None = None
    quota: int | None = None
    rate: float | None = None
    burst: float | None = None
    max_batch: int = 1024
    max_body_bytes: int = 32 * 1024 * 1024
    body_timeout: float = 30.0
    header_timeout: float = 10.0
    max_active_requests: int = 64
    max_connections: int = 1000
    seed: int = 0
    device: str = "cpu"
    threads: int | None = 1
    query_log: bool = True
    data_root: str | None = None

    def __post_init__(self) -> None:
        check_int("max_batch", self.max_batch, low=1)
        check_int("max_body_bytes", self.max_body_bytes, low=1024)
        check_number("body_timeout", self.body_timeout, low=0.0, low_inclusive=False)
        check_number("header_timeout", self.header_timeout, low=0.0, low_inclusive=False)
        check_int("max_active_requests", self.max_active_requests, low=1)
        check_int("max_connections", self.max_connections, low=1)
        check_int("seed", self.seed, low=0)
        if self.store is not None and not is_url(self.store):
            raise ValueError("store must be a postgresql://user@host:port/database URL (or None for SQLite in data_dir)")
        if self.quota is not None:
            check_int("quota", self.quota, low=0)
        if self.rate is not None:
            check_number("rate", self.rate, low=0.0, low_inclusive=False)
        if self.threads is not None:
            check_int("threads", self.threads, low=1)

    def to_json(self) -> str:
        """The config as a JSON string."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        """Inverse of :meth:`to_json`."""
        return cls(**json.loads(text))


class PredictRequest(BaseModel):
    """JSON request body (the schema is documentation: bodies are decoded by :mod:`stealguard.serve.codec`)."""

    inputs: list[Any] | None = Field(None, description="nested list, shape (B, *input_shape), pixels in [0, 1]")
    inputs_b64: str | None = Field(None, description="base64 of little-endian float32 values, C order (instead of inputs)")
    shape: list[int] | None = Field(None, description="shape (B, *input_shape) of inputs_b64")


def predict_body_schema(input_shape: tuple[int, ...] | list[int], max_batch: int) -> dict[str, Any]:
    """The JSON Schema of a valid JSON predict body for this victim: ``inputs`` nested exactly
    ``(B, *input_shape)`` with ``1 <= B <= max_batch`` and pixels in [0, 1], or ``inputs_b64``
    with its ``shape`` (what the served ``/openapi.json`` shows once the victim is loaded)."""
    item: dict[str, Any] = {"type": "number", "minimum": VALUE_RANGE[0], "maximum": VALUE_RANGE[1]}
    for size in reversed(list(input_shape)):
        item = {"type": "array", "items": item, "minItems": int(size), "maxItems": int(size)}
    dims = len(input_shape) + 1
    nested = {
        "type": "object", "required": ["inputs"], "additionalProperties": False,
        "properties": {"inputs": {"type": "array", "items": item, "minItems": 1, "maxItems": max_batch,
                                  "description": "nested list, shape (B, *input_shape), pixels in [0, 1]"}},
    }
    packed = {
        "type": "object", "required": ["inputs_b64", "shape"], "additionalProperties": False,
        "properties": {
            "inputs_b64": {"type": "string", "description": "base64 of little-endian float32 values, C order"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": dims, "maxItems": dims,
                      "description": "shape (B, *input_shape) of inputs_b64"},
        },
    }
    return {"oneOf": [nested, packed]}


class PredictResponse(BaseModel):
    """Defended posteriors ``(B, K)`` and their top-1 labels ``(B,)``."""

    probabilities: list[list[float]]
    labels: list[int]


class ModelInfo(BaseModel):
    """The public model card."""

    dataset: str
    arch: str
    input_shape: list[int]
    num_classes: int
    classes: list[str]
    value_range: list[float]
    max_batch: int
    max_body_bytes: int
    max_body_bytes_by_format: dict[str, int] = Field(
        description="largest body accepted per Content-Type: no valid batch of max_batch inputs needs more"
    )
    input_formats: list[str]
    keys_required: bool
    stealguard_version: str


class UsageInfo(BaseModel):
    """The calling key's spending."""

    key: str
    used: int
    quota: int | None
    remaining: int | None


class ErrorBody(BaseModel):
    """Every refusal."""

    detail: str


_ERRORS = {status: {"model": ErrorBody} for status in (400, 401, 403, 408, 413, 415, 422, 429, 503)}


def _usage_headers(spent: Usage) -> dict[str, str]:
    headers = {"X-Queries-Used": str(spent.used)}
    if spent.remaining is not None:
        headers["X-Quota-Remaining"] = str(spent.remaining)
    return headers


def _error(status: int, message: str, headers: dict[str, str] | None = None, *, close: bool = False) -> JSONResponse:
    """A refusal ``{"detail": message}`` (cut to :data:`MESSAGE_CHARS`); ``close`` ends the connection after it."""
    if len(message) > MESSAGE_CHARS:
        message = message[:MESSAGE_CHARS] + "..."
    if close:
        headers = {**(headers or {}), "Connection": "close"}
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _declared_length(request: Request, limit: int) -> None:
    """Refuse a ``Content-Length`` that is not a number (400) or over ``limit`` (413), before reading."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    digits = declared.strip()
    if not digits or not digits.isascii() or not digits.isdigit():
        raise InputError(400, f"Content-Length {excerpt(declared)} is not a number")
    if len(digits) > 18 or int(digits) > limit:
        shown = digits if len(digits) <= 18 else f"a {len(digits)}-digit number of"
        raise InputError(413, f"the declared body of {shown} bytes exceeds the limit of {limit} bytes; nothing was read")


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The whole body, refused before reading when ``Content-Length`` is over ``limit``.

    Raises:
        InputError: 400 a Content-Length that is not a number; 413 a body over ``limit``
            (declared, or seen while streaming); 408 the body took more than ``timeout`` seconds.
        ClientDisconnect: the client hung up.
    """
    _declared_length(request, limit)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise InputError(413, f"the body exceeds the limit of {limit} bytes (refused while streaming)")
                chunks.append(chunk)
    except TimeoutError:
        raise InputError(408, f"the body did not arrive within {timeout:g} s ({size} bytes came)") from None
    return b"".join(chunks)


def _open_store(config: ServeConfig) -> Store:
    """The store of ``config``: PostgreSQL at ``config.store``, else SQLite in ``data_dir`` (earlier files imported).

    Raises:
        StoreError: the store cannot be opened (one line, no password).
    """
    if config.store is not None:
        return open_store(config.store)
    data_dir = Path(config.data_dir)
    store = SqliteStore(data_dir / STORE_DB)
    try:
        store.import_legacy(usage=data_dir / USAGE_DB, queries=data_dir / QUERY_LOG_DB, replays=data_dir / REPLAY_DB)
    except Exception:
        store.close()
        raise
    return store


STORE_UNAVAILABLE = "the quota store is unavailable; retry later"


class _Service:
    """The state one server process holds: predictor, store, access control, query log, replays."""

    def __init__(self, config: ServeConfig) -> None:
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        model, card = load_victim(Path(config.victim))
        defense, _ = build_defense(
            config.defense, card=card, seed=config.seed, victim_dir=Path(config.victim), data_root=config.data_root,
            device=resolve_device(config.device),
        )
        self.card = card
        self.config = config
        keys = load_keys(config.keys) if config.keys is not None else None
        anonymous = KeyPolicy(name="anonymous", quota=config.quota, rate=config.rate, burst=config.burst)
        self.store = _open_store(config)
        LOGGER.info("store: %s (this process reserves as %s)", self.store.location, self.store.owner)
        self.access = AccessControl(self.store, keys=keys, anonymous=anonymous)
        self.log = QueryLog(self.store) if config.query_log else None
        self.replays = ReplayStore(self.store)
        self.predictor = Predictor(model, defense, device=resolve_device(config.device), max_batch=config.max_batch)
        self.info = ModelInfo(
            dataset=card.dataset,
            arch=card.arch,
            input_shape=list(card.input_shape),
            num_classes=card.num_classes,
            classes=list(card.classes),
            value_range=list(VALUE_RANGE),
            max_batch=config.max_batch,
            max_body_bytes=config.max_body_bytes,
            max_body_bytes_by_format={
                kind: body_limit(kind, input_shape=card.input_shape, max_batch=config.max_batch, max_body_bytes=config.max_body_bytes)
                for kind in CONTENT_TYPES
            },
            input_formats=list(CONTENT_TYPES),
            keys_required=self.access.keys_required,
            stealguard_version=__version__,
        )

    def admit(self, policy: KeyPolicy, body: bytes, content_type: str | None) -> tuple[torch.Tensor, Usage]:
        """Decode and validate ``body``, then reserve its queries (one thread-pool hop for both).

        Raises:
            InputError: the body is invalid. AccessDenied: quota or rate refuses it; 503 when
                the store fails.
        """
        x = decode_inputs(body, content_type, input_shape=self.card.input_shape, max_batch=self.config.max_batch)
        try:
            return x, self.access.reserve(policy, int(x.shape[0]))
        except StoreError as err:
            LOGGER.error("charge failed: %s", err)
            raise AccessDenied(503, STORE_UNAVAILABLE, retry_after=1.0) from None

    def spent(self, policy: KeyPolicy) -> Usage:
        """What ``policy`` has spent.

        Raises:
            AccessDenied: 503 when the store fails.
        """
        try:
            return self.access.usage(policy)
        except StoreError as err:
            LOGGER.error("reading usage failed: %s", err)
            raise AccessDenied(503, STORE_UNAVAILABLE, retry_after=1.0) from None

    def replayed(self, policy: KeyPolicy, idempotency_key: str, digest: str) -> tuple[bytes, Usage] | None:
        """The stored answer of an earlier request with this idempotency key and body, and the key's spending.

        Raises:
            InputError: the key was used with another body. AccessDenied: 503 when the store fails.
        """
        try:
            stored = self.replays.lookup(policy.name, idempotency_key, digest)
        except StoreError as err:
            LOGGER.error("reading a replay failed: %s", err)
            raise AccessDenied(503, STORE_UNAVAILABLE, retry_after=1.0) from None
        return None if stored is None else (stored, self.spent(policy))

    def settle(self, spent: Usage, x: torch.Tensor, idempotency_key: str | None, digest: str, answer: bytes) -> None:
        """Record an answer before it leaves: close ``spent``'s reservation, write the query-log rows
        of ``x`` and the replay (with an idempotency key), in one transaction.

        Raises:
            AccessDenied: 503 when the store fails (the reservation is then released if the store allows).
        """
        if spent.reservation is None:
            raise ValueError("settle needs the Usage returned by admit()")
        rows = self.log.rows(spent.name, x) if self.log is not None else []
        replay = None if idempotency_key is None else self.replays.entry(spent.name, idempotency_key, digest, answer)
        try:
            self.store.settle(spent.reservation, name=spent.name, n=int(x.shape[0]), log=rows, replay=replay, ttl=self.replays.ttl)
        except StoreError as err:
            LOGGER.error("settling an answer failed: %s", err)
            self.release(spent)
            raise AccessDenied(503, STORE_UNAVAILABLE, retry_after=1.0) from None

    def release(self, spent: Usage) -> None:
        """Give back an unanswered request's reservation (logged, not raised, when the store fails:
        a sweep gives it back once this process is gone)."""
        try:
            self.access.release(spent)
        except StoreError as err:
            LOGGER.error("releasing a reservation failed: %s", err)

    def close(self) -> None:
        self.predictor.close()
        self.store.close()


def create_app(config: ServeConfig) -> FastAPI:
    """The FastAPI app serving ``config.victim`` behind ``config.defense``.

    The victim, the defense, the databases and the worker thread are set up when the app
    starts (lifespan) and released when it stops.

    Raises:
        FileNotFoundError, ValueError, TypeError: at start-up, a missing victim or key file,
            a bad defense spec.
    """
    state: dict[str, _Service] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["service"] = _Service(config)
        LOGGER.info("serving %s (%s) on its defense; keys %s", config.victim, state["service"].card.arch,
                    "required" if state["service"].access.keys_required else "not required")
        try:
            yield
        finally:
            state.pop("service").close()

    app = FastAPI(
        title="stealguard defended prediction API",
        version=__version__,
        description="Defended class probabilities of a classifier; see GET /v1/model for the input format.",
        lifespan=lifespan,
    )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail), err.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        LOGGER.error("unexpected %s on %s %s", type(err).__name__, request.method, request.url.path)
        return _error(500, "internal server error")

    slots = asyncio.Semaphore(config.max_active_requests)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: ``{"status": "ok"}`` once the model is loaded."""
        return {"status": "ok"}

    @app.get("/v1/model", response_model=ModelInfo)
    async def model_card() -> ModelInfo:
        """The public model card: input shape, classes, value range, request limits."""
        return state["service"].info

    @app.get("/v1/usage", response_model=UsageInfo, responses=_ERRORS)
    async def usage(request: Request) -> Any:
        """Queries the calling key has used and has left."""
        service = state["service"]
        try:
            policy = service.access.authenticate(request.headers.get("x-api-key"))
            spent = await run_in_threadpool(service.spent, policy)
        except AccessDenied as err:
            retry = {"Retry-After": retry_after_header(err.retry_after)} if err.retry_after is not None else None
            return _error(err.status, err.message, retry)
        return UsageInfo(key=spent.name, used=spent.used, quota=spent.quota, remaining=spent.remaining)

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        responses=_ERRORS,
        openapi_extra={
            "parameters": [
                {"name": "X-API-Key", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "the caller's key (required when the server has a key file)"},
                {"name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
                 "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9._:-]+$"},
                 "description": "a repeat with the same key and body is answered from the store, uncharged"},
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": PredictRequest.model_json_schema()},
                    "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
                },
            },
        },
    )
    async def predict(request: Request) -> Any:
        """Defended probabilities ``(B, K)`` and top-1 labels of a batch ``(B, *input_shape)``."""
        if slots.locked():
            LOGGER.info("refused %s: 503, %d requests in progress", request.url.path, config.max_active_requests)
            return _error(503, f"the server is busy ({config.max_active_requests} requests in progress); retry later",
                          {"Retry-After": "1"}, close=True)
        async with slots:
            return await _answer(request)

    async def _answer(request: Request) -> Any:
        service = state["service"]
        idempotency_key = request.headers.get(IDEMPOTENCY_HEADER)
        digest = ""
        body_read = False
        try:
            policy = service.access.authenticate(request.headers.get("x-api-key"))
            limit = body_limit(request.headers.get("content-type"), input_shape=service.card.input_shape,
                               max_batch=service.config.max_batch, max_body_bytes=service.config.max_body_bytes)
            body = await _read_body(request, limit, service.config.body_timeout)
            body_read = True
            if idempotency_key is not None:
                check_idempotency_key(idempotency_key)
                digest = body_digest(body, request.headers.get("content-type"))
                replayed = await run_in_threadpool(service.replayed, policy, idempotency_key, digest)
                if replayed is not None:
                    stored, spent = replayed
                    return Response(stored, media_type="application/json", headers={**_usage_headers(spent), REPLAYED_HEADER: "true"})
            x, spent = await run_in_threadpool(service.admit, policy, body, request.headers.get("content-type"))
        except ClientDisconnect:
            LOGGER.info("client hung up while sending %s", request.url.path)
            return _error(400, "client disconnected", close=True)
        except (AccessDenied, InputError) as err:
            retry = getattr(err, "retry_after", None)
            headers = {"Retry-After": retry_after_header(retry)} if retry is not None else None
            LOGGER.info("refused %s: %d %s", request.url.path, err.status, err.message[:MESSAGE_CHARS])
            return _error(err.status, err.message, headers, close=not body_read)
        try:
            defended = await service.predictor.predict(x)
        except InferenceError:
            await run_in_threadpool(service.release, spent)
            return _error(500, "inference failed")
        answer = JSONResponse({"probabilities": defended.tolist(), "labels": defended.argmax(dim=1).tolist()}, headers=_usage_headers(spent))
        try:
            await run_in_threadpool(service.settle, spent, x, idempotency_key, digest, bytes(answer.body))
        except AccessDenied as err:
            return _error(err.status, err.message, {"Retry-After": retry_after_header(err.retry_after or 1.0)})
        return answer

    def openapi() -> dict[str, Any]:
        """FastAPI's schema, with the predict body's exact shape once the victim is loaded."""
        schema = FastAPI.openapi(app)
        if "service" in state:
            body = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
            body["schema"] = predict_body_schema(state["service"].card.input_shape, config.max_batch)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_environment() -> FastAPI:
    """App factory for uvicorn worker processes: the config is JSON in ``$STEALGUARD_SERVE_CONFIG``.

    Raises:
        KeyError: the variable is not set.
    """
    return create_app(ServeConfig.from_json(os.environ[CONFIG_ENV]))


def check_config(config: ServeConfig) -> None:
    """Fail fast, before uvicorn starts: load the victim, the key file, build the defense, open the store.

    Raises:
        FileNotFoundError, ValueError, TypeError: as :func:`create_app` would at start-up.
        StoreError: (a ValueError) the store cannot be opened, e.g. PostgreSQL unreachable.
    """
    _, card = load_victim(Path(config.victim))
    build_defense(
        config.defense, card=card, seed=config.seed, victim_dir=Path(config.victim), data_root=config.data_root,
        device=resolve_device(config.device),
    )
    if config.keys is not None:
        load_keys(config.keys)
    resolve_device(config.device)
    _open_store(config).close()


def serve(config: ServeConfig, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "info") -> None:
    """Run the service under uvicorn until interrupted (``workers`` processes share the databases).

    Raises:
        FileNotFoundError, ValueError, TypeError: a bad config (checked before uvicorn starts).
    """
    import uvicorn

    check_int("port", port, low=0, high=65535)
    check_int("workers", workers, low=1)
    check_config(config)
    os.environ[CONFIG_ENV] = config.to_json()
    files = raise_open_file_limit()
    connections = config.max_connections
    if files is not None and connections > files - FILE_RESERVE:
        connections = max(1, files - FILE_RESERVE)
        LOGGER.warning("max_connections lowered from %d to %d: the open-file limit is %d", config.max_connections, connections, files)
    uvicorn.run(
        "stealguard.serve.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        log_config=_log_config(log_level),
        limit_concurrency=connections,
        http="stealguard.serve.protocol:HeadDeadlineProtocol",
        timeout_keep_alive=config.header_timeout,
    )


def _log_config(log_level: str) -> dict[str, Any]:
    """uvicorn's logging config with the ``stealguard`` loggers on its default handler at ``log_level``."""
    from uvicorn.config import LOGGING_CONFIG

    config = json.loads(json.dumps(LOGGING_CONFIG))
    config["loggers"]["stealguard"] = {"handlers": ["default"], "level": log_level.upper(), "propagate": False}
    return config


def raise_open_file_limit() -> int | None:
    """Raise this process's soft open-file limit (``RLIMIT_NOFILE``) to its hard limit.

    Every connection holds a file descriptor; a soft limit of 256 or 1024 would let a few hundred
    stalled uploads starve ``accept`` (``/healthz`` included). Children (uvicorn workers) inherit it.

    Returns:
        the soft limit now in force, or None where the platform has no such limit.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return None if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target
