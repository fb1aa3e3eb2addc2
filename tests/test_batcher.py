"""The request batcher of ``infomtl serve``: merging, kinds, the queue bound, timeouts, errors."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest

from infomtl.errors import ConfigError, InfomtlError
from infomtl.inference.batcher import Batcher, BatchSettings, QueueFull, RequestTimeout


class Recorder:
    """A ``run`` that labels each text with its call number and records the calls; while
    ``gate`` is clear, a call blocks (in the batcher's worker thread) until it is set."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[str] | None, list[str] | None]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()

    def __call__(self, texts, pairs, tasks):
        self.calls.append((list(texts), pairs, tasks))
        self.started.set()
        self.gate.wait(10)
        return [f"{len(self.calls)}:{t}" for t in texts]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def started(settings: BatchSettings, recorder: Recorder) -> Batcher:
    batcher = Batcher(recorder, settings)
    batcher.start()
    return batcher


def test_concurrent_requests_share_one_call_in_arrival_order() -> None:
    async def main():
        rec = Recorder()
        batcher = await started(BatchSettings(max_batch=10, batch_wait_ms=300), rec)
        answers = await asyncio.gather(batcher.submit(["a", "b"]), batcher.submit(["c"]),
                                       batcher.submit(["d", "e", "f"]))
        stats = batcher.stats()
        await batcher.stop()
        return rec, answers, stats

    rec, answers, stats = run(main())
    assert rec.calls == [(["a", "b", "c", "d", "e", "f"], None, None)]
    assert answers == [["1:a", "1:b"], ["1:c"], ["1:d", "1:e", "1:f"]]
    busy_ms = stats.pop("busy_ms")
    assert stats == {"requests": 3, "texts": 6, "batches": 1, "largest_batch": 6, "refused": 0,
                     "timed_out": 0, "failed": 0, "queued": 0}
    assert 0 <= busy_ms < 300  # the recorder's call is instant; the 300 ms of waiting are not counted


def test_max_batch_counts_texts_and_never_splits_a_request() -> None:
    async def main():
        rec = Recorder()
        batcher = await started(BatchSettings(max_batch=3, batch_wait_ms=200), rec)
        answers = await asyncio.gather(batcher.submit(["a", "b"]), batcher.submit(["c", "d"]),
                                       batcher.submit(["e"]), batcher.submit(["f", "g", "h", "i"]))
        await batcher.stop()
        return rec, answers

    rec, answers = run(main())
    # the oldest leads; later ones join while the texts fit in 3 (e skips past c, d); a
    # request over max_batch runs alone, whole
    assert [c[0] for c in rec.calls] == [["a", "b", "e"], ["c", "d"], ["f", "g", "h", "i"]]
    assert answers == [["1:a", "1:b"], ["2:c", "2:d"], ["1:e"], ["3:f", "3:g", "3:h", "3:i"]]


def test_requests_of_other_tasks_or_with_pairs_go_to_their_own_calls() -> None:
    async def main():
        rec = Recorder()
        batcher = await started(BatchSettings(max_batch=10, batch_wait_ms=200), rec)
        await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"], tasks=["topic"]),
                             batcher.submit(["c"], pairs=["p"]), batcher.submit(["d"]),
                             batcher.submit(["e"], pairs=["q"], tasks=["topic"]),
                             batcher.submit(["f"], tasks=["topic"]), batcher.submit(["g"], pairs=["r"]))
        await batcher.stop()
        return rec

    rec = run(main())
    assert rec.calls == [(["a", "d"], None, None), (["b", "f"], None, ["topic"]),
                         (["c", "g"], ["p", "r"], None), (["e"], ["q"], ["topic"])]


def test_one_request_at_a_time_with_max_batch_1() -> None:
    async def main():
        rec = Recorder()
        batcher = await started(BatchSettings(max_batch=1, batch_wait_ms=0), rec)
        answers = await asyncio.gather(*(batcher.submit([t]) for t in "abcd"))
        await batcher.stop()
        return rec, answers

    rec, answers = run(main())
    assert [c[0] for c in rec.calls] == [["a"], ["b"], ["c"], ["d"]]
    assert answers == [["1:a"], ["2:b"], ["3:c"], ["4:d"]]


def test_a_full_queue_refuses_with_a_retry_estimate() -> None:
    async def main():
        rec = Recorder()
        batcher = await started(BatchSettings(max_batch=1, batch_wait_ms=0, max_queue=2), rec)
        rec.gate.clear()
        first = asyncio.ensure_future(batcher.submit(["a"]))  # taken by the worker, blocks in run
        while not rec.started.is_set():
            await asyncio.sleep(0.01)
        waiting = [asyncio.ensure_future(batcher.submit([t])) for t in "bc"]
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull) as refused:
            await batcher.submit(["d"])
        queued = batcher.stats()["queued"]
        rec.gate.set()
        answers = await asyncio.gather(first, *waiting)
        await batcher.stop()
        return refused.value, queued, answers, batcher.stats()

    refused, queued, answers, stats = run(main())
    assert queued == 2 and refused.retry_after == 1  # no batch finished yet: no rate to estimate from
    assert "2 requests waiting (--max-queue)" in str(refused)
    assert answers == [["1:a"], ["2:b"], ["3:c"]]
    assert (stats["refused"], stats["requests"]) == (1, 3)


