"""The dispatch fuzz at volume: mutated worker messages into the parent's dispatch path, counting untyped escapes.

``python -m bench.fuzz_dispatch`` (default: 100,000 cases in-process) writes each case's frames into a real pipe
and runs the parent's own reader and dispatcher on it (``FrameReader`` -> ``FrameDispatcher`` -> connection, admission
gate, request channel), exactly as a generation's reader thread does; only the worker process is left out, so
100,000 cases take minutes instead of an hour. ``--workers`` runs the cases through real worker programs
(``leanworker.fixtures.scripted_worker``, the path ``tests/test_dispatch_fuzz.py`` samples in ``make test``):
about 30 cases a second on 2 cores. A case passes when it ends in success or a ``LeanWorkerError``; anything else
is an escape, printed with its input, and the run exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections import Counter
from types import SimpleNamespace
from typing import Any

import cbor2
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import leanworker as lw
from leanworker.actors.core.timers import Scheduler
from leanworker.actors.slot.channel import RequestChannel
from leanworker.actors.slot.connection import Connection
from leanworker.actors.slot.counters import Counters
from leanworker.actors.slot.dispatch import FrameDispatcher
from leanworker.actors.slot.gate import AdmissionGate
from leanworker.fixtures.scripted_worker import substitute_id
from leanworker.fixtures.wire_fuzz import scripts
from leanworker.protocol import messages
from leanworker.protocol.frames import HEADER, FrameReader

REQUEST_ID = 7


def _frames(steps: list[dict[str, Any]]) -> bytes:
    out = bytearray()
    for step in steps:
        message = substitute_id(step["msg"], REQUEST_ID) if "msg" in step else messages.done(REQUEST_ID, "ok")
        body = cbor2.dumps(message)
        out += HEADER.pack(len(body)) + body
    return bytes(out)


def classify(run: Any, steps: list[dict[str, Any]], streaming: bool) -> str:
    """A case's outcome: what ``run`` returns, a typed error's name, or "UNTYPED" (printed with its input)."""
    try:
        return str(run())
    except lw.LeanWorkerError as exc:
        return type(exc).__name__
    except Exception:
        print("UNTYPED ESCAPE for", json.dumps(steps, default=repr), "streaming", streaming)
        traceback.print_exc()
        return "UNTYPED"


def run_in_process(cases: int) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    scheduler = Scheduler("fuzz-timers")
    counters = Counters()
    told: list[Any] = []  # what the gate tells its supervisor (a done that needs a decision)
    supervisor = SimpleNamespace(tell=told.append)
    gate = AdmissionGate(supervisor, counters, scheduler, 4096, None, None, "fuzz", False)  # type: ignore[arg-type]

    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(steps=scripts(), streaming=st.booleans())
    def case(steps: list[dict[str, Any]], streaming: bool) -> None:
        data = _frames(steps)
        connection = Connection(1, counters)
        channel = RequestChannel(REQUEST_ID, 1, "fuzz", streaming, 4096, counters)
        connection.register(channel)
        gate.state.open(1, None)
        gate.inflight, gate.state.inflight = channel, REQUEST_ID
        dispatcher = FrameDispatcher(connection, gate, None, "fuzz")
        read_fd, write_fd = os.pipe()
        try:
            os.write(write_fd, data)  # each case is far below the 64 KiB a pipe holds
            os.close(write_fd)
            write_fd = -1
            reader = FrameReader(read_fd)

            def dispatch_all() -> str:
                while (message := reader.read()) is not None:
                    dispatcher.dispatch(message, reader.last_size)
                return channel.terminal.outcome if channel.terminal is not None else "no_done"

            outcomes[classify(dispatch_all, steps, streaming)] += 1
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
            gate.inflight = gate.state.inflight = None

    try:
        case()
    finally:
        scheduler.stop()
    return outcomes


def run_with_workers(cases: int) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    key = lw.SessionKey("leanworker.fixtures.faults:capability",
                        command=(sys.executable, "-m", "leanworker.fixtures.scripted_worker"))
    with lw.Worker(key, lw.WorkerConfig(request_timeout=15), lw.RestartPolicy(max_restarts=10**9)) as worker:

        @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(steps=scripts(), streaming=st.booleans())
        def case(steps: list[dict[str, Any]], streaming: bool) -> None:
            request = {"script": json.dumps(steps)}

            def send() -> str:
                if streaming:
                    worker.stream("fuzz", request).collect()
                else:
                    worker.call("fuzz", request)
                return "ok"

            outcomes[classify(send, steps, streaming)] += 1
            worker.wait_ready(30)

        case()
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--workers", action="store_true", help="through real worker programs (slow)")
    args = parser.parse_args()
    started = time.perf_counter()
    outcomes = run_with_workers(args.cases) if args.workers else run_in_process(args.cases)
    elapsed = time.perf_counter() - started
    total = sum(outcomes.values())
    path = "real worker programs" if args.workers else "in-process dispatcher over real pipes"
    print(f"dispatch fuzz ({path}): {total} cases in {elapsed:.1f} s ({total / elapsed:.0f}/s)")
    for outcome, count in outcomes.most_common():
        print(f"  {outcome:<22} {count}")
    if total == 0:
        print("ERROR: no case ran; nothing was measured")
        return 1
    untyped = outcomes.get("UNTYPED", 0)
    print(f"untyped escapes: {untyped}")
    return 1 if untyped else 0


if __name__ == "__main__":
    sys.exit(main())
