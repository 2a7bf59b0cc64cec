"""The sandbox: bubblewrap's command line as a pure decision, then real workers under it, attacked from inside by
the escape fixture (fixtures/escape.py): every attempt fails, the worker still answers, nothing outlives it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import FAST, close_parent, pid_gone, wait_for

import leanworker as lw
from leanworker.actors.core.ceilings import JOIN_SCRIPT, joining
from leanworker.actors.core.sandbox import (SANDBOX_USER, SandboxSpec, bwrap_argv, find_bwrap, minimal_paths,
                                           module_paths)

ESCAPE = "leanworker.fixtures.escape:capability"
needs_bwrap = pytest.mark.skipif(find_bwrap() is None, reason="bubblewrap (bwrap) is not installed here; .ci/run "
                                                              "installs it (apt-get install bubblewrap)")


# -- the command line, pure ------------------------------------------------------------------------------------------


def spec(**changes: object) -> SandboxSpec:
    base = dict(bwrap="/usr/bin/bwrap", argv=("python", "-m", "leanworker.host"),
                read_only=("/usr", "/venv/lib", "/venv", "/tmp/ws"), hidden=(), cwd="/tmp/ws")
    base.update(changes)
    return SandboxSpec(**base)  # type: ignore[arg-type]


def pairs(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == option]


def test_the_command_line_unshares_everything_drops_capabilities_and_dies_with_its_parent() -> None:
    argv = bwrap_argv(spec())
    for flag in ("--die-with-parent", "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc",
                 "--unshare-uts"):
        assert flag in argv
    assert pairs(argv, "--uid") == [str(SANDBOX_USER)] and pairs(argv, "--gid") == [str(SANDBOX_USER)]
    assert pairs(argv, "--cap-drop") == ["ALL"]
    assert argv[argv.index("--") + 1:] == ["python", "-m", "leanworker.host"]
    assert pairs(argv, "--chdir") == ["/tmp/ws"]
    joined = " ".join(argv)
    for forbidden in ("--bind ", "--dev-bind", "--share-net", "rlimit-as", "--as-pid-1"):
        assert forbidden not in joined
    assert pairs(argv, "--remount-ro") == ["/"] and argv.index("--remount-ro") > argv.index("--ro-bind")


def test_binds_are_read_only_minimal_and_mounted_after_the_scratch_so_a_workspace_in_tmp_stays_visible() -> None:
    argv = bwrap_argv(spec())
    binds = pairs(argv, "--ro-bind")
    assert binds == ["/usr", "/venv", "/tmp/ws"]  # /venv/lib is inside /venv
    assert argv.index("--tmpfs") < argv.index("--ro-bind")
    assert pairs(argv, "--tmpfs") == ["/tmp"] and pairs(argv, "--size") == [str(256 * 2**20)]
    assert minimal_paths(["/a/b", "/a", "/ab", "/a/"]) == ["/a", "/ab"]


def test_only_the_workers_own_module_paths_are_shown_not_whatever_else_is_on_sys_path(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # a test runner puts the parent of a checkout on sys.path (/tmp, a home directory), python -m the working
    # directory: the worker never imports from them, so the sandbox must not show them
    stray, explicit = tmp_path / "stray", tmp_path / "explicit"
    monkeypatch.syspath_prepend(str(stray))
    paths = module_paths("leanworker.fixtures.capability:capability", {"PYTHONPATH": str(explicit)})
    assert str(stray) not in paths
    assert str(explicit) in paths, "what the worker inherits in PYTHONPATH it may import from"
    assert any(p.endswith("site-packages") for p in paths)


def test_hidden_paths_are_masked_after_the_binds_and_only_where_a_bind_shows_them() -> None:
    argv = bwrap_argv(spec(hidden=("/venv/keys.txt", "/tmp/ws/cache/", "/elsewhere/secret")))
    last_bind = max(i for i, word in enumerate(argv) if word == "--ro-bind" and argv[i + 1] != "/dev/null")
    mask = argv.index("/venv/keys.txt")
    assert argv[mask - 2:mask + 1] == ["--ro-bind", "/dev/null", "/venv/keys.txt"] and mask > last_bind
    assert "/tmp/ws/cache" in pairs(argv, "--tmpfs") and "/tmp/ws/cache" in pairs(argv, "--remount-ro")
    assert "/elsewhere/secret" not in argv


def test_rlimit_nproc_is_the_fallback_and_never_an_address_space_or_cpu_limit() -> None:
    argv = bwrap_argv(spec(max_processes=64, prlimit="/usr/bin/prlimit"))
    tail = argv[argv.index("--") + 1:]
    assert tail[:3] == ["/usr/bin/prlimit", "--nproc=64:64", "--"] and tail[3:] == ["python", "-m", "leanworker.host"]
    assert not any(word.startswith(("--as", "--cpu")) for word in tail)
    assert "prlimit" not in " ".join(bwrap_argv(spec(max_processes=64, prlimit=None)))


def test_the_join_shell_enters_every_group_before_it_runs_the_command() -> None:
    assert joining([], ["a", "b"]) == ["a", "b"]
    argv = joining([Path("/g1"), Path("/g2")], ["bwrap", "x"])
    assert argv[:3] == ["/bin/sh", "-c", JOIN_SCRIPT] and argv[4:] == ["/g1", "/g2", "--", "bwrap", "x"]


def test_a_ceiling_group_still_busy_is_removed_when_the_next_worker_starts(tmp_path: Path) -> None:
    from leanworker.actors.core.ceilings import Ceilings, prepare_ceilings

    group = tmp_path / "leanworker-1-1"  # stands for a cgroup whose last task is still exiting: rmdir fails
    (group / "task").mkdir(parents=True)
    Ceilings(groups=[group]).remove(wait=0.0)
    assert group.exists()
    (group / "task").rmdir()  # the task has gone
    prepare_ceilings(None, None, None)  # the next worker's start removes what was left
    assert not group.exists()


def test_a_sandbox_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="sandbox"):
        lw.WorkerConfig(sandbox="docker")
    with pytest.raises(ValueError, match="sandbox_max_processes"):
        lw.WorkerConfig(sandbox="auto", sandbox_max_processes=0)


# -- real workers under bubblewrap -------------------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[tuple[str, int]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield "127.0.0.1", server.getsockname()[1]
    finally:
        server.close()


def escape_request(tmp_path: Path, workspace: Path, listener: tuple[str, int], marker: float) -> dict[str, object]:
    """Files outside what is bound, in the workspace (bound read-only), in the venv (bound read-only), at the root;
    a secret outside every bind and a key file inside the workspace (hidden); a loopback port; 200 processes; a
    process in a session of its own."""
    secret = tmp_path / "secret.txt"
    secret.write_text("the service's secret")
    return {"write": [str(tmp_path / "outside.txt"), str(workspace / "planted.lean"), "/escaped.txt",
                      os.path.join(sys.prefix, "planted.txt")],
            "read": [str(secret), str(workspace / "keys.txt")],
            "connect": list(listener), "fork": 200, "leave_behind": marker}


def sleepers(marker: float) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if process.info["cmdline"] == ["sleep", f"{marker}"]:
            found.append(process)
    return found


@needs_bwrap
def test_every_escape_attempt_fails_and_the_worker_still_answers(tmp_path: Path,
                                                                listener: tuple[str, int]) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "keys.txt").write_text("k-1")  # the service's key file, say: hidden though its folder is bound
    (workspace / "cache").mkdir()
    (workspace / "cache" / "results.sqlite3").write_text("verdicts")  # and its cache, a hidden folder
    marker = 300 + os.getpid() % 1000 / 1000
    config = lw.WorkerConfig(startup_timeout=20.0, request_timeout=60.0, sandbox="bwrap", sandbox_max_processes=64,
                             sandbox_hidden=(str(workspace / "keys.txt"), str(workspace / "cache")))
    with lw.Worker(lw.SessionKey(ESCAPE, workspace=str(workspace)), config) as worker:
        request = escape_request(tmp_path, workspace, listener, marker)
        request["read"].append(str(workspace / "cache" / "results.sqlite3"))  # type: ignore[attr-defined]
        request["write"].append(str(workspace / "cache" / "planted"))  # type: ignore[attr-defined]
        report = worker.call("escape", request)
        identity = worker.call("identity")
        assert worker.call("echo", {"still": "here"}) == {"still": "here"}
    # /tmp inside is the sandbox's own scratch: a write there "succeeds" and lands nowhere the host can see
    scratch_write = report.pop(f"write {tmp_path / 'outside.txt'}")
    assert not (tmp_path / "outside.txt").exists(), scratch_write
    escaped = {attempt: outcome for attempt, outcome in report.items()
               if attempt != "leave_behind" and not outcome.startswith("blocked")}
    assert not escaped, escaped
    assert "after" in report["fork"] and "of 200 processes" in report["fork"]  # stopped at the ceiling
    assert not (workspace / "planted.lean").exists() and not Path(sys.prefix, "planted.txt").exists()
    assert not Path("/escaped.txt").exists()
    assert identity["uid"] == SANDBOX_USER and identity["cap_eff"] == "0000000000000000"
    assert identity["hostname"] == "leanworker-sandbox" and identity["ppid"] == 1  # the namespace's init
    assert wait_for(lambda: not sleepers(marker), timeout=10), "a process started in the sandbox outlived it"
    pids_groups = Path("/sys/fs/cgroup/pids")  # removed once the namespace's last tasks have exited
    assert wait_for(lambda: not list(pids_groups.glob(f"leanworker-{os.getpid()}-*")), timeout=30), \
        "the worker's cgroup v1 group was left behind"


def test_without_the_sandbox_the_same_attempts_succeed(tmp_path: Path, listener: tuple[str, int]) -> None:
    """The control: the fixture does detect an escape (so the test above can fail)."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    marker = 400 + os.getpid() % 1000 / 1000
    (workspace / "keys.txt").write_text("k-1")
    request = escape_request(tmp_path, workspace, listener, marker)
    request.update(fork=3, write=[str(workspace / "planted.lean")])
    try:
        with lw.Worker(lw.SessionKey(ESCAPE, workspace=str(workspace)), FAST) as worker:
            report = worker.call("escape", request)
        assert report["connect"].startswith("ESCAPED") and report["fork"].startswith("ESCAPED")
        assert report[f"write {workspace / 'planted.lean'}"].startswith("ESCAPED")
        assert report[f"read {tmp_path / 'secret.txt'}"].startswith("ESCAPED")
    finally:
        for process in sleepers(marker):  # unsandboxed, a setsid() process does leave: clean it up
            process.kill()


