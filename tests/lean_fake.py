"""Helpers for tests against the misbehaving FAKE REPL (leanworker.fixtures.repl_fake, a simulator, not Lean)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import psutil

import leanworker as lw
from conftest import pid_gone

REPL = "leanworker.lean:repl"


def fake_command(state: Path, *extra: str) -> str:
    return " ".join([sys.executable, "-m", "leanworker.fixtures.repl_fake", "--state", str(state), *extra])


def fake_key(state: Path, *extra: str, imports: tuple[str, ...] = ("Mathlib",),
             options: tuple[tuple[str, Any], ...] = ()) -> lw.SessionKey:
    return lw.SessionKey(REPL, imports=imports, options=(("repl", fake_command(state, *extra)), *options))


def check(worker: lw.Worker, codes: list[str], timeout: float | None = 5.0) -> tuple[list[dict[str, Any]],
                                                                                     dict[str, Any]]:
    """Rows (in item order) and the check's metadata."""
    stream = worker.stream("check", {"items": [{"id": i, "code": c} for i, c in enumerate(codes)],
                                     "timeout": timeout})
    rows = [row.payload for row in stream]
    assert stream.summary is not None and isinstance(stream.summary.metadata, dict)
    return rows, stream.summary.metadata


def own(row: dict[str, Any], tag: str, status: str = "ok") -> bool:
    """The row is the verdict of the item tagged ``tag`` (the simulator echoes ``TAG:<tag>`` as an info message)."""
    return row["status"] == status and [m["data"] for m in row["messages"] if m["severity"] == "info"] == [tag]


def started_pids(state: Path) -> dict[int, str]:
    """Every process a fake REPL logged: the fakes themselves and the processes they started."""
    log = state / "pids"
    if not log.exists():
        return {}
    return {int(pid): what for what, pid in (line.split() for line in log.read_text().splitlines())}


def alive(pids: dict[int, str]) -> dict[int, str]:
    return {pid: what for pid, what in pids.items() if not pid_gone(pid)}


def repl_children(worker_pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(worker_pid).children(recursive=True) if "repl_fake" in " ".join(p.cmdline())]
