"""The process-tree helper the runtime and ``lean/`` share (actors/core/process_tree.py): a whole tree is killed
together, including descendants that left the group or were re-parented, and a tree that forks while it is being
killed leaves nothing behind. Ordinary processes here; tests/test_real_lean.py does the same to real Lean."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import uuid

import pytest

import leanworker as lw
from conftest import FAST, FAULTS, pid_gone, wait_for
from leanworker.actors.core.process_tree import (
    ProcStat,
    descendants_in,
    kill_tree,
    nothing_but_zombies,
    proc_table,
    reap,
    sample_tree_mib,
    spawn_group,
    tree_members,
)

PY = sys.executable


def children_of(pid: int) -> list[int]:
    return [entry.pid for entry in descendants_in(proc_table(), pid)]


def spawn(script: str, *, session: bool = False) -> subprocess.Popen[bytes]:
    if session:
        return subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    return spawn_group([PY, "-c", script], stdout=subprocess.PIPE)


def read_pids(process: subprocess.Popen[bytes], count: int) -> list[int]:
    assert process.stdout is not None
    return [int(process.stdout.readline()) for _ in range(count)]


def test_descendants_are_found_by_parent_pid_nearest_first() -> None:
    table = [ProcStat(10, 1, 10, 10, False), ProcStat(11, 10, 10, 10, False), ProcStat(12, 11, 12, 12, False),
             ProcStat(13, 1, 13, 13, False)]
    assert [entry.pid for entry in descendants_in(table, 10)] == [11, 12]
    assert descendants_in(table, 13) == []


def test_a_tree_left_with_zombies_only_needs_no_freeze_and_a_live_member_does() -> None:
    leader = ProcStat(10, 1, 10, 10, True)
    zombie_in_group, zombie_elsewhere = ProcStat(11, 1, 10, 10, True), ProcStat(12, 1, 12, 10, True)
    assert nothing_but_zombies(10, {10}, set(), [leader, zombie_in_group])
    assert nothing_but_zombies(10, {10}, {12}, [leader, zombie_in_group, zombie_elsewhere])
    assert not nothing_but_zombies(10, {10}, set(), [leader, ProcStat(11, 1, 10, 10, False)]), "a live group member"
    assert not nothing_but_zombies(10, {10}, {12}, [leader, ProcStat(12, 10, 12, 12, False)]), "a live descendant"
    assert nothing_but_zombies(10, {10}, set(), [leader, ProcStat(99, 1, 99, 99, False)]), "not of the tree"
    assert not nothing_but_zombies(10, {10}, set(), [ProcStat(10, 1, 10, 10, False), zombie_in_group]), \
        "a live leader can fork"


# SYS_exit (not exit_group): it ends the calling thread alone.
SYS_EXIT = {"x86_64": 60, "aarch64": 93}.get(os.uname().machine)


@pytest.mark.skipif(SYS_EXIT is None, reason="the exit syscall's number is known here for x86_64 and aarch64 only")
def test_a_process_whose_main_thread_ended_while_another_runs_is_not_taken_for_a_zombie() -> None:
    # /proc says "Z" for such a process, yet its other thread can still fork: its tree must be frozen before the kill.
    leader = spawn(f"""
import ctypes, os, threading, time
threading.Thread(target=time.sleep, args=(600,)).start()
print(os.getpid(), flush=True)
ctypes.CDLL(None).syscall({SYS_EXIT}, 0)
""")
    try:
        read_pids(leader, 1)

        def main_thread_ended() -> bool:
            with open(f"/proc/{leader.pid}/stat", "rb") as stat:
                return stat.read().rpartition(b")")[2].split()[0] == b"Z"

        assert wait_for(main_thread_ended, timeout=20)
        assert [entry.zombie for entry in proc_table() if entry.pid == leader.pid] == [False], "a thread still runs"
    finally:
        kill_tree(leader.pid)
        reap(leader, 10)
        if leader.stdout is not None:
            leader.stdout.close()


def test_a_spawned_process_leads_its_own_group_in_our_session() -> None:
    process = spawn_group([PY, "-c", "import time; time.sleep(60)"])
    try:
        assert os.getpgid(process.pid) == process.pid
        assert os.getsid(process.pid) == os.getsid(0)
    finally:
        kill_tree(process.pid)
        assert reap(process, 10) == -signal.SIGKILL


def test_kill_tree_reaches_a_descendant_that_left_the_group_with_setsid() -> None:
    leader = spawn("""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
""")
    try:
        (escapee,) = read_pids(leader, 1)
        assert os.getsid(escapee) == escapee != os.getsid(leader.pid)
        kill_tree(leader.pid)
        assert reap(leader, 10) == -signal.SIGKILL
        assert wait_for(lambda: pid_gone(escapee), timeout=10), "the setsid descendant outlived the kill"
    finally:
        if leader.stdout is not None:
            leader.stdout.close()


def test_kill_tree_of_a_session_leader_that_already_exited_reaches_the_groups_of_its_session() -> None:
    # The leader starts a child in a group of its own (same session) and exits: the child is re-parented, so only
    # its session still ties it to the leader.
    leader = spawn("""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], process_group=0)
