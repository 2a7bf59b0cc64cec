"""The Lean layer against the REPL SIMULATOR (leanworker.fixtures.repl_sim; no Lean toolchain here): framing,
base-env reuse, every check status, hangs and crashes mid-batch, malformed input, a missing REPL, and no REPL left
behind (issue 10)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import leanworker as lw
from conftest import FAST, close_parent, pid_gone, wait_for

SIM = f"{sys.executable} -m leanworker.fixtures.repl_sim"
REPL = "leanworker.lean:repl"


def key(imports: tuple[str, ...] = ("Mathlib",)) -> lw.SessionKey:
    return lw.SessionKey(REPL, imports=imports, options=(("repl", SIM),))


@pytest.fixture
def sim_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "imports.log"
    monkeypatch.setenv("LEANWORKER_REPL_SIM_LOG", str(log))
    return log


@pytest.fixture
def worker(sim_log: Path) -> Iterator[lw.Worker]:
    with lw.Worker(key(), FAST) as worker:
        yield worker


def repl_pids(worker_pid: int) -> list[int]:
    return [p.pid for p in psutil.Process(worker_pid).children(recursive=True)
            if "repl_sim" in " ".join(p.cmdline())]


def check(worker: lw.Worker, *codes: str, timeout: float | None = None) -> tuple[list[dict[str, object]], object]:
    stream = worker.stream("check", {"items": [{"id": i, "code": c} for i, c in enumerate(codes)],
                                     "timeout": timeout})
    rows = [row.payload for row in stream]
    return rows, stream.summary.metadata if stream.summary else None


def test_the_header_is_imported_once_and_items_run_on_its_env(worker: lw.Worker, sim_log: Path) -> None:
    rows, meta = check(worker, "theorem a : True := trivial", "theorem b : True := trivial")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    rows, meta = check(worker, "theorem c : True := trivial")
    assert sim_log.read_text().splitlines() == ["import Mathlib"], "one header import per REPL"
    assert isinstance(meta, dict) and meta["headers_imported"] == 1


def test_every_check_status_with_the_repls_messages_and_sorries_unchanged(worker: lw.Worker) -> None:
    rows, meta = check(worker, "theorem a : True := trivial", "theorem b : True := sorry",
                       "def c := ERROR", "import Foo\ndef d := 1", "HANG", "CRASH", timeout=1.0)
    assert [r["status"] for r in rows] == ["ok", "sorry", "error", "error", "timeout", "crashed"]
    assert rows[1]["sorries"][0]["goal"] == "⊢ True" and rows[1]["sorries"][0]["pos"] == {"line": 1, "column": 20}
    assert rows[2]["messages"][0]["data"] == "unknown identifier 'ERROR'"
    assert "beginning of the file" in rows[3]["messages"][0]["data"]
    assert "uncaught exception: simulated crash" in rows[5]["error"]
    assert all(isinstance(r["elapsed_s"], float) for r in rows) and [r["id"] for r in rows] == list(range(6))
    assert isinstance(meta, dict)
    assert meta["by_status"] == {"ok": 1, "sorry": 1, "error": 2, "timeout": 1, "crashed": 1}


def test_a_hang_and_a_crash_cost_only_their_item_and_the_header_is_re_imported(worker: lw.Worker,
                                                                             sim_log: Path) -> None:
    rows, meta = check(worker, "theorem a : True := trivial", "HANG", "theorem b : True := sorry", "CRASH",
                       "theorem c : True := trivial", timeout=1.0)
    assert [r["status"] for r in rows] == ["ok", "timeout", "sorry", "crashed", "ok"]
    assert isinstance(meta, dict) and meta["repl_restarts"] == 2
    assert sim_log.read_text().splitlines() == ["import Mathlib"] * 3
    assert worker.snapshot().restarts == {}, "the worker itself stayed warm"


def test_run_passes_one_request_and_returns_the_response_unchanged(worker: lw.Worker) -> None:
    assert worker.call("run", {"cmd": "theorem x : True := trivial", "env": 0}) == {"env": 1}
    assert worker.call("run", {"cmd": "x", "env": 99}) == {"message": "Unknown environment."}
    response = worker.call("run", {"cmd": "example : True := sorry", "env": 0})
    assert response["sorries"][0]["proofState"] == 0 and response["env"] == 2  # error objects allocate no env
    assert worker.call("run", {"proofState": 0, "tactic": "trivial"})["proofStatus"] == "Completed"


def test_malformed_input_kills_the_repl_and_the_next_request_gets_a_fresh_one(worker: lw.Worker) -> None:
    with pytest.raises(lw.CommandError) as info:
        worker.call("run", {"neither": "cmd nor tactic"})
    assert info.value.code == "repl_crashed"
    assert "status 1" in info.value.message and "uncaught exception" in info.value.message
    assert worker.call("run", {"cmd": "theorem y : True := trivial", "env": 0}) == {"env": 1}


def test_many_multi_line_responses_in_a_row_keep_the_framing(worker: lw.Worker) -> None:
    codes = [f"theorem t{i} : True := sorry\n-- a line\ndef u{i} := ERROR" for i in range(25)]
    rows, meta = check(worker, *codes)
    assert [r["status"] for r in rows] == ["error"] * 25  # a second blank line would have killed the REPL
    assert isinstance(meta, dict) and meta["repl_restarts"] == 0


def test_a_missing_repl_is_a_command_error_that_says_where_it_looked() -> None:
    config = lw.WorkerConfig(env={"PATH": "/nonexistent", "LEANWORKER_REPL": ""}, startup_timeout=10)
    with pytest.raises(lw.CommandError) as info:
        lw.Worker(lw.SessionKey(REPL, imports=("Mathlib",)), config)
    assert info.value.code == "repl_not_found"
    assert "LEANWORKER_REPL" in info.value.message and "'repl'" in info.value.message


def test_the_repl_is_gone_after_the_workers_shutdown(sim_log: Path) -> None:
    worker = lw.Worker(key(), FAST)
    pid = worker.snapshot().pid
    assert pid is not None
    repls = repl_pids(pid)
    assert len(repls) == 1
    worker.shutdown()
    assert wait_for(lambda: pid_gone(repls[0]), timeout=10)


def test_the_repl_is_gone_after_the_parent_is_sigkilled(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import time
        import leanworker as lw
        worker = lw.Worker(lw.SessionKey("{REPL}", imports=("Mathlib",), options=(("repl", {SIM!r}),)))
        print(worker.snapshot().pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        worker_pid = int(parent.stdout.readline())
        assert wait_for(lambda: len(repl_pids(worker_pid)) == 1, timeout=10)
        repl = repl_pids(worker_pid)[0]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert wait_for(lambda: pid_gone(repl) and pid_gone(worker_pid), timeout=10)
    finally:
        close_parent(parent)


def test_find_toolchain_says_plainly_what_was_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lean-toolchain").write_text("leanprover/lean4:v4.33.0-rc2\n")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("ELAN_HOME", str(tmp_path / "no-elan"))
    found = lw_lean().find_toolchain(tmp_path)
    assert found.requested == "leanprover/lean4:v4.33.0-rc2" and found.lean is None and found.lake is None
    assert "lean not found" in found.describe() and "lake not found" in found.describe()
    assert len(found.fingerprint) == 16


def lw_lean():  # type: ignore[no-untyped-def]
    import leanworker.lean

    return leanworker.lean


def test_leanworker_check_end_to_end_with_two_import_headers(tmp_path: Path, sim_log: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text("\n".join(json.dumps(item) for item in [
        {"id": "a", "code": "import Mathlib\ntheorem a : True := trivial"},
        {"id": "b", "code": "import Mathlib\n\ntheorem b : True := sorry"},
        {"id": 3, "code": "import Std\ndef c := ERROR"},
        {"id": "e", "code": "import Std\nHANG"},
    ]) + "\n")
    output = tmp_path / "results.jsonl"
    done = subprocess.run([sys.executable, "-m", "leanworker", "check", str(items), "--repl", SIM, "--timeout",
                           "1", "--output", str(output), "--workers", "1"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stderr  # an item timed out: not every item has a verdict
    results = {r["id"]: r for r in map(json.loads, output.read_text().splitlines())}
    assert {k: r["status"] for k, r in results.items()} == {"a": "ok", "b": "sorry", 3: "error", "e": "timeout"}
    assert results["b"]["sorries"][0]["pos"] == {"line": 3, "column": 20}, "positions point into the code as given"
    assert results[3]["messages"][0]["pos"] == {"line": 2, "column": 9}
    imported = sim_log.read_text().splitlines()  # one warm REPL per header (Std's again only after its hang)
    assert imported.count("import Mathlib") == 1 and set(imported) == {"import Mathlib", "import Std"}, imported
    assert set(results["a"]) >= {"id", "status", "messages", "sorries", "elapsed_s"}


def test_leanworker_check_refuses_a_bad_items_file_with_exit_2(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": 1, "code": "x"}\nnot json\n')
    done = subprocess.run([sys.executable, "-m", "leanworker", "check", str(items)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and done.stderr.startswith(f"leanworker check: {items}:2: not JSON")
