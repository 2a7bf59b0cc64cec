"""What the asyncio layer stands on, without processes: a request channel read without blocking (``poll`` and its
wake function), a loop wakeup resolved from another thread, and the request statistics metrics read."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

from leanworker.actors.core.stats import Histogram, RequestStats
from leanworker.actors.slot import END, OK, ROWS, RequestChannel, Terminal
from leanworker.actors.slot.counters import Counters
from leanworker.aio.wakeup import LoopWakeup, settled


def channel(capacity: int = 4) -> RequestChannel:
    return RequestChannel(1, 1, "rows", True, capacity, Counters())


def test_poll_returns_nothing_and_arms_its_wake_which_the_next_producer_calls_once() -> None:
    woken: list[str] = []
    ch = channel()
    assert ch.poll(lambda: woken.append("a")) is None
    assert ch.put_rows("rows", 0, [{"i": 0}], 10)
    assert woken == ["a"]
    assert ch.put_rows("rows", 1, [{"i": 1}], 10)  # the wake was used up: called once
    assert woken == ["a"]
    item = ch.poll(lambda: woken.append("b"))
    assert item is not None and item[0] is ROWS and item[2] == 0
    item = ch.poll(lambda: woken.append("b"))
    assert item is not None and item[2] == 1
    assert ch.poll(lambda: woken.append("c")) is None
    ch.finish(Terminal(OK))
    assert woken == ["a", "c"]
    end = ch.poll(lambda: woken.append("d"))
    assert end is not None and end[0] is END and end[1].outcome == OK and woken == ["a", "c"]


def test_a_later_poll_replaces_a_wake_not_yet_called_and_a_full_buffer_frees_its_producer() -> None:
    woken: list[str] = []
    ch = channel(capacity=1)
    ch.poll(lambda: woken.append("old"))
    ch.poll(lambda: woken.append("new"))
    ch.put_rows("rows", 0, [{"i": 0}], 1)
    assert woken == ["new"]
    blocked = threading.Thread(target=ch.put_rows, args=("rows", 1, [{"i": 1}], 1))
    blocked.start()  # the buffer is full: the producer waits for the consumer
    blocked.join(0.2)
    assert blocked.is_alive()
    assert ch.poll(lambda: None) is not None  # taking a row frees the producer
    blocked.join(5)
    assert not blocked.is_alive()


def test_a_request_is_counted_once_by_its_first_terminal_and_a_handshake_not_at_all() -> None:
    counters = Counters()
    request = RequestChannel(5, 1, "echo", False, 4, counters)
    request.admitted_at = 0.0
    assert request.finish(Terminal("timeout"))
    assert not request.finish(Terminal(OK))
    handshake = RequestChannel(1, 1, "open", False, 4, counters)
    handshake.finish(Terminal(OK))
    stats = counters.request_stats()
    assert stats.outcomes == {("echo", "timeout"): 1} and stats.durations["echo"].count == 1


def test_histograms_are_cumulative_in_prometheus_order_and_merge() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 5.0):
        histogram.observe(value)
    assert histogram.cumulative() == [(0.1, 2), (1.0, 3), (float("inf"), 4)]
    other = histogram.copy()
    other.merge(histogram)
    assert other.count == 8 and other.cumulative()[-1] == (float("inf"), 8) and histogram.count == 4
    stats = RequestStats()
    stats.record("echo", "ok", 0.001)
    merged = stats.copy()
    merged.merge(stats)
    assert merged.outcomes == {("echo", "ok"): 2} and stats.outcomes == {("echo", "ok"): 1}


def test_a_wakeup_from_another_thread_resumes_the_task_and_a_closed_loop_is_ignored() -> None:
    async def main() -> LoopWakeup:
        wakeup = LoopWakeup(asyncio.get_running_loop())
        waiter = wakeup.arm()
        threading.Thread(target=wakeup).start()
        await asyncio.wait_for(waiter, 5)
        future: Future[int] = Future()
        threading.Timer(0.05, future.set_result, (1,)).start()
        assert await settled(future, 5)
        return wakeup

    wakeup = asyncio.run(main())
    wakeup()  # its loop is closed: nothing happens, nothing is raised
