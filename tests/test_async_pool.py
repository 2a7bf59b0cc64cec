"""The asyncio pool: the threaded pool's semantics (docs/semantics.md) from an event loop, with no thread per
waiting caller and a loop that is never blocked. Each test runs its own loop with ``asyncio.run``."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

import leanworker as lw
from conftest import FAST, FAULTS, MATHLIB, THROUGHPUT, wait_for
from unreleased import warned

T = TypeVar("T")
ROWS = lw.SessionKey(THROUGHPUT)
OTHER = lw.SessionKey(THROUGHPUT, imports=("Other",))
FAULTY = lw.SessionKey(FAULTS)


# Cancels here must be cooperative (the worker stays warm): a grace a loaded machine always meets.
PATIENT = dataclasses.replace(FAST, cancel_grace=5.0)


def config(**overrides: Any) -> lw.PoolConfig:
    settings: dict[str, Any] = {"max_workers": 2, "queue_wait_timeout": 20.0, "worker": PATIENT,
                                "memory_sample_interval": 0.1}
    settings.update(overrides)
    return lw.PoolConfig(**settings)


def run(test: Callable[[], Awaitable[T]], loop: str = "asyncio") -> T:
    """Run ``test`` on a fresh event loop: asyncio's own, or uvloop's."""
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        result: T = uvloop.run(asyncio.wait_for(test(), 50))
        return result
    return asyncio.run(asyncio.wait_for(test(), 50))


# The cancellation rules, the queue and the run are checked on both loops; uvloop is in the test extra.
LOOPS = pytest.mark.parametrize("loop", ["asyncio", "uvloop"])


def outcomes(tracer: lw.Tracer) -> list[str]:
    """The outcome of every admitted request that ended (not the handshake's), as the runtime recorded it."""
    events = tracer.events()
    admitted = {(e.actor, e.generation, e.request_id) for e in events if e.kind == "request_admitted"}
    return [e.fields["outcome"] for e in events
            if e.kind in ("request_done", "request_failed") and (e.actor, e.generation, e.request_id) in admitted]


# -- the same results as the threaded pool ------------------------------------------------------------------------


def test_call_stream_metadata_and_doctor_give_what_the_threaded_lease_gives() -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config()) as pool:
            async with pool.lease(ROWS) as lease:
                assert isinstance(lease, lw.AsyncLease) and lease.valid
                assert await lease.call("echo", {"x": [1, 2]}) == {"x": [1, 2]}
                async with lease.stream("rows", {"count": 1000, "payload_bytes": 4}) as stream:
                    rows = [row async for row in stream]
                assert [r.seq for r in rows] == list(range(1000)) and rows[0].stream == "rows"
                assert isinstance(rows[0], lw.Row) and stream.committed and stream.outcome == "ok"
                assert stream.summary is not None and stream.summary.total_rows == 1000
                assert stream.summary.metadata == {"count": 1000, "payload_bytes": 4}
                assert "echo" in (await lease.metadata()).commands
                assert (await lease.doctor()).checks
            assert not lease.valid
            snapshot = pool.snapshot()
            assert snapshot.requests_ok == 4 and snapshot.rows_delivered == 1000 and snapshot.leases == 0
    run(main)


def test_a_failed_stream_yields_the_rows_that_arrived_then_raises_the_typed_error() -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config()) as pool:
            async with pool.lease(FAULTY) as lease:
                stream = lease.stream("crash", {"after_rows": 5, "how": "signal"})
                seen = []
                with pytest.raises(lw.WorkerCrashed):
                    async for row in stream:
                        seen.append(row.seq)
                assert seen == [0, 1, 2, 3, 4]
                assert not stream.committed and stream.summary is None and stream.outcome == "crashed"
                with pytest.raises(lw.StaleLease):  # its worker generation has ended
                    await lease.call("echo", 1)
            async with pool.lease(FAULTY) as lease:  # a fresh worker
                with pytest.raises(lw.CommandError):
                    await lease.call("raise")
                assert await lease.call("echo", 2) == 2  # a command error keeps the worker warm
    run(main)


