"""Micro-batching: requests waiting for the same model share one forward pass in a worker thread."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio.to_thread
import numpy as np


class MicroBatcher:
    """Runs a batch function (uint8 (N, 28, 28) -> (N, C), e.g. `Predictor.predict_logits`) on everything
    queued, one batch at a time.

    No waiting for a batch to fill: while one batch runs in a thread the next requests queue up,
    so batches grow with the load and a lone request pays no extra latency. One batch in flight
    per model keeps the event loop and the inference thread on separate cores.
    """

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], *, max_batch: int = 64) -> None:
        self._predict = predict
        self._max_batch = max_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[np.ndarray]]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def predict(self, x: np.ndarray) -> np.ndarray:
        """One image uint8 (28, 28) -> its row of the batch function's output (C,)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            # First call, or a new event loop (a test client's): start a worker on this loop.
            self._loop, self._queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._run(self._queue))
        assert self._queue is not None
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.put_nowait((x, future))
        return await future

    async def _run(self, queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[np.ndarray]]]) -> None:
        while True:
            items = [await queue.get()]
            while len(items) < self._max_batch and not queue.empty():
                items.append(queue.get_nowait())
            items = [(x, f) for x, f in items if not f.done()]  # drop requests whose client left
            if not items:
                continue
            batch = np.stack([x for x, _ in items])  # (B, 28, 28)
            try:
                probs = await anyio.to_thread.run_sync(self._predict, batch)  # (B, C)
            except asyncio.CancelledError:
                for _, f in items:
                    f.cancel()
                raise
            except Exception as exc:  # a model failure fails the requests of this batch, not the worker
                for _, f in items:
                    if not f.done():
                        f.set_exception(exc)
                continue
            for (_, f), p in zip(items, probs):
                if not f.done():
                    f.set_result(p)

    async def aclose(self) -> None:
        """Stop the worker (server shutdown)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, RuntimeError):
                pass
        self._task = None
