"""Micro-batching: windows ready in any session run together in one forward pass off the loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import time
from typing import Any, Callable, Optional, Sequence

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Pending:
    job: Any
    future: asyncio.Future
    queued_at: float


@dataclasses.dataclass(frozen=True)
class BatchStats:
    """What one batch did, for metrics."""

    size: int
    compute_seconds: float


class MicroBatcher:
    """Gathers jobs (up to `max_batch`, waiting at most `max_wait_ms` after the first) and runs
    them with `run_batch` on a worker thread; each `submit` gets back its own result.

    `workers` > 1 keeps that many batches in flight on as many threads (on a CPU, give each
    worker its share of the cores with torch.set_num_threads: measured on 2 cores, 2 workers x 1
    thread held 48 demo-model streams where 1 worker x 2 threads held 32, docs/capacity.md).
    Every session has at most one job in flight, so its results never overtake each other.

    With `enabled=False` every job runs alone, as soon as the worker is free (for benchmarks).
    A session that stops submitting (a stalled client) never holds a batch back: nothing waits
    for a particular session, only for the deadline.
    """

    def __init__(self, run_batch: Callable[[Sequence[Any]], list], max_batch: int = 16,
                 max_wait_ms: float = 10.0, enabled: bool = True,
                 on_batch: Optional[Callable[[BatchStats], None]] = None, workers: int = 1):
        if max_batch < 1:
            raise ValueError(f"max_batch={max_batch} must be at least 1")
        if workers < 1:
            raise ValueError(f"workers={workers} must be at least 1")
        self.run_batch = run_batch
        self.max_batch = max_batch if enabled else 1
        self.max_wait = max_wait_ms / 1000.0 if enabled else 0.0
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.workers = workers
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="xlsr-batch")
        self._task: Optional[asyncio.Task] = None
        self._in_flight: set[asyncio.Task] = set()
        self.recent_wait = 0.0  # seconds; moving average of the oldest window's wait per batch

    @property
    def queue_depth(self) -> int:
        """Jobs waiting for a batch."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the gathering task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Stop gathering, let batches in flight finish, fail what is still queued, release the threads."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._in_flight:
            await asyncio.wait(set(self._in_flight))
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the batcher stopped"))
        self._executor.shutdown(wait=True)

    async def submit(self, job: Any) -> Any:
        """Queue one job and wait for its result (its row of the batch output)."""
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(job, future, time.monotonic()))
        return await future

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn()` on the worker thread (model work that is not batched, e.g. conv features)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _gather(self) -> list[_Pending]:
        """Wait for a first job, then take more until the batch is full or its deadline passed."""
        batch = [await self._queue.get()]
        deadline = batch[0].queued_at + self.max_wait
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return [p for p in batch if not p.future.done()]  # drop jobs of sessions that went away

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.workers)
        while True:
            await slots.acquire()
            try:
                batch = await self._gather()
            except BaseException:
                slots.release()
                raise
            if not batch:
                slots.release()
                continue
            task = loop.create_task(self._process(loop, batch))
            self._in_flight.add(task)
            task.add_done_callback(lambda done: (self._in_flight.discard(done), slots.release()))

    def _observe_wait(self, batch: list[_Pending]) -> None:
        """Update `recent_wait`: moving average (about the last 4 batches) of the oldest job's wait."""
        wait = time.monotonic() - min(p.queued_at for p in batch)
        self.recent_wait = 0.75 * self.recent_wait + 0.25 * wait

    async def _process(self, loop, batch: list[_Pending]) -> None:
        """Run one batch and hand out its results. If it fails, its jobs run again one at a time,
        so that only the sessions whose window fails get the exception."""
        self._observe_wait(batch)
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self.run_batch, [p.job for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} jobs")
        except Exception as exc:  # noqa: BLE001 - every waiting session must hear about it
            if len(batch) == 1:
                log.error("a window failed: %r", exc)
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            log.warning("batch of %d windows failed (%r): running them one at a time", len(batch), exc)
            for pending in batch:
                await self._process(loop, [pending])
            return
        if self.on_batch is not None:
            self.on_batch(BatchStats(len(batch), time.perf_counter() - started))
        for pending, result in zip(batch, results):
            if not pending.future.done():
                pending.future.set_result(result)