def test_a_released_lease_is_stale_and_release_is_idempotent() -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config()) as pool:
            lease = await pool.lease(ROWS)
            await lease.release()
            await lease.release()
            with pytest.raises(lw.StaleLease):
                await lease.call("echo")
            with pytest.raises(lw.StaleLease):
                await lease.stream("rows", {"count": 1}).collect()
            assert pool.snapshot().leases == 0
    run(main)


# -- cancellation ---------------------------------------------------------------------------------------------


@LOOPS
def test_cancelling_the_task_awaiting_a_call_cancels_the_request_and_keeps_the_worker_warm(loop: str) -> None:
    tracer = lw.Tracer()

    async def main() -> None:
        async with lw.AsyncWorkerPool(config(trace=tracer)) as pool:
            async with pool.lease(FAULTY) as lease:
                task = asyncio.create_task(lease.call("hang"))
                await asyncio.sleep(0.3)
                task.cancel()
                # at once: the next command waits for the cancelled request's end, then runs on the same worker
                assert await lease.call("echo", "after") == "after"
                assert lease.valid
                with pytest.raises(asyncio.CancelledError):
                    await task
            snapshot = pool.snapshot()
            assert snapshot.restarts == {} and snapshot.sessions_opened == 1
    run(main, loop)
    assert outcomes(tracer) == ["cancelled", "ok"]


@LOOPS
def test_cancelling_the_task_iterating_a_stream_cancels_the_request_cooperatively(loop: str) -> None:
    tracer = lw.Tracer()

    async def main() -> None:
        async with lw.AsyncWorkerPool(config(trace=tracer)) as pool:
            async with pool.lease(ROWS) as lease:
                seen = 0

                async def consume() -> None:
                    nonlocal seen
                    async for _ in lease.stream("rows", {"count": 10_000_000, "payload_bytes": 8}):
                        seen += 1

                task = asyncio.create_task(consume())
                while seen < 1000:
                    await asyncio.sleep(0.01)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                rows = await lease.stream("rows", {"count": 10, "payload_bytes": 1}).collect()
                assert len(rows) == 10
            assert pool.snapshot().restarts == {}
    run(main, loop)
    assert outcomes(tracer) == ["cancelled", "ok"]


def test_two_commands_at_once_on_one_lease_give_worker_busy_as_in_the_threaded_lease() -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config()) as pool:
            async with pool.lease(FAULTY) as lease:
                first = asyncio.create_task(lease.call("hang"))
                await asyncio.sleep(0.2)
                with pytest.raises(lw.WorkerBusy):
                    await lease.call("echo", 1)
                first.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await first
            assert pool.snapshot().restarts == {}
    run(main)


def test_stream_cancel_is_a_plain_call_and_iteration_then_ends_quietly() -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config()) as pool:
            async with pool.lease(FAULTY) as lease:
                stream = lease.stream("hang", {"after_rows": 3})
                rows = []
                async for row in stream:
                    rows.append(row)
                    if len(rows) == 3:
                        assert stream.cancel() is None  # returns at once
                assert stream.outcome == "cancelled" and not stream.committed and stream.summary is None
                assert await lease.call("echo", 1) == 1
            assert pool.snapshot().restarts == {}
    run(main)


def test_leaving_the_stream_block_early_cancels_and_waits_so_the_worker_is_free() -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config()) as pool:
            async with pool.lease(ROWS) as lease:
                async with lease.stream("rows", {"count": 10_000_000}) as stream:
                    async for row in stream:
                        if row.seq == 100:
                            break
                assert stream.done and stream.outcome == "cancelled"
                assert await lease.call("echo", 7) == 7
    run(main)


@LOOPS
def test_a_task_cancelled_while_queued_leaves_the_queue_and_never_receives_a_lease(loop: str) -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config(max_workers=1)) as pool:
            holder = await pool.lease(ROWS)
            waiters = [asyncio.create_task(pool.lease(ROWS).acquire()) for _ in range(3)]
            await asyncio.sleep(0.2)
            assert pool.snapshot().queue_depth == 3
            waiters[0].cancel()
            waiters[2].cancel()
            await asyncio.gather(*waiters[::2], return_exceptions=True)
            assert pool.snapshot().queue_depth == 1
            await holder.release()
            second = await asyncio.wait_for(waiters[1], 10)  # the one still waiting is served
            assert second.valid
            snapshot = pool.snapshot()
            assert snapshot.leases == 1 and snapshot.queue_depth == 0
            await second.release()
            assert pool.snapshot().leases == 0
    run(main, loop)


