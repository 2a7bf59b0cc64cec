"""The ``"leanworker.lean:file"`` capability without Lean: reading ``lean --json`` output (lines captured from real
Lean 4.35.0) in bounded memory, the verdict rule, finding ``lean``, and refusing bad requests. Real Lean runs in
tests/test_real_lean.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

import leanworker as lw
from conftest import FAST, pid_gone, wait_for
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
    {"items": [{"id": 1, "path": ""}]}, {"items": [{"id": 1, "path": "a\0b"}]}, {"items": [{"id": 1, "path": "a" * 5000}]},
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


# -- hostile output, paths and processes (a stand-in "lean", not Lean: real Lean is in tests/test_real_lean.py) -----

STAND_IN = '''
import json, os, sys, time
args = sys.argv[1:]
source = sys.stdin.read() if "--stdin" in args else open(args[-1], encoding="utf-8").read()
def message(severity, data, **extra):
    print(json.dumps({"severity": severity, "pos": {"line": 1, "column": 0}, "endPos": None, "data": data, **extra}))
if "SORRIES" in source:
    for _ in range(int(source.split()[1])):
        message("warning", "declaration uses `sorry`", kind="hasSorry")
if "WIDE" in source:  # messages whose positions hold what no position holds
    for _ in range(20):
        print(json.dumps({"severity": "information", "pos": {"line": 1, "column": 0, "pad": "p" * 30000}, "data": ""}))
if "ODD" in source:  # valid JSON that no frame carries
    print('{"severity": "information", "pos": {"line": 1, "column": 0}, "data": "\\\\ud800"}')
    print('{"severity": "error", "pos": {"line": 123456789012345678901234567890, "column": 0}, "data": "big"}')
if "ESCAPE" in source:  # a process that leaves Lean's group and session, and outlives Lean
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            with open(source.split()[1], "w") as note:
                note.write(str(os.getpid()))
            time.sleep(600)
        os._exit(0)
    os.wait()
message("information", "args: " + " ".join(args))
'''


@pytest.fixture
def stand_in(tmp_path: Path) -> lw.SessionKey:
    script = tmp_path / "stand_in_lean.py"
    script.write_text(STAND_IN)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    return lw.SessionKey("leanworker.lean:file", str(workspace), options=(("lean", f"{sys.executable} {script}"),))


def file_check(worker: lw.Worker, items: list[dict[str, object]]) -> list[dict[str, object]]:
    return [row.payload for row in worker.stream("check", {"items": items, "timeout": 30})]


def test_lean_output_no_frame_could_carry_costs_no_item_and_every_row_fits_the_smallest_frame(
        stand_in: lw.SessionKey) -> None:
    # 3,000 sorry warnings, positions of 30 KB, a lone surrogate, an int past 2**64: each row keeps its verdict
    # (every error and sorry counted) and fits one 64 KiB frame; the check completes.
    config = lw.WorkerConfig(startup_timeout=10.0, request_timeout=60.0, max_frame_bytes=65536)
    with lw.Worker(stand_in, config) as worker:
        rows = file_check(worker, [{"id": 1, "code": "SORRIES 3000"}, {"id": 2, "code": "WIDE"},
                                   {"id": 3, "code": "ODD"}, {"id": 4, "code": "prelude"}])
        assert worker.snapshot().restarts == {}
    sorries, wide, odd, plain = rows
    assert sorries["status"] == "sorry" and 0 < len(sorries["sorries"]) < 3000
    assert sorries["sorries_dropped"] == 3000 - len(sorries["sorries"])
    assert wide["status"] == "ok" and wide["messages_dropped"] > 0
    assert odd["status"] == "error" and odd["messages_dropped"] == 2
    assert plain["status"] == "ok" and plain["messages"][0]["data"] == "args: --json --stdin"


def test_lean_messages_use_the_repls_severity_words() -> None:
    output = read(f"{INFO_LINE}\n{ERROR_LINE}\n{SORRY_LINE}".encode())
    assert [m["severity"] for m in output.messages] == ["info", "error", "warning"]


def test_sorry_warnings_past_the_budget_are_counted_not_kept() -> None:
    output = read(*(SORRY_LINE.encode() + b"\n" for _ in range(5000)), budget=8 * 1024)
    assert output.sorry_count == 5000 and 0 < len(output.sorries) < 5000
    assert output.sorries_dropped == 5000 - len(output.sorries)


def test_a_path_that_looks_like_an_option_is_checked_as_a_file(stand_in: lw.SessionKey) -> None:
    assert stand_in.workspace is not None
    (Path(stand_in.workspace) / "--version").write_text("prelude\n")
    with lw.Worker(stand_in, FAST) as worker:
        (row,) = file_check(worker, [{"id": 1, "path": "--version"}])
    assert row["status"] == "ok" and row["messages"][0]["data"] == "args: --json ./--version"


def test_a_path_that_is_not_a_regular_file_is_an_error_row_that_says_what_it_is(stand_in: lw.SessionKey) -> None:
    assert stand_in.workspace is not None
    workspace = Path(stand_in.workspace)
    (workspace / "folder").mkdir()
    os.mkfifo(workspace / "fifo")
    (workspace / "zero").symlink_to("/dev/zero")
    with lw.Worker(stand_in, FAST) as worker:
        rows = file_check(worker, [{"id": name, "path": name} for name in ("folder", "fifo", "zero", "missing")])
    said = {row["id"]: (row["status"], row["error"]) for row in rows}
    assert said == {"folder": ("error", "folder is not a Lean file: it is a directory"),
                    "fifo": ("error", "fifo is not a Lean file: it is a FIFO"),
                    "zero": ("error", "zero is not a Lean file: it is a character device"),
                    "missing": ("error", "no such file: missing")}


def test_a_process_lean_leaves_behind_in_a_session_of_its_own_is_killed_after_its_item(
        stand_in: lw.SessionKey, tmp_path: Path) -> None:
    note = tmp_path / "escaped.pid"
    with lw.Worker(stand_in, FAST) as worker:
        (row,) = file_check(worker, [{"id": 1, "code": f"ESCAPE {note}"}])
        assert row["status"] == "ok" and note.exists()
        escaped = int(note.read_text())
        assert wait_for(lambda: pid_gone(escaped), timeout=10), "it outlived its item while the worker lives"
        (row,) = file_check(worker, [{"id": 2, "code": "prelude"}])
        assert row["status"] == "ok" and worker.snapshot().restarts == {}


@pytest.mark.parametrize("capability", ["leanworker.lean:file", "leanworker.lean:repl"])
def test_an_item_id_too_large_for_a_row_is_refused_before_anything_runs(capability: str) -> None:
    option = ("lean", f"{sys.executable} -c pass") if capability.endswith("file") else (
        "repl", f"{sys.executable} -m leanworker.fixtures.repl_sim")
    with lw.Worker(lw.SessionKey(capability, options=(option,)), FAST) as worker:
        with pytest.raises(lw.CommandError) as info:
            worker.call("check", {"items": [{"id": 1, "code": "a"}, {"id": "x" * 5000, "code": "b"}]})
        assert info.value.code == "bad_request" and "item 1's id" in info.value.message
        rows = file_check(worker, [{"id": ["a", 1, {"b": None}], "code": "prelude"}])
        assert rows[0]["id"] == ["a", 1, {"b": None}], "a small id of any plain shape comes back as it was"
