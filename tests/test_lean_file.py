"""The ``"leanworker.lean:file"`` capability without Lean: reading ``lean --json`` output (lines captured from real
Lean 4.35.0) in bounded memory, the verdict rule, finding ``lean``, and refusing bad requests. Real Lean runs in
tests/test_real_lean.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import leanworker as lw
from conftest import FAST
from leanworker.lean import find_lean
from leanworker.lean.lean_output import LeanOutput, verdict

# Printed by `lean --json` 4.35.0 for leanworker.fixtures.real_lean.BAD and .SORRY.
ERROR_LINE = ('{"caption":"","data":"Unknown identifier `foo`","endPos":{"column":10,"line":5},"fileName":"<stdin>",'
              '"isSilent":false,"keepFullRange":false,"kind":"lean.unknownIdentifier._namedError",'
              '"pos":{"column":7,"line":5},"severity":"error"}')
SORRY_LINE = ('{"caption":"","data":"declaration uses `sorry`","endPos":{"column":9,"line":9},"fileName":"<stdin>",'
              '"isSilent":false,"keepFullRange":false,"kind":"hasSorry","pos":{"column":8,"line":9},'
              '"severity":"warning"}')
INFO_LINE = ('{"caption":"","data":"N.z : N","endPos":{"column":6,"line":5},"fileName":"<stdin>","isSilent":false,'
             '"keepFullRange":false,"kind":"[anonymous]","pos":{"column":0,"line":5},"severity":"information"}')


def read(*chunks: bytes, **limits: int) -> LeanOutput:
    output = LeanOutput(**limits)
    for chunk in chunks:
        output.feed(chunk)
    output.close()
    return output


def test_messages_are_kept_in_the_repls_shape_whatever_the_chunking() -> None:
    text = f"{INFO_LINE}\n{ERROR_LINE}\n{SORRY_LINE}".encode()
    whole = read(text)
    split = read(*(text[i:i + 7] for i in range(0, len(text), 7)))
    assert whole.messages == split.messages
    assert whole.messages[1] == {"severity": "error", "pos": {"column": 7, "line": 5},
                                 "endPos": {"column": 10, "line": 5}, "data": "Unknown identifier `foo`"}
    assert whole.errors == 1 and whole.sorries == [{"pos": {"column": 8, "line": 9}, "endPos": {"column": 9, "line": 9}}]


def test_the_older_sorry_wording_counts_too() -> None:
    older = json.dumps({"severity": "warning", "data": "declaration uses 'sorry'", "pos": None, "endPos": None})
    assert len(read(older.encode()).sorries) == 1
    other = json.dumps({"severity": "warning", "data": "unused variable `x`", "pos": None, "endPos": None})
    assert read(other.encode()).sorries == []


def test_message_text_past_the_budget_is_cut_then_dropped_but_every_error_is_counted() -> None:
    big = json.dumps({"severity": "error", "data": "x" * 30_000, "pos": None, "endPos": None}).encode()
    output = read(*(big + b"\n" for _ in range(5)), budget=48 * 1024)
    assert output.errors == 5
    assert len(output.messages) == 2 and output.dropped == 3
    assert output.messages[1]["data"].endswith("[truncated by leanworker]")
    assert sum(len(m["data"]) for m in output.messages) < 48 * 1024


def test_an_oversized_line_is_dropped_and_its_severity_still_read() -> None:
    huge = json.dumps({"data": "y" * 100_000, "severity": "error"}).encode()
    output = read(huge[:40_000], huge[40_000:] + b"\n" + INFO_LINE.encode(), line_limit=10_000)
    assert output.errors == 1 and output.dropped == 1
    assert [m["data"] for m in output.messages] == ["N.z : N"]


def test_output_that_is_not_a_message_is_kept_as_a_short_tail() -> None:
    noise = b"".join(b"line %d of something else\n" % i for i in range(1000))
    output = read(noise + INFO_LINE.encode() + b"\n")
    assert len(output.messages) == 1 and output.other_text().endswith("line 999 of something else\n")
    assert len(output.other) <= 4096


@pytest.mark.parametrize(("stopped_for", "exit_status", "errors", "sorries", "status"), [
    ("timeout", -9, 0, 0, "timeout"),
    ("memory", -9, 3, 0, "memory"),
    (None, -6, 0, 0, "crashed"),      # a signal: Lean did not finish, whatever it printed
    (None, -6, 2, 0, "crashed"),
    (None, None, 0, 0, "crashed"),    # could not be reaped
    (None, 1, 2, 1, "error"),
    (None, 1, 0, 0, "crashed"),       # failed without saying why (for example: cannot create a thread)
    (None, 0, 0, 1, "sorry"),
    (None, 0, 0, 0, "ok"),
])
def test_the_verdict_rule(stopped_for: str | None, exit_status: int | None, errors: int, sorries: int,
                          status: str) -> None:
    assert verdict(stopped_for, exit_status, errors, sorries) == status


def test_find_lean_takes_the_option_then_the_environment_then_lake_then_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("lake", "lean"):
        (bin_dir / program).write_text("#!/bin/sh\n")
        (bin_dir / program).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("ELAN_HOME", str(tmp_path / "no-elan"))
    monkeypatch.setenv("LEANWORKER_LEAN", "my-lean --flag")
    project = tmp_path / "project"
    project.mkdir()
    (project / "lakefile.toml").write_text('name = "p"\n')
    assert find_lean("opt-lean -j 1", project) == ["opt-lean", "-j", "1"]
    assert find_lean(None, project) == ["my-lean", "--flag"]
    monkeypatch.delenv("LEANWORKER_LEAN")
    assert find_lean(None, project) == [str(bin_dir / "lake"), "env", "lean"]
    assert find_lean(None, tmp_path) == [str(bin_dir / "lean")]  # no lakefile
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert find_lean(None, project) is None


def test_a_missing_lean_is_a_command_error_at_the_session_open_that_says_where_it_looked() -> None:
    config = lw.WorkerConfig(env={"PATH": "/nonexistent", "LEANWORKER_LEAN": "", "ELAN_HOME": "/nonexistent",
                                  "HOME": "/nonexistent"}, startup_timeout=10)
    with pytest.raises(lw.CommandError) as info:
        lw.Worker(lw.SessionKey("leanworker.lean:file"), config)
    assert info.value.code == "lean_not_found" and "LEANWORKER_LEAN" in info.value.message
    with pytest.raises(lw.CommandError) as info:
        lw.Worker(lw.SessionKey("leanworker.lean:file", options=(("lean", "/nonexistent/lean"),)), FAST)
    assert info.value.code == "lean_not_found" and "/nonexistent/lean" in info.value.message


@pytest.mark.parametrize("request_", [
    None, {"items": "x"}, {"items": [{"id": 1}]}, {"items": [{"id": 1, "code": "a", "path": "b"}]},
    {"items": [], "timeout": 0}, {"items": [], "memory_mib": -1}, {"items": [], "timeout": True},
])
def test_a_malformed_request_is_refused_before_any_lean_runs(request_: object) -> None:
    key = lw.SessionKey("leanworker.lean:file", options=(("lean", f"{sys.executable} -c pass"),))
    with lw.Worker(key, FAST) as worker:
        with pytest.raises(lw.CommandError) as info:
            worker.call("check", request_)
        assert info.value.code == "bad_request"


def test_a_missing_path_is_an_error_row_and_the_rest_are_checked(tmp_path: Path) -> None:
    # A stand-in "lean" that prints one message the way lean --json does (not Lean: the verdicts on real Lean are in
    # tests/test_real_lean.py).
    fake = tmp_path / "fake_lean.py"
    fake.write_text(f"import sys\nsys.stdin.read()\nprint({INFO_LINE!r})\n")
    key = lw.SessionKey("leanworker.lean:file", str(tmp_path),
                        options=(("lean", f"{sys.executable} {fake} --"),))
    with lw.Worker(key, FAST) as worker:
        rows = [row.payload for row in worker.stream("check", {"items": [
            {"id": 1, "path": "Missing.lean"}, {"id": 2, "code": "prelude"}]})]
    assert rows[0]["status"] == "error" and "no such file" in rows[0]["error"] and rows[0]["exit"] is None
    assert rows[1]["status"] == "ok" and rows[1]["messages"][0]["data"] == "N.z : N"