def test_the_queue_timeout_gives_queue_timeout_and_leaves_no_claim() -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config(max_workers=1)) as pool:
            async with pool.lease(ROWS):
                with pytest.raises(lw.QueueTimeout):
                    async with pool.lease(ROWS, timeout=0.2):
                        pass
                assert pool.snapshot().queue_depth == 0
            async with pool.lease(ROWS, timeout=5) as lease:
                assert await lease.call("echo", 1) == 1
    run(main)


def test_release_while_a_stream_runs_in_another_task_cancels_it_and_waits_for_its_end() -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config(max_workers=1)) as pool:
            lease = await pool.lease(ROWS)
            stream = lease.stream("rows", {"count": 10_000_000})

            async def consume() -> None:
                async for _ in stream:
                    await asyncio.sleep(0.001)

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.3)
            await lease.release()
            assert stream.done and stream.outcome == "cancelled"
            with pytest.raises(lw.Cancelled):  # as in the threaded pool: cancelled by the lease's holder
                await asyncio.wait_for(task, 10)
            async with pool.lease(ROWS) as again:  # the worker is free and warm
                assert await again.call("echo", 3) == 3
            assert pool.snapshot().restarts == {}
    run(main)


def test_a_lease_collected_unreleased_returns_its_worker_with_a_resource_warning() -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config(max_workers=1)) as pool:
            lease = await pool.lease(ROWS)
            await lease.call("echo")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                del lease
                assert wait_for(lambda: warned(caught))  # collected whenever it comes (unreleased.py)
            async with pool.lease(ROWS, timeout=5) as again:
                assert await again.call("echo", 1) == 1
    run(main)


# -- no thread per waiter, a loop that is never blocked -------------------------------------------------------


@LOOPS
def test_a_thousand_tasks_waiting_on_two_workers_add_no_threads(loop: str) -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config(queue_wait_timeout=60.0)) as pool:
            async with pool.lease(ROWS) as lease:  # both workers started and warm
                async with pool.lease(ROWS) as other:
                    await lease.call("echo")
                    await other.call("echo")
                    before = threading.active_count()

                    async def one(i: int) -> Any:
                        async with pool.lease(ROWS) as mine:
                            return await mine.call("echo", i)

                    tasks = [asyncio.create_task(one(i)) for i in range(1000)]
                    while pool.snapshot().queue_depth < 1000:
                        await asyncio.sleep(0.05)
                    assert threading.active_count() <= before
            assert sorted(await asyncio.gather(*tasks)) == list(range(1000))
            assert threading.active_count() <= before
            assert pool.snapshot().sessions_opened == 2
    run(main, loop)


def test_the_loop_keeps_ticking_while_rows_stream_and_a_worker_crashes() -> None:
    """A generous bound: the measured lag (bench/async_loop_lag.py) is a few milliseconds."""
    lags: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            start = time.monotonic()
            await asyncio.sleep(0.005)
            lags.append(time.monotonic() - start - 0.005)

    async def main() -> None:
        async with lw.AsyncWorkerPool(config()) as pool:
            stop = asyncio.Event()
            tick = asyncio.create_task(ticker(stop))
            async with pool.lease(ROWS) as lease:
                count = 0
                async for _ in lease.stream("rows", {"count": 100_000, "payload_bytes": 8}):
                    count += 1
                assert count == 100_000
            async with pool.lease(FAULTY) as lease:
                with pytest.raises(lw.WorkerCrashed):
                    await lease.call("crash", {"how": "signal"})
            async with pool.lease(FAULTY) as lease:
                assert await lease.call("echo", 1) == 1
            stop.set()
            await tick
    run(main)
    lags.sort()
    assert len(lags) > 20
    assert lags[int(len(lags) * 0.99)] < 0.5, lags[-5:]