@needs_bwrap
def test_the_repl_runs_inside_the_sandbox_too() -> None:
    key = lw.SessionKey("leanworker.lean:repl", imports=("Mathlib",),
                        options=(("repl", f"{sys.executable} -m leanworker.fixtures.repl_sim"),))
    with lw.Worker(key, lw.WorkerConfig(startup_timeout=20.0, sandbox="bwrap")) as worker:
        rows = [row.payload for row in worker.stream("check", {"items": [
            {"id": 1, "code": "theorem a : True := trivial"}, {"id": 2, "code": "theorem b : True := sorry"},
            {"id": 3, "code": "theorem c : True := CRASH"}, {"id": 4, "code": "theorem d : True := trivial"}]})]
    assert [r["status"] for r in rows] == ["ok", "sorry", "crashed", "ok"]


SANDBOXED_PARENT = textwrap.dedent("""
    import time
    import leanworker as lw
    worker = lw.Worker(lw.SessionKey("leanworker.fixtures.escape:capability"),
                       lw.WorkerConfig(startup_timeout=20.0, sandbox="bwrap"))
    print(worker.snapshot().pid, flush=True)
    time.sleep(600)
""")


@needs_bwrap
def test_a_sandboxed_worker_dies_with_its_sigkilled_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", SANDBOXED_PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        outer = int(parent.stdout.readline())
        tree = [psutil.Process(outer), *psutil.Process(outer).children(recursive=True)]
        assert len(tree) >= 3  # bwrap, its namespace's init, the worker (and its guardian)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert wait_for(lambda: all(pid_gone(p.pid) for p in tree), timeout=10), "the sandbox outlived its parent"
    finally:
        close_parent(parent)


def test_sandbox_bwrap_without_bubblewrap_is_a_typed_start_failure(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap there (the worker's interpreter is an absolute path)
    with pytest.raises(lw.LeanWorkerError, match="bubblewrap"):
        lw.Worker(lw.SessionKey(ESCAPE), lw.WorkerConfig(startup_timeout=5.0, sandbox="bwrap"))
    with lw.Worker(lw.SessionKey(ESCAPE), lw.WorkerConfig(startup_timeout=10.0, sandbox="auto")) as worker:
        assert worker.call("echo", 1) == 1  # "auto" runs unsandboxed where bubblewrap is absent