def test_retry_after_follows_the_measured_rate() -> None:
    batcher = Batcher(lambda texts, pairs, tasks: texts, BatchSettings())
    batcher._rate = 10.0  # texts per second
    for n in (3, 40):
        batcher._queue.append(SimpleNamespace(texts=["x"] * n))
    assert batcher._retry_after() == 5  # 43 texts at 10/s -> ceil(4.3)
    batcher._rate = 0.1
    assert batcher._retry_after() == 60  # capped


def test_a_timed_out_request_is_dropped_from_the_queue() -> None:
    async def main():
        rec = Recorder()
        batcher = await started(BatchSettings(max_batch=1, batch_wait_ms=0, request_timeout_s=0.2), rec)
        rec.gate.clear()
        first = asyncio.ensure_future(batcher.submit(["a"]))
        while not rec.started.is_set():
            await asyncio.sleep(0.01)
        with pytest.raises(RequestTimeout, match=r"no answer within 0.2 s \(--request-timeout\)"):
            await batcher.submit(["b"])  # queued behind the blocked call, then timed out
        with pytest.raises(RequestTimeout):
            await first  # its call is running: the rows are discarded when it ends
        rec.gate.set()
        again = await batcher.submit(["c"])
        stats = batcher.stats()
        await batcher.stop()
        return rec, again, stats

    rec, again, stats = run(main())
    assert [c[0] for c in rec.calls] == [["a"], ["c"]]  # "b" never ran
    assert again == ["2:c"]
    assert stats["timed_out"] == 2 and stats["queued"] == 0


def test_an_error_reaches_every_request_of_the_batch_and_the_worker_goes_on() -> None:
    calls = []

    def flaky(texts, pairs, tasks):
        calls.append(list(texts))
        if "bad" in texts:
            raise InfomtlError("task x was trained on text pairs")
        return [t.upper() for t in texts]

    async def main():
        batcher = Batcher(flaky, BatchSettings(max_batch=8, batch_wait_ms=200))
        batcher.start()
        got = await asyncio.gather(batcher.submit(["ok"]), batcher.submit(["bad"]), return_exceptions=True)
        after = await batcher.submit(["fine"])
        stats = batcher.stats()
        await batcher.stop()
        return got, after, stats

    got, after, stats = run(main())
    assert [type(g) for g in got] == [InfomtlError, InfomtlError]
    assert after == ["FINE"] and calls == [["ok", "bad"], ["fine"]]
    assert stats["failed"] == 2 and stats["requests"] == 1


def test_a_lone_request_waits_at_most_batch_wait() -> None:
    async def main():
        loop = asyncio.get_running_loop()
        batcher = Batcher(lambda texts, pairs, tasks: texts, BatchSettings(batch_wait_ms=100))
        batcher.start()
        start = loop.time()
        await batcher.submit(["a"])
        waited = loop.time() - start
        await batcher.stop()
        return waited

    assert 0.09 <= run(main()) < 5


@pytest.mark.parametrize(("settings", "words"), [
    (BatchSettings(max_batch=0), "--max-batch must be an integer >= 1, got 0"),
    (BatchSettings(max_queue=True), "--max-queue must be an integer >= 1, got True"),
    (BatchSettings(batch_wait_ms=-1), "--batch-wait-ms must be a number >= 0, got -1"),
    (BatchSettings(batch_wait_ms=float("nan")), "--batch-wait-ms must be a number >= 0"),
    (BatchSettings(request_timeout_s=0), "--request-timeout must be a number of seconds > 0, got 0"),
])
def test_settings_out_of_range_name_their_flag(settings, words) -> None:
    with pytest.raises(ConfigError) as err:
        settings.validate()
    assert words in str(err.value)


def test_busy_ms_counts_the_time_inside_run_only() -> None:
    """``busy_ms`` adds up the calls' durations (here 2 x 80 ms), not the waits between them."""

    def slow(texts, pairs, tasks):
        time.sleep(0.08)
        return list(texts)

    async def main():
        batcher = Batcher(slow, BatchSettings(max_batch=1, batch_wait_ms=0))
        batcher.start()
        await batcher.submit(["a"])
        await asyncio.sleep(0.2)  # idle: not counted
        await batcher.submit(["b"])
        stats = batcher.stats()
        await batcher.stop()
        return stats

    stats = run(main())
    assert stats["batches"] == 2
    assert 160 <= stats["busy_ms"] < 300