def test_a_slow_consumer_holds_the_worker_back_instead_of_buffering_everything() -> None:
    small = dataclasses.replace(PATIENT, buffer_rows=64)

    async def main() -> None:
        async with lw.AsyncWorkerPool(config(worker=small)) as pool:
            async with pool.lease(ROWS) as lease:
                count = 0
                async for _ in lease.stream("rows", {"count": 5000, "payload_bytes": 100}):
                    count += 1
                    if count % 100 == 0:
                        await asyncio.sleep(0.005)
                assert count == 5000
            assert pool.snapshot().backpressure_waits > 0
    run(main)


def test_the_pool_works_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        async with lw.AsyncWorkerPool(config()) as pool:
            async with pool.lease(ROWS) as lease:
                assert await lease.call("echo", "uv") == "uv"
                rows = await lease.stream("rows", {"count": 20_000}).collect()
                assert len(rows) == 20_000
                task = asyncio.create_task(lease.call("rows", {"count": 10_000_000}))
                await asyncio.sleep(0.2)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert await lease.call("echo", 2) == 2

    uvloop.run(asyncio.wait_for(main(), 50))


# -- threaded and async clients together; shutdown ------------------------------------------------------------


def test_threaded_and_async_clients_share_one_pool() -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config()) as pool:
            def threaded() -> int:
                total = 0
                for i in range(50):
                    with pool.threaded.lease(OTHER) as lease:
                        total += lease.call("echo", i)
                return total

            thread_result: list[int] = []
            thread = threading.Thread(target=lambda: thread_result.append(threaded()))
            thread.start()
            total = 0
            for i in range(50):
                async with pool.lease(ROWS) as lease:
                    total += await lease.call("echo", i)
            while thread.is_alive():
                await asyncio.sleep(0.01)
            assert total == thread_result[0] == sum(range(50))
            assert pool.snapshot().requests_ok == 100
    run(main)


def test_aclose_fails_queued_waiters_with_pool_closed_and_reaps_every_worker() -> None:
    async def main() -> None:
        pool = lw.AsyncWorkerPool(config(max_workers=1))
        holder = await pool.lease(ROWS)
        waiter = asyncio.create_task(pool.lease(ROWS).acquire())
        await asyncio.sleep(0.2)
        call = asyncio.create_task(holder.call("rows", {"count": 10_000_000}))
        await asyncio.sleep(0.1)
        await pool.aclose()
        with pytest.raises(lw.PoolClosed):
            await waiter
        with pytest.raises(lw.PoolClosed):
            await call
        with pytest.raises(lw.PoolClosed):
            await pool.lease(ROWS)
        assert pool.snapshot().workers == 0
        await holder.release()  # not left to the garbage collector
    run(main)


# -- running a plan -----------------------------------------------------------------------------------------------


def plan(count: int) -> list[lw.PlannedBatch]:
    key = lw.SessionKey(MATHLIB)
    return [lw.PlannedBatch(key, (f"M{i}.A", f"M{i}.B"), f"batch{i}") for i in range(count)]


@LOOPS
def test_run_yields_every_batch_result_with_summary_and_progress(loop: str) -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config()) as pool:
            results = []
            async with pool.run(plan(6), "index") as batches:
                assert batches.progress.batches_total == 6
                async for result in batches:
                    results.append(result)
            assert len(results) == 6 and all(r.committed and r.rows for r in results)
            summary = batches.summary
            assert summary is not None and summary.batches_committed == 6 and summary.batches_failed == 0
            assert batches.progress.batches_done == 6
    run(main, loop)


@LOOPS
def test_cancelling_a_run_is_a_plain_call_and_leaves_no_worker_busy(loop: str) -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config()) as pool:
            work = pool.run(plan(40), "index", {"fail": {"M3.A": "hang"}})
            async for _ in work:
                work.cancel()
            summary = work.summary
            assert summary is not None and summary.cancelled
            while pool.snapshot().busy:
                await asyncio.sleep(0.02)
    run(main, loop)


