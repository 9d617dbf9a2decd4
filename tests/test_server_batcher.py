"""MicroBatcher: batch limits, deadlines, errors, abandoned jobs, and the loop staying free."""

import asyncio
import threading
import time

import pytest

from server_fake import FakeEngine, level_audio, run_server
from xlsr_live.client.stream import recognize
from xlsr_live.server.batcher import MicroBatcher


def run(coro):
    """Run a coroutine in a fresh loop."""
    return asyncio.run(coro)


def test_batches_respect_max_batch_and_return_each_result():
    """Ten jobs at once with max_batch 4 run as 4+4+2 and each caller gets its own result."""
    sizes = []

    def double(jobs):
        sizes.append(len(jobs))
        return [2 * job for job in jobs]

    async def main():
        batcher = MicroBatcher(double, max_batch=4, max_wait_ms=50)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        finally:
            await batcher.stop()

    assert run(main()) == [2 * i for i in range(10)]
    assert sizes == [4, 4, 2]


def test_batch_error_reaches_only_the_failing_job_and_batcher_goes_on():
    """A failing batch is rerun job by job: only the failing job's caller fails; the next batch works."""
    def flaky(jobs):
        if "bad" in jobs:
            raise RuntimeError("model failed")
        return list(jobs)

    async def main():
        batcher = MicroBatcher(flaky, max_batch=8, max_wait_ms=20)
        batcher.start()
        try:
            failed = await asyncio.gather(batcher.submit("bad"), batcher.submit("ok"), return_exceptions=True)
            return failed, await batcher.submit("later")
        finally:
            await batcher.stop()

    (bad, ok), later = run(main())
    assert isinstance(bad, RuntimeError) and ok == "ok" and later == "later"


def test_abandoned_jobs_are_not_run():
    """A job whose session went away before its batch ran is dropped from the batch."""
    ran = []
    running, release = threading.Event(), threading.Event()

    def record(jobs):
        ran.extend(jobs)
        running.set()
        release.wait(5)
        return list(jobs)

    async def main():
        batcher = MicroBatcher(record, max_batch=8, max_wait_ms=0)
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit("first"))
            await asyncio.to_thread(running.wait, 5)  # "first" is now running on the worker thread
            gone = asyncio.ensure_future(batcher.submit("gone"))
            await asyncio.sleep(0)
            gone.cancel()
            release.set()
            return await first, await batcher.submit("after")
        finally:
            await batcher.stop()

    assert run(main()) == ("first", "after")
    assert ran == ["first", "after"]


def test_event_loop_stays_free_during_a_forward_pass():
    """While a forward pass blocks the worker thread, another connection is still served (gets ready)."""
    running, release = threading.Event(), threading.Event()

    class BlockedEngine(FakeEngine):
        def run_jobs(self, jobs):
            running.set()
            assert release.wait(60), "the test never ended the forward pass"
            return super().run_jobs(jobs)

    async def client(server):
        stream = asyncio.ensure_future(recognize(server.url, [level_audio([1] * 2)]))
        try:
            assert await asyncio.to_thread(running.wait, 30), "no forward pass started"
            ready_while_blocked = []

            def on_message(message):  # its end needs the worker too: the pass ends once ready arrived
                if message["type"] == "ready":
                    ready_while_blocked.append(not release.is_set())
                    release.set()

            await asyncio.wait_for(recognize(server.url, [], on_message=on_message), 30)
        finally:
            release.set()
        await stream
        return ready_while_blocked

    assert run_server(BlockedEngine(), client) == [True]


@pytest.mark.parametrize("max_batch", [0, -1])
def test_bad_max_batch_is_refused(max_batch):
    """max_batch below 1 raises a ValueError naming it."""
    with pytest.raises(ValueError, match=f"max_batch={max_batch}"):
        MicroBatcher(list, max_batch=max_batch)


def test_two_workers_run_two_batches_at_once():
    """With workers=2 a second batch runs while the first is still blocked in the model."""
    gate, first_entered = threading.Event(), threading.Event()

    def model(jobs):
        if jobs == ["slow"]:
            first_entered.set()
            assert gate.wait(10), "the test never opened the gate"
        return [job.upper() for job in jobs]

    async def main():
        batcher = MicroBatcher(model, max_batch=1, max_wait_ms=0, workers=2)
        batcher.start()
        try:
            slow = asyncio.ensure_future(batcher.submit("slow"))
            await asyncio.to_thread(first_entered.wait, 10)
            fast = await asyncio.wait_for(batcher.submit("fast"), 10)  # the other worker serves it
            gate.set()
            return fast, await slow
        finally:
            gate.set()
            await batcher.stop()

    assert run(main()) == ("FAST", "SLOW")
    with pytest.raises(ValueError, match="workers=0"):
        MicroBatcher(lambda jobs: jobs, workers=0)


def test_stop_waits_for_batches_in_flight():
    """stop() lets a batch that is running finish and deliver its result."""
    entered = threading.Event()

    def model(jobs):
        entered.set()
        time.sleep(0.2)
        return list(jobs)

    async def main():
        batcher = MicroBatcher(model, max_batch=4, max_wait_ms=0, workers=2)
        batcher.start()
        job = asyncio.ensure_future(batcher.submit("x"))
        await asyncio.to_thread(entered.wait, 10)
        await batcher.stop()
        return await job

    assert run(main()) == "x"
