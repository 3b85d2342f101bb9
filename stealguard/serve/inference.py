"""Batched, defended inference on a worker thread, awaited from the event loop.

:class:`Predictor` owns the victim and the defense. Requests are queued; one worker thread
takes every request waiting (up to ``max_batch`` inputs in all), runs the victim and the
defense once on the concatenated batch, and hands each request its rows. The event loop
never runs a forward pass, and concurrent small requests share one.

The clean posteriors exist only inside :meth:`Predictor._answer`; only the defended ones
leave it, and an inference failure is reported as :class:`InferenceError` without the
original message (which could quote values).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

import torch
from torch import Tensor, nn

from stealguard._checks import check_int
from stealguard.defenses.base import Defense

LOGGER = logging.getLogger("stealguard.serve")
_STOP = object()


class InferenceError(RuntimeError):
    """The victim or the defense failed on a batch (details withheld)."""


class Predictor:
    """Defended answers of ``model`` behind ``defense``, computed on one worker thread.

    Args:
        model: the victim, ``(N, *input_shape)`` pixels -> logits ``(N, K)``; put in eval mode.
        defense: applied to the victim's softmax.
        device: where model and defense run.
        max_batch: most inputs per forward pass, >= 1 (a larger request runs alone).

    Raises:
        ValueError: ``max_batch`` < 1.
    """

    def __init__(self, model: nn.Module, defense: Defense, *, device: torch.device, max_batch: int) -> None:
        self.model = model.to(device).eval()
        self.defense = defense
        self.device = device
        self.max_batch = check_int("max_batch", max_batch, low=1)
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="stealguard-inference", daemon=True)
        self._thread.start()

    def answer(self, x: Tensor) -> Tensor:
        """Defended probabilities of ``x``, computed on the calling thread (no queue).

        Shape:
            x: ``(B, *input_shape)`` float32; returns float32 ``(B, K)`` on the CPU.
        """
        return self._answer(x)

    async def predict(self, x: Tensor) -> Tensor:
        """Queue ``x`` for the worker thread and await its defended probabilities.

        Shape:
            x: ``(B, *input_shape)`` float32; returns float32 ``(B, K)`` on the CPU.

        Raises:
            InferenceError: the forward pass or the defense failed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Tensor] = loop.create_future()
        self._queue.put((x, future, loop))
        return await future

    def close(self) -> None:
        """Stop the worker thread after the queued requests."""
        self._queue.put(_STOP)
        self._thread.join()

    def _answer(self, x: Tensor) -> Tensor:
        chunk = x.to(self.device, torch.float32)
        with torch.no_grad():
            clean = torch.softmax(self.model(chunk).float(), dim=1)
        return self.defense(chunk, clean).detach().float().cpu()

    def _take(self, first: Any) -> tuple[list[Any], Any]:
        """Requests to run together with ``first``, and one left over for the next round (or None)."""
        items, size = [first], first[0].shape[0]
        while size < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items, None
            if item is _STOP or size + item[0].shape[0] > self.max_batch:
                return items, item
            items.append(item)
            size += item[0].shape[0]
        return items, None

    def _loop(self) -> None:
        pending = None
        while True:
            first = pending if pending is not None else self._queue.get()
            pending = None
            if first is _STOP:
                return
            items, pending = self._take(first)
            try:
                answers = self._answer(torch.cat([x for x, _, _ in items])) if len(items) > 1 else self._answer(items[0][0])
                parts = answers.split([x.shape[0] for x, _, _ in items])
                results: list[Any] = list(parts)
            except Exception as err:  # noqa: BLE001 - any failure becomes one withheld error per request
                LOGGER.error("inference failed on a batch of %d requests: %s", len(items), type(err).__name__)
                results = [InferenceError("inference failed")] * len(items)
            for (_, future, loop), result in zip(items, results):
                loop.call_soon_threadsafe(_settle, future, result)


def _settle(future: asyncio.Future[Tensor], result: Any) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