def test_the_slow_admission_path_answers_through_a_future_and_a_withdrawn_one_leaves_nothing_running() -> None:
    """``RequestPort.admit_nowait``: while the worker restarts, the supervisor answers later (``SubmitLater``)."""
    from concurrent.futures import Future

    from leanworker.actors.slot import RequestChannel

    with lw.Worker(ROWS, FAST) as worker:
        port = worker._port  # the port leases use; lw.Worker has no async face of its own
        worker.cycle()  # the next generation starts: the gate admits nothing until it is ready
        answer = port.admit_nowait("echo", "later", streaming=False)
        assert isinstance(answer, Future)  # the gate closed as the cycle began: the supervisor answers later
        channel = answer.result(20)
        assert isinstance(channel, RequestChannel)
        terminal = channel.wait_terminal(20)
        assert terminal is not None and terminal.result == "later"
        worker.cycle()
        withdrawn = port.admit_nowait("rows", {"count": 10_000_000}, streaming=True)
        if isinstance(withdrawn, Future) and withdrawn.cancel():
            assert worker.call("echo", "free") == "free"  # nothing was left running on the new generation
        assert worker.snapshot().restarts.get("cycle", 0) >= 1


@LOOPS
def test_a_task_cancelled_while_its_run_starts_cancels_the_run(loop: str) -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config()) as pool:
            work = pool.run(plan(40), "index", {"fail": {"M3.A": "hang"}})

            async def drive() -> None:
                async with work:
                    async for _ in work:
                        pass

            task = asyncio.create_task(drive())
            await asyncio.sleep(0)  # the task is in work's start now (its thread opens the run)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(1000):  # the run, started after the cancel, is cancelled as it starts
                if work.summary is not None and not pool.snapshot().busy:
                    break
                await asyncio.sleep(0.02)
            summary = work.summary
            assert summary is not None and summary.cancelled, "the run went on after its task was cancelled"
            assert pool.snapshot().leases == 0
    run(main, loop)


def test_a_run_dropped_before_its_end_is_cancelled_and_frees_its_workers() -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config()) as pool:
            work = pool.run(plan(40), "index", {"fail": {"M30.A": "hang"}})
            async for _ in work:
                break  # no async with, no cancel(): the run is dropped ...
            while work.progress.batches_done < 7:  # ... once its results fill the queue and both runners wait
                await asyncio.sleep(0.01)
            del work
            gc.collect()

            def runners() -> list[str]:
                return [t.name for t in threading.enumerate() if t.name.startswith("leanworker-run-")]
            for _ in range(1000):
                if pool.snapshot().leases == 0 and not runners():
                    break
                await asyncio.sleep(0.02)
            assert pool.snapshot().leases == 0, "a dropped run kept its workers"
            assert not runners(), "a dropped run's runner threads waited for a reader that is gone"
            async with pool.lease(lw.SessionKey(MATHLIB), timeout=10) as lease:
                assert (await lease.call("version"))
    run(main)


# cancel() must not wait for the worker: with a worker that ignores the cancel, the request is still running (until
# its cancel_grace, long next to one statement) when cancel() has returned.
IGNORING = dataclasses.replace(FAST, cancel_grace=1.5)


def test_stream_cancel_returns_while_a_worker_that_ignores_it_still_runs() -> None:
    async def main() -> None:
        async with lw.AsyncWorkerPool(config(worker=IGNORING)) as pool:
            async with pool.lease(FAULTY) as lease:
                stream = lease.stream("hang", {"after_rows": 1, "ignore_cancel": True})
                async for _ in stream:
                    assert stream.cancel() is None
                    assert not stream.done, "cancel() waited for the request's end"
                assert stream.outcome == "cancelled" and not stream.committed
                assert "ignored cancel" in str(stream.error)  # past its grace: the worker was killed
    run(main)


def test_run_cancel_returns_while_workers_that_ignore_it_still_run() -> None:
    tracer = lw.Tracer()

    async def main() -> None:
        async with lw.AsyncWorkerPool(config(worker=IGNORING, trace=tracer)) as pool:
            batches = [lw.PlannedBatch(FAULTY, (f"M{i}",), f"hang{i}") for i in range(2)]
            work = pool.run(batches, "hang", {"ignore_cancel": True})
            async with work:
                while sum(1 for e in tracer.events() if e.kind == "request_admitted"
                          and e.fields.get("command") == "hang") < 2:
                    await asyncio.sleep(0.01)
                assert work.cancel() is None
                assert work.summary is None and work.progress.batches_done == 0, "cancel() waited for the run"
            summary = work.summary
            assert summary is not None and summary.cancelled and summary.batches_committed == 0
            assert pool.snapshot().busy == 0
    run(main)
