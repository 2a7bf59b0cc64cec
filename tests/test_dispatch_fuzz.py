"""Fuzz the parent's dispatch path through a real worker program: whatever a worker sends after its handshake,
the request ends in one typed outcome and the slot serves again (issue 8, item 1).

``make test`` runs a sample; ``LEANWORKER_FUZZ_EXAMPLES=2000 pytest tests/test_dispatch_fuzz.py`` runs more, and
``python -m bench.fuzz_dispatch`` runs 100,000 cases through the same dispatcher in-process.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import leanworker as lw
from conftest import FAST, FAULTS
from leanworker.fixtures.wire_fuzz import scripts

SCRIPTED = (sys.executable, "-m", "leanworker.fixtures.scripted_worker")
EXAMPLES = int(os.environ.get("LEANWORKER_FUZZ_EXAMPLES", "40"))


def test_whatever_a_worker_sends_the_request_ends_typed_and_the_worker_serves_again() -> None:
    outcomes: dict[str, int] = {}
    key = lw.SessionKey(FAULTS, command=SCRIPTED)
    with lw.Worker(key, FAST, lw.RestartPolicy(max_restarts=100_000)) as worker:

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(steps=scripts(), streaming=st.booleans())
        def run(steps: list[dict[str, Any]], streaming: bool) -> None:
            request = {"script": json.dumps(steps)}
            try:
                if streaming:
                    worker.stream("fuzz", request, timeout=15).collect()
                else:
                    worker.call("fuzz", request, timeout=15)
                outcome = "ok"
            except lw.LeanWorkerError as exc:  # anything else escapes and fails the test
                outcome = type(exc).__name__
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            # A frame scripted after a valid done can still be in the pipe: the next request then ends with
            # ProtocolError (the byte stream is broken, whoever it was for) and the worker is replaced. The one after
            # that runs on a clean generation and must succeed.
            for attempt in (1, 2):
                worker.wait_ready(30)
                try:
                    assert worker.call("after", {"script": json.dumps([{"done": True}])}, timeout=15) is None
                    break
                except lw.ProtocolError:
                    assert attempt == 1, "a fresh generation failed too"

        run()
        # Calls read their answers in the calling thread (actors/slot/readside.py): the fuzz covers that path too.
        assert worker.snapshot().answers_read_by_caller > 0
    assert sum(outcomes.values()) == EXAMPLES
    assert outcomes.get("ProtocolError", 0) > 0, outcomes  # the mutations do reach the validator
