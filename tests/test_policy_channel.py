"""A request's channel bounds what the parent holds, without processes (docs/semantics.md, Backpressure and memory
bounds): rows by count and by bytes, the reader thread held while the buffer is full, events bounded without ever
blocking, progress past the bound replacing the newest unread value of its phase. The end-to-end tests over real
worker processes are in test_worker_outcomes.py and test_memory_bounds.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import leanworker as lw
from leanworker.actors.slot.channel import (
    DIAG,
    EVENT_BUFFER_BYTES,
    EVENT_LIMIT,
    PROGRESS,
    ROWS,
    RequestChannel,
    Terminal,
)
from leanworker.actors.slot.counters import Counters

WAIT = 10.0  # generous: a bound on a wait for an event, never a measure of speed


def channel(rows: int = 1000, nbytes: int = 1 << 20) -> RequestChannel:
    return RequestChannel(1, 1, "stream", True, rows, Counters(), capacity_bytes=nbytes)


class Reader:
    """The reader thread's part: buffering one frame, which may have to wait for room."""

    def __init__(self, chan: RequestChannel, seq: int, payloads: list[object], nbytes: int) -> None:
        self.taken: bool | None = None
        self.thread = threading.Thread(target=self._put, args=(chan, seq, payloads, nbytes), daemon=True)
        self.thread.start()

    def _put(self, chan: RequestChannel, seq: int, payloads: list[object], nbytes: int) -> None:
        self.taken = chan.put_rows("out", seq, payloads, nbytes)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "the condition was not met in time"
        time.sleep(0.005)


def held_until_room(chan: RequestChannel, seq: int) -> Reader:
    """A frame the full buffer makes the reader wait with: it waits (counted once), its frame is not buffered."""
    reader = Reader(chan, seq, [b"late"], 1)
    wait_until(lambda: chan.counters.backpressure_waits == 1)
    # Counted as it starts to wait; only room (a get) or an end lets it on, and this thread has given neither yet.
    assert reader.taken is None and reader.thread.is_alive()
    return reader


def test_backpressure_the_buffer_is_bounded_in_rows_and_the_reader_waits_until_a_get_makes_room() -> None:
    chan = channel(rows=3)
    assert chan.put_rows("out", 0, [b"a", b"b"], 2) and chan.put_rows("out", 2, [b"c"], 1)
    assert chan.counters.backpressure_waits == 0, "below both bounds the reader never waits"
    reader = held_until_room(chan, 3)
    assert chan.get() == (ROWS, "out", 0, [b"a", b"b"], 2)
    reader.thread.join(WAIT)
    assert reader.taken is True and chan.counters.backpressure_waits == 1
    assert [chan.get()[3] for _ in range(2)] == [[b"c"], [b"late"]], "nothing lost, nothing reordered"
    assert chan.counters.rows_delivered == 4


def test_backpressure_the_buffer_is_bounded_in_bytes_and_takes_a_frame_while_below_both_bounds() -> None:
    chan = channel(rows=1000, nbytes=100)
    assert chan.put_rows("out", 0, [b"x"], 99), "below both bounds: taken"
    assert chan.put_rows("out", 1, [b"y" * 1000], 1000), "still below the byte bound: one more frame, however big"
    reader = held_until_room(chan, 2)  # 1099 bytes: at most buffer_bytes plus one frame
    chan.get()
    assert reader.taken is None, "1000 bytes left are still over the bound: the reader waits on"
    chan.get()
    reader.thread.join(WAIT)
    assert reader.taken is True


def test_backpressure_a_reader_held_by_a_full_buffer_is_let_go_by_the_terminal_or_by_the_caller_giving_up() -> None:
    for end in ("terminal", "abandon"):
        chan = channel(rows=1)
        chan.put_rows("out", 0, [b"a"], 1)
        reader = held_until_room(chan, 1)
        if end == "terminal":
            chan.finish(Terminal("timeout", error=lw.RequestTimeout("late")))
        else:
            chan.abandon()
        reader.thread.join(WAIT)
        assert reader.taken is False, f"{end}: the held frame is dropped, the reader thread goes on"
        assert not chan.put_rows("out", 2, [b"b"], 1), f"{end}: later frames are dropped without waiting"


def test_backpressure_past_the_event_bound_a_diagnostic_is_dropped_and_counted_and_nothing_blocks() -> None:
    chan = channel()
    warning = lw.Diagnostic("warning", "w", "flood")
    for _ in range(EVENT_LIMIT):
        assert chan.put_event(DIAG, warning, 10)
    assert chan.put_event(DIAG, warning, 10), "past the count bound: returns at once"
    assert chan.events_dropped == 1 and chan.counters.events_dropped == 1
    assert chan.counters.backpressure_waits == 0, "events never make the reader wait"
    assert sum(1 for _ in range(EVENT_LIMIT) if chan.get()[0] is DIAG) == EVENT_LIMIT

    big = channel()
    assert big.put_event(DIAG, warning, EVENT_BUFFER_BYTES), "exactly the byte bound fits"
    assert big.put_event(DIAG, warning, 1) and big.events_dropped == 1, "past the byte bound: dropped and counted"
    big.get()
    assert big.put_event(DIAG, warning, 1) and big.events_dropped == 1, "room again once the reader took one"


def test_backpressure_past_the_event_bound_progress_replaces_the_newest_unread_value_of_its_phase() -> None:
    chan = channel()
    first, second, latest = (lw.Progress("index", n, 10) for n in (1, 2, 3))
    assert chan.put_event(PROGRESS, first, 10) and chan.put_event(PROGRESS, second, 10)
    for _ in range(EVENT_LIMIT - 2):
        chan.put_event(DIAG, lw.Diagnostic("info", "i", "fill"), 10)
    assert chan.put_event(PROGRESS, latest, 10)
    assert chan.put_event(PROGRESS, lw.Progress("other", 1, None), 10), "a phase with nothing unread: dropped"
    assert chan.events_dropped == 1, "a replaced tick is not a dropped event"
    assert chan.get() == (PROGRESS, first), "only the newest unread value of the phase is replaced"
    assert chan.get() == (PROGRESS, latest), "in its place: a reader that fell behind sees the latest progress"

    kept_up = channel()
    for tick in (first, second, latest):
        kept_up.put_event(PROGRESS, tick, 10)
        assert kept_up.get() == (PROGRESS, tick), "a reader that keeps up sees every tick"


def test_backpressure_a_replacing_progress_event_must_fit_the_byte_bound_too() -> None:
    chan = channel()
    tick = lw.Progress("index", 1, 10)
    assert chan.put_event(PROGRESS, tick, 100)
    assert chan.put_event(DIAG, lw.Diagnostic("info", "i", "fill"), EVENT_BUFFER_BYTES - 100)
    assert chan.put_event(PROGRESS, lw.Progress("index", 2, 10), 101) and chan.events_dropped == 1
    assert chan.put_event(PROGRESS, lw.Progress("index", 3, 10), 100) and chan.events_dropped == 1
    assert chan.get() == (PROGRESS, lw.Progress("index", 3, 10))
