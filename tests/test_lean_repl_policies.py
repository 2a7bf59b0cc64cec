"""The REPL driver's pure policies, without a process: framing with its cap, matching answers to questions (env
numbering, fences), verdicts from malformed answers, rows cut to fit a frame, exit descriptions (issue 18)."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leanworker.lean.faults import ReplBadAnswer, describe_exit, stderr_summary
from leanworker.lean.framing import AnswerFramer, EmptyLine, Overflow, Piece
from leanworker.lean.matching import (
    COMMAND,
    FILE,
    INVALID,
    PICKLE_ENV,
    TACTIC,
    UNPICKLE_ENV,
    EnvLedger,
    is_fence_answer,
    new_fence,
    request_kind,
)
from leanworker.lean.rows import TEXT_CAP, fit_row
from leanworker.lean.verdict import verdict

ANSWERS = [b'{"env": 0}\n', b'{"messages":\n [{"severity": "info", "data": "a\\n\\nb"}],\n "env": 1}\n',
           b'{"message": "Unknown environment."}\n']
STREAM = b"".join(answer + b"\n" for answer in ANSWERS)


def feed_all(chunks: list[bytes], cap: int = 1 << 20) -> list[Piece]:
    framer = AnswerFramer(cap)
    return [piece for chunk in chunks for piece in framer.feed(chunk)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12, unique=True))
def test_answers_are_cut_at_blank_lines_however_the_output_is_chunked(cuts: list[int]) -> None:
    edges = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in zip(edges, edges[1:])]
    assert feed_all(chunks) == ANSWERS


def test_a_blank_line_where_no_answer_began_is_reported_not_skipped() -> None:
    assert feed_all([b"\n", b'{"env": 0}\n', b" \t\n", b"\n"]) == [EmptyLine(), b'{"env": 0}\n', EmptyLine()]


def test_an_answer_or_a_line_without_end_past_the_cap_overflows_once_and_reading_stops() -> None:
    framer = AnswerFramer(1000)
    assert framer.feed(b"x" * 600) == []
    assert framer.feed(b"y" * 600) == [Overflow(1200)]
    assert framer.overflowed and framer.feed(b'{"env": 0}\n\n') == []
    assert feed_all([b'{"a":\n', b" " * 400, b"z" * 700], cap=1000) == [Overflow(1106)]


def test_a_200_mb_answer_in_1_mib_blocks_is_one_answer() -> None:
    block = (b"  " + b"m" * 1021 + b"\n") * 1024  # 1 MiB of lines, none blank
    framer = AnswerFramer(256 << 20)
    pieces: list[Piece] = []
    for _ in range(200):
        pieces += framer.feed(block)
    pieces += framer.feed(b"\n")
    assert len(pieces) == 1 and isinstance(pieces[0], bytes) and len(pieces[0]) == 200 << 20


@pytest.mark.parametrize("request_, kind", [
    ({"cmd": "x"}, COMMAND), ({"cmd": "x", "env": 0}, COMMAND), ({"path": "f.lean"}, FILE),
    ({"proofState": 0, "tactic": "rfl", "cmd": "x"}, TACTIC),  # the first match wins, as in the REPL's parse
    ({"env": 3, "pickleTo": "a.olean", "cmd": "x"}, PICKLE_ENV), ({"unpickleEnvFrom": "a.olean"}, UNPICKLE_ENV),
    ({"cmd": "x", "env": -1}, INVALID), ({"cmd": "x", "env": 1.0}, INVALID), ({"cmd": "x", "env": True}, INVALID),
    ({"neither": 1}, INVALID),
])
def test_requests_are_classified_in_the_repls_own_order(request_: dict[str, Any], kind: str) -> None:
    assert request_kind(request_) == kind


def test_each_command_answer_must_carry_the_next_env_and_error_objects_allocate_none() -> None:
    ledger = EnvLedger()
    header = ledger.expect({"cmd": "import Mathlib"})
    assert ledger.settle(header, {"env": 0}) is None and ledger.next_env == 1
    item = ledger.expect({"cmd": "theorem a : True := trivial", "env": 0})
    assert ledger.settle(item, {"message": "Unknown environment."}) is None and ledger.next_env == 1
    item = ledger.expect({"cmd": "b", "env": 0})
    assert "must carry env 1" in str(ledger.settle(item, {"env": 0}))  # a stale answer is in doubt
    assert ledger.settle(item, {"env": 1, "messages": []}) is None and ledger.next_env == 2
    pickle = ledger.expect({"env": 0, "pickleTo": "x.olean"})
    assert ledger.settle(pickle, {"env": 0}) is None and ledger.next_env == 2
    step = ledger.expect({"proofState": 0, "tactic": "rfl"})
    assert ledger.settle(step, {"proofState": 1, "goals": []}) is None


@pytest.mark.parametrize("env", [-1, 1.5, True, 1e30, "0", None])
def test_an_env_that_is_not_a_non_negative_integer_is_never_accepted(env: object) -> None:
    ledger = EnvLedger()
    doubt = ledger.settle(ledger.expect({"cmd": "import Mathlib"}), {"env": env})
    assert doubt is not None and "not an environment number" in doubt and ledger.next_env == 0


def test_answers_that_are_not_the_repls_shapes_are_doubts() -> None:
    ledger = EnvLedger()
    assert "not an object" in str(ledger.settle(ledger.expect({"cmd": "x"}), [1, 2]))
    assert "mixes" in str(ledger.settle(ledger.expect({"cmd": "x"}), {"message": "m", "env": 0}))
    assert "no env" in str(ledger.settle(ledger.expect({"cmd": "x"}), {"messages": []}))


def test_a_fence_is_recognised_only_with_its_own_nonce() -> None:
    (fence, nonce), (_, other) = new_fence(), new_fence()
    answer = {"message": f"no such file or directory (error code: 2)\n  file: {fence['path']}"}
    assert nonce != other and is_fence_answer(answer, nonce) and not is_fence_answer(answer, other)
    assert not is_fence_answer({"message": "Unknown environment."}, nonce)


@pytest.mark.parametrize("answer, detail", [
    ({"env": 1, "messages": 5}, "messages of type int"),
    ({"env": 1, "messages": [{"severity": "fatal", "data": "x"}]}, "severity 'fatal'"),
    ({"env": 1, "messages": ["text"]}, "a str, not an object"),
    ({"env": 1, "messages": [{"severity": "error", "data": 7}]}, "data of type int"),
    ({"env": 1, "sorries": {"goal": "x"}}, "sorries of type dict"),
    ({"env": 1, "sorries": [{"goal": None}]}, "goal of type NoneType"),
])
def test_a_malformed_answer_gives_no_verdict_and_a_readable_reason(answer: dict[str, Any], detail: str) -> None:
    with pytest.raises(ReplBadAnswer) as info:
        verdict(answer)
    assert detail in str(info.value) and "Error" not in str(info.value)


def test_verdicts_from_well_formed_answers() -> None:
    info = {"severity": "info", "data": "ok"}
    assert verdict({"env": 1})["status"] == "ok"
    assert verdict({"env": 1, "messages": [info]})["status"] == "ok"
    assert verdict({"env": 1, "sorries": [{"goal": "⊢ True"}]})["status"] == "sorry"
    assert verdict({"env": 1, "sorries": [{"goal": "g"}], "messages": [{**info, "severity": "error"}]})["status"] \
        == "error"
    assert verdict({"message": "Unknown environment."}) == {"status": "error", "messages": [], "sorries": [],
                                                             "error": "Unknown environment."}


def test_a_row_too_large_for_a_frame_keeps_its_verdict_and_says_what_was_cut() -> None:
    message = {"severity": "info", "pos": {"line": 1, "column": 0}, "data": "m" * 1000}
    row = {"id": 7, "status": "error", "messages": [message] * 10_000 + [{"severity": "error", "data": "e" * 10**6}],
           "sorries": [], "elapsed_s": 0.1}
    cut = fit_row(row, 1 << 20, answer_bytes=11_000_000)
    assert len(cbor2.dumps(cut)) <= (1 << 20) - 1024
    assert cut["status"] == "error" and cut["id"] == 7
    assert cut["truncated"] == {"messages": 10_001, "sorries": 0, "answer_bytes": 11_000_000}
    assert 0 < len(cut["messages"]) < 10_000 and cut["messages"][0] == message
    small = {"id": 1, "status": "ok", "messages": [message], "sorries": []}
    assert fit_row(small, 1 << 20) is small
    long_text = fit_row({"id": 2, "status": "error", "messages": [], "sorries": [], "error": "x" * (2 << 20)}, 1 << 20)
    assert long_text["error"].startswith("x" * TEXT_CAP) and "cut by leanworker" in long_text["error"]


def test_exit_statuses_read_as_a_person_would_say_them() -> None:
    assert describe_exit(0) == "exited with status 0"
    assert describe_exit(-11) == "was killed by signal SIGSEGV (status -11)"
    assert describe_exit(None) == "ended (status unknown)"
    assert stderr_summary("\nuncaught exception: boom\n\n") == "; stderr: uncaught exception: boom"