print(child.pid, flush=True)
""", session=True)
    try:
        (orphan,) = read_pids(leader, 1)
        assert wait_for(lambda: os.waitid(os.P_PID, leader.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None)
        assert orphan not in children_of(leader.pid), "re-parented"
        groups, _ = tree_members(leader.pid)
        assert orphan in groups
        kill_tree(leader.pid)  # the leader is a zombie: its session id still names the orphan's group
        assert wait_for(lambda: pid_gone(orphan), timeout=10), "the orphaned group outlived the kill"
    finally:
        leader.wait(10)
        if leader.stdout is not None:
            leader.stdout.close()


def test_a_tree_that_keeps_forking_while_it_is_killed_leaves_no_process() -> None:
    # Each child leaves the group at once (setsid): only the parent-pid walk, frozen, can find all of them.
    token = f"forker-{uuid.uuid4().hex}"
    leader = spawn(f"""
import os, sys, time
print(0, flush=True)
for _ in range(400):  # as fast as fork goes: children appear between any two reads of the tree
    if os.fork() == 0:
        os.setsid()
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", "{token}"])
time.sleep(600)
""")
    try:
        read_pids(leader, 1)
        assert wait_for(lambda: len(children_of(leader.pid)) >= 10, timeout=20, interval=0.001)
        kill_tree(leader.pid)
        reap(leader, 10)
        assert wait_for(lambda: not _carrying(token), timeout=10), \
            f"children of the tree survived the kill: {_carrying(token)}"
    finally:
        for pid in _carrying(token):  # a failed run must not leave them behind
            os.kill(pid, signal.SIGKILL)
        if leader.stdout is not None:
            leader.stdout.close()


CHILD_LIFE, GAP, ROUNDS = 0.0005, 0.001, 20  # a child's life and the pause between forks (s); rounds of the test


def test_a_live_leader_whose_other_members_are_zombies_is_still_frozen_before_the_kill() -> None:
    # Only zombies beside the leader (children it never reaps), but the leader itself runs and keeps forking: a child
    # forked between the read of the tree and the SIGKILL leaves the group (setsid) and stays only if its parent was
    # killed meanwhile. Freezing the leader first finds it by parent pid; reading once does not.
    token = f"forker-{uuid.uuid4().hex}"
    script = f"""
import os, sys, time
me = os.getpid()
print(0, flush=True)
while True:
    if os.fork() == 0:
        os.setsid()
        end = time.monotonic() + {CHILD_LIFE}
        while time.monotonic() < end:
            if os.getppid() != me:  # the leader was killed, not this child: it escaped the kill
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", "{token}"])
        os._exit(0)  # a zombie until the leader ends
    time.sleep({GAP})
"""
    try:
        for _ in range(ROUNDS):  # each round catches a fork in that gap now and then (1 in 10 or so unfrozen)
            leader = spawn(script)
            read_pids(leader, 1)
            assert wait_for(lambda: len(children_of(leader.pid)) >= 20, timeout=20, interval=0.001)
            kill_tree(leader.pid)
            reap(leader, 10)
            if leader.stdout is not None:
                leader.stdout.close()
            assert wait_for(lambda: not _carrying(token), timeout=10), \
                f"a child of a live leader escaped the kill: {_carrying(token)}"
    finally:
        for pid in _carrying(token):  # a failed run must not leave them behind
            os.kill(pid, signal.SIGKILL)


def _carrying(token: str) -> list[int]:
    found = []
    for entry in proc_table():
        try:
            with open(f"/proc/{entry.pid}/cmdline", "rb") as cmdline:
                if token.encode() in cmdline.read():
                    found.append(entry.pid)
        except OSError:
            pass
    return [pid for pid in found if not pid_gone(pid)]


def test_sample_tree_mib_counts_descendants_and_says_none_for_a_missing_process() -> None:
    leader = spawn("""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "b = bytearray(64 << 20); import time; print(1, flush=True); time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
""")
    try:
        (child,) = read_pids(leader, 1)
        assert wait_for(lambda: (sample_tree_mib(child) or 0) > 64, timeout=10)
        whole = sample_tree_mib(leader.pid)
        alone = sample_tree_mib(child)
        assert whole is not None and alone is not None and whole > alone
        assert sample_tree_mib(leader.pid, "pss") is not None
    finally:
        kill_tree(leader.pid)
        reap(leader, 10)
        if leader.stdout is not None:
            leader.stdout.close()
    assert sample_tree_mib(leader.pid) is None


@pytest.mark.parametrize("containment", ["group", "auto"])
def test_a_worker_timeout_kill_reaches_a_descendant_that_left_the_group(containment: str) -> None:
    # With containment="group" (no cgroup) the parent-pid walk of the runtime's kill is what finds the escapee.
    config = dataclasses.replace(FAST, containment=containment)
    with lw.Worker(lw.SessionKey(FAULTS), config) as worker:
        stream = worker.stream("escapee", timeout=1.0)
        escapee = next(stream).payload["escapee"]
        with pytest.raises(lw.RequestTimeout):
            stream.collect()
        assert wait_for(lambda: pid_gone(escapee), timeout=10), "the escapee outlived the timeout kill"
