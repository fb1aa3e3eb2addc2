"""Request batching for ``infomtl serve``: concurrent requests answered by one forward pass.

The rule. A request waits in a bounded first-in-first-out queue. One worker takes the
oldest request and every later queued request of the same kind (the same ``tasks``, and
pairs given or not), in arrival order, while their texts add up to at most ``max_batch``
(the oldest is taken whatever its size, so a request is never split). Before it takes
them it waits until the oldest request has waited ``batch_wait_ms`` or ``max_batch``
texts of its kind are queued, whichever comes first. The texts of the batch go to one
``run(texts, pairs, tasks)`` call (:meth:`infomtl.inference.predict.Predictor.predict`) in
a worker thread, and each request gets its own rows back, in its own order. One batch
runs at a time (the tokenizer is not thread-safe, and the cores are better used by one
large forward than by two small ones); requests that arrive meanwhile queue up and form
the next batch, so batches grow with the load while an idle server answers a lone
request after at most ``batch_wait_ms``. ``max_batch=1, batch_wait_ms=0`` is the
one-request-at-a-time server.

Batching does not change a text's prediction beyond float rounding: rows do not interact
in the encoder (padding is masked), and ``predict`` keeps each text's row.

Refusals: a request that finds ``max_queue`` requests waiting gets :class:`QueueFull`
(HTTP 503) with a ``Retry-After`` estimate (the queued texts over the recent texts per
second, 1 to 60 s); one not answered ``request_timeout_s`` after it was queued gets
:class:`RequestTimeout` (HTTP 504) and is dropped from the queue, or, when its batch is
already running, its rows are discarded.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from infomtl.errors import ConfigError

log = logging.getLogger(__name__)

#: ``run(texts, pairs, tasks)`` -> one prediction per text, in order.
RunFn = Callable[[list[str], "list[str] | None", "list[str] | None"], list[Any]]


@dataclass(frozen=True)
class BatchSettings:
    """How ``infomtl serve`` batches and queues requests (each a flag of the command)."""

    max_batch: int = 64
    batch_wait_ms: float = 5.0
    max_queue: int = 256
    request_timeout_s: float = 30.0

    def validate(self) -> BatchSettings:
        """Raise :class:`ConfigError` naming the flag of a setting out of range."""
        for flag, value in (("--max-batch", self.max_batch), ("--max-queue", self.max_queue)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{flag} must be an integer >= 1, got {value!r}")
        if not _number(self.batch_wait_ms) or self.batch_wait_ms < 0:
            raise ConfigError(f"--batch-wait-ms must be a number >= 0, got {self.batch_wait_ms!r}")
        if not _number(self.request_timeout_s) or self.request_timeout_s <= 0:
            raise ConfigError(f"--request-timeout must be a number of seconds > 0, got {self.request_timeout_s!r}")
        return self


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class QueueFull(Exception):
    """The queue holds ``max_queue`` requests; ``retry_after``: seconds to wait (>= 1)."""

    def __init__(self, waiting: int, retry_after: int) -> None:
        super().__init__(f"{waiting} requests waiting (--max-queue); retry in {retry_after} s")
        self.retry_after = retry_after


class RequestTimeout(Exception):
    """A request not answered within ``request_timeout_s``."""


@dataclass
class _Job:
    texts: list[str]
    pairs: list[str] | None
    tasks: tuple[str, ...] | None
    future: asyncio.Future
    arrived: float

    @property
    def kind(self) -> tuple[tuple[str, ...] | None, bool]:
        return self.tasks, self.pairs is not None


@dataclass
class Stats:
    """Counters since the server started (``GET /stats``)."""

    requests: int = 0
    texts: int = 0
    batches: int = 0
    largest_batch: int = 0
    refused: int = 0
    timed_out: int = 0
    failed: int = 0
    queued: int = 0
    busy_ms: int = 0  # milliseconds spent inside ``run`` (the forward passes), all batches


class Batcher:
    """Batches concurrent :meth:`submit` calls into ``run`` calls (see the module docstring).

    Create it, :meth:`start` it inside the running event loop, :meth:`stop` it at shutdown.
    """

    def __init__(self, run: RunFn, settings: BatchSettings | None = None) -> None:
        self.run = run
        self.settings = (settings or BatchSettings()).validate()
        self._queue: deque[_Job] = deque()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="infomtl-predict")
        self._worker: asyncio.Task | None = None
        self._rate: float | None = None  # texts per second of recent batches
        self._stats = Stats()
        self._busy = 0.0  # seconds inside ``run``

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        """Stop the worker; requests still queued (none after a graceful shutdown) are cancelled."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        for job in self._queue:
            job.future.cancel()
        self._queue.clear()
        self._executor.shutdown(wait=True)

    def stats(self) -> dict[str, int]:
        self._drop_cancelled()
        self._stats.queued = len(self._queue)
        self._stats.busy_ms = round(1000 * self._busy)
        return asdict(self._stats)

    async def submit(self, texts: Sequence[str], pairs: Sequence[str] | None = None,
                     tasks: Sequence[str] | None = None) -> list[Any]:
        """The predictions of ``texts`` once their batch has run.

        Raises:
            QueueFull: ``max_queue`` requests are waiting.
            RequestTimeout: no answer within ``request_timeout_s``.
            Exception: whatever ``run`` raised for the batch.
        """
        self._drop_cancelled()
        if len(self._queue) >= self.settings.max_queue:
            self._stats.refused += 1
            raise QueueFull(len(self._queue), self._retry_after())
        loop = asyncio.get_running_loop()
        job = _Job(list(texts), None if pairs is None else list(pairs), None if tasks is None else tuple(tasks),
                   loop.create_future(), loop.time())
        self._queue.append(job)
        self._arrived.set()
        try:
            return await asyncio.wait_for(job.future, self.settings.request_timeout_s)
        except asyncio.TimeoutError:  # the job's future is cancelled: dropped, or its rows discarded
            self._stats.timed_out += 1
            raise RequestTimeout(f"no answer within {self.settings.request_timeout_s:g} s "
                                 "(--request-timeout)") from None

    # -- the worker ------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            first = await self._oldest()
            await self._fill(first)
            batch = self._take(first)
            if batch:
                await self._answer(batch)

    async def _oldest(self) -> _Job:
        while True:
            self._drop_cancelled()
            if self._queue:
                return self._queue[0]
            self._arrived.clear()
            await self._arrived.wait()

    async def _fill(self, first: _Job) -> None:
        """Wait until ``first`` has waited ``batch_wait_ms`` or ``max_batch`` texts of its kind are queued."""
        loop = asyncio.get_running_loop()
        deadline = first.arrived + self.settings.batch_wait_ms / 1000
        while self._queued_texts(first.kind) < self.settings.max_batch and not first.future.done():
            left = deadline - loop.time()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                return

    def _queued_texts(self, kind: tuple[tuple[str, ...] | None, bool]) -> int:
        return sum(len(j.texts) for j in self._queue if j.kind == kind and not j.future.done())

    def _take(self, first: _Job) -> list[_Job]:
        """Remove and return the batch led by the oldest live request (see the module docstring)."""
        self._drop_cancelled()
        if not self._queue:
            return []
        first = self._queue[0]
        batch: list[_Job] = []
        rest: deque[_Job] = deque()
        total = 0
        for job in self._queue:
            if job.kind == first.kind and (not batch or total + len(job.texts) <= self.settings.max_batch):
                batch.append(job)
                total += len(job.texts)
            else:
                rest.append(job)
        self._queue = rest
        return batch

    async def _answer(self, batch: list[_Job]) -> None:
        texts = [t for job in batch for t in job.texts]
        pairs = [p for job in batch for p in (job.pairs or [])] if batch[0].pairs is not None else None
        tasks = None if batch[0].tasks is None else list(batch[0].tasks)
        started = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._executor, self.run, texts, pairs, tasks)
        except Exception as exc:  # every request of the batch gets the error
            self._busy += time.perf_counter() - started
            self._stats.failed += len(batch)
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        elapsed = max(time.perf_counter() - started, 1e-6)
        self._busy += elapsed
        rate = len(texts) / elapsed
        self._rate = rate if self._rate is None else 0.8 * self._rate + 0.2 * rate
        self._stats.requests += len(batch)
        self._stats.texts += len(texts)
        self._stats.batches += 1
        self._stats.largest_batch = max(self._stats.largest_batch, len(texts))
        log.debug("batch of %d requests, %d texts in %.1f ms", len(batch), len(texts), elapsed * 1000)
        start = 0
        for job in batch:
            rows = results[start : start + len(job.texts)]
            start += len(job.texts)
            if not job.future.done():
                job.future.set_result(rows)

    def _drop_cancelled(self) -> None:
        if any(job.future.done() for job in self._queue):
            self._queue = deque(job for job in self._queue if not job.future.done())

    def _retry_after(self) -> int:
        """Seconds until the queue has likely drained: queued texts over recent texts/s, 1 to 60."""
        if not self._rate:
            return 1
        queued = sum(len(j.texts) for j in self._queue)
        return int(min(60, max(1, math.ceil(queued / self._rate))))
