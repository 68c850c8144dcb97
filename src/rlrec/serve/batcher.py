"""Dynamic micro-batching: concurrent requests gathered into one forward pass.

Each request hands its queries to :meth:`MicroBatcher.submit` and awaits their results. One worker
task takes the first waiting request with every request queued behind it — those that arrived
while the previous pass ran — up to ``max_batch`` queries, optionally waits up to ``max_wait_s``
for more, and runs them through ``run`` in a single background thread (the model is used by one
thread at a time; the event loop keeps accepting requests while it computes). With no wait, a
request alone is scored at once and batches form by themselves under load. ``max_batch=1`` turns batching off: every request is its own pass.
A request larger than ``max_batch`` (the batch endpoint) is never split.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

Q = TypeVar("Q")
R = TypeVar("R")


class MicroBatcher(Generic[Q, R]):
    """Gathers queries of concurrent requests for ``run(queries) -> results`` (same length)."""

    def __init__(
        self,
        run: Callable[[list[Q]], list[R]],
        *,
        max_batch: int,
        max_wait_s: float,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError("max_batch must be ≥ 1 and max_wait_s ≥ 0")
        self._run = run
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self._on_batch = on_batch
        self._queue: asyncio.Queue[tuple[Sequence[Q], asyncio.Future[list[R]]]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlrec-model")
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._worker = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop the worker (requests still waiting are cancelled) and release the model thread."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        while not self._queue.empty():
            self._queue.get_nowait()[1].cancel()
        self._executor.shutdown(wait=True)

    async def submit(self, queries: Sequence[Q]) -> list[R]:
        """The results of ``queries``, computed with whatever else arrives meanwhile."""
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        await self._queue.put((queries, future))
        return await future

    async def _gather(self) -> list[tuple[Sequence[Q], asyncio.Future[list[R]]]]:
        """The next batch: the first waiting request, every one queued behind it (they arrived
        while the previous pass ran) and, with ``max_wait_s > 0``, those arriving within the wait."""
        first = await self._queue.get()
        batch, size = [first], len(first[0])
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), left)
                except asyncio.TimeoutError:
                    break
            batch.append(item)
            size += len(item[0])
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            live = [(q, f) for q, f in batch if not f.done()]  # a client may have gone away
            queries = [x for q, _ in live for x in q]
            if not queries:
                continue
            t0 = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self._run, queries)
            except Exception as exc:  # one failing pass fails its requests, not the server
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            if self._on_batch is not None:
                self._on_batch(len(queries), time.perf_counter() - t0)
            at = 0
            for q, future in live:
                if not future.done():
                    future.set_result(results[at : at + len(q)])
                at += len(q)
