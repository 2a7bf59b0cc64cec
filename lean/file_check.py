"""The capability ``"leanworker.lean:file"``: each item checked by a ``lean --json`` process of its own (docs/lean.md).

No REPL to build: this is the path for a project that has a toolchain but no REPL, and for checking whole files.
Command ``check``: items ``{"id", "code"}`` (the code goes to ``lean --json --stdin``) or ``{"id", "path"}`` (``lean
--json PATH``, relative to the workspace), one row per item on stream ``results`` with the statuses of the REPL
capability's ``check`` plus ``memory``. The worker enforces each item's deadline and RSS limit on the Lean process
and kills its whole tree together (lean/bounded_run.py). Verified against real Lean 4.35.0 (prelude-only files).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import stat
from dataclasses import dataclass, field
from typing import Any

from leanworker.errors import CommandError
from leanworker.host import Capability, Context, SessionSpec
from leanworker.host.capability import RequestCancelled
from leanworker.lean.bounded_run import RunOutcome, run_bounded
from leanworker.lean.lean_output import LeanOutput, verdict
from leanworker.lean.orphans import OrphanSweeper, worker_orphans
from leanworker.lean.rows import fit_row, id_problem
from leanworker.lean.toolchain import LEAN_ENV, find_lean

STATUSES = ("ok", "sorry", "error", "timeout", "crashed", "memory")
PATH_MAX_BYTES = 4096
_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
BAD_REQUEST = ('check takes {"items": [{"id": ..., "code": "..."} or {"id": ..., "path": "..."}], '
               '"timeout": seconds or null, "memory_mib": MiB or null}')

file = Capability("leanworker.lean:file", version="0.1.0",
                  description="each item checked by its own `lean --json` process (no REPL needed)")


@dataclass(frozen=True)
class FileSession:
    """The ``lean`` command line and the workspace the checks run in; ``orphans`` kills what an item's Lean left
    behind outside its process group (the worker adopts such orphans)."""

    lean: tuple[str, ...]
    workspace: str | None
    orphans: OrphanSweeper = field(default_factory=lambda: OrphanSweeper(adopting=False))


@file.session
def open_session(spec: SessionSpec) -> FileSession:
    lean = find_lean(spec.options.get("lean"), spec.workspace)
    if lean is None:
        raise CommandError("lean_not_found", f"no lean found: searched the session option 'lean', ${LEAN_ENV}, "
                                            "`lake env lean` (a workspace with a lakefile, and lake), and 'lean' on "
                                            "PATH, $ELAN_HOME/bin and ~/.elan/bin (docs/lean.md)")
    if not lean or shutil.which(lean[0]) is None:  # the worker runs in the workspace: relative paths start there
        raise CommandError("lean_not_found", f"the lean command {shlex.join(lean)!r} does not name a program "
                                            "that can be run here")
    if spec.workspace is not None and not os.path.isdir(spec.workspace):
        raise CommandError("bad_workspace", f"the workspace {spec.workspace!r} is not a directory")
    return FileSession(tuple(lean), spec.workspace, worker_orphans())


def _validated(request: Any) -> tuple[list[dict[str, Any]], float | None, float | None]:
    if not isinstance(request, dict) or not isinstance(request.get("items"), list):
        raise CommandError("bad_request", BAD_REQUEST)
    timeout, memory = request.get("timeout"), request.get("memory_mib")
    for name, value in (("timeout", timeout), ("memory_mib", memory)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise CommandError("bad_request", f"{name} must be a positive number or null")
    for index, item in enumerate(request["items"]):
        if not isinstance(item, dict) or sum(isinstance(item.get(k), str) for k in ("code", "path")) != 1:
            raise CommandError("bad_request", f"item {index} needs exactly one of a text 'code' or 'path'")
        problem = id_problem(item.get("id"))
        if problem is not None:
            raise CommandError("bad_request", f"item {index}'s id {problem}")
        path = item.get("path")
        if isinstance(path, str) and (not path or "\0" in path or len(path.encode(errors="replace")) > PATH_MAX_BYTES):
            raise CommandError("bad_request", f"item {index}'s path must be a file name of 1 to {PATH_MAX_BYTES} "
                                              "bytes without NUL")
    return request["items"], timeout, memory


@file.command("check", streams=("results",))
def check(ctx: Context, request: Any) -> dict[str, Any]:
    """``{"items": [{"id", "code" | "path"}], "timeout": s, "memory_mib": MiB}`` -> one row per item on
    ``results``: ``{"id", "status", "messages", "sorries", "exit", "elapsed_s", "peak_rss_mib"}``, plus ``error``
    (a sentence) when Lean did not finish, and ``stderr_tail`` for a crash."""
    items, timeout, memory_mib = _validated(request)
    session: FileSession = ctx.session
    counts = dict.fromkeys(STATUSES, 0)
    for index, item in enumerate(items):
        ctx.check_cancelled()
        try:
            row = check_one(ctx, session, item, timeout, memory_mib)
        finally:
            session.orphans.sweep()  # what its Lean left in a session of its own, adopted by the worker
        counts[row["status"]] += 1
        ctx.row("results", fit_row(row, ctx.max_frame_bytes))
        ctx.progress("check", index + 1, len(items))
    return {"items": len(items), "by_status": counts, "lean": shlex.join(session.lean)}


def check_one(ctx: Context, session: FileSession, item: dict[str, Any], timeout: float | None,
              memory_mib: float | None) -> dict[str, Any]:
    """Run one item's ``lean --json`` under its limits; its row."""
    row: dict[str, Any] = {"id": item.get("id"), "messages": [], "sorries": []}
    if isinstance(item.get("path"), str):
        path = item["path"]
        problem = _not_a_lean_file(os.path.join(session.workspace or "", path), path)
        if problem is not None:
            return {**row, "status": "error", "error": problem, "exit": None, "elapsed_s": 0.0, "peak_rss_mib": None}
        # never taken for an option of lean (a file named "--run", "-Dx", "--plugin=...")
        argv, stdin = [*session.lean, "--json", f"./{path}" if path.startswith("-") else path], None
    else:
        argv, stdin = [*session.lean, "--json", "--stdin"], item["code"].encode("utf-8")
    output = LeanOutput()
    try:
        outcome = run_bounded(argv, on_stdout=output.feed, stdin=stdin, cwd=session.workspace, timeout=timeout,
                              memory_mib=memory_mib, cancelled=lambda: ctx.cancelled)
    except OSError as exc:
        return {**row, "status": "crashed", "error": f"cannot start {shlex.join(session.lean)!r}: {exc}",
                "exit": None, "elapsed_s": 0.0, "peak_rss_mib": None}
    if outcome.stopped_for == "cancelled":
        raise RequestCancelled()
    output.close()
    return {**row, **_fields(output, outcome, timeout, memory_mib)}


def _not_a_lean_file(full: str, path: str) -> str | None:
    """Why the item's ``path`` cannot be given to Lean (missing, unreadable, not a regular file), or None. Checked
    before Lean runs: a FIFO would block it, a device would feed it for ever."""
    try:
        mode = os.stat(full).st_mode  # through symlinks: what Lean would open
    except FileNotFoundError:
        return f"no such file: {path}"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    for test, kind in _FILE_KINDS:
        if test(mode):
            return f"{path} is not a Lean file: it is {kind}"
    if not stat.S_ISREG(mode):
        return f"{path} is not a Lean file: it is not a regular file"
    if not os.access(full, os.R_OK):
        return f"cannot read {path}: permission denied"
    return None


def _fields(output: LeanOutput, outcome: RunOutcome, timeout: float | None,
            memory_mib: float | None) -> dict[str, Any]:
    status = verdict(outcome.stopped_for, outcome.exit, output.errors, output.sorry_count)
    fields: dict[str, Any] = {
        "status": status, "messages": output.messages, "sorries": output.sorries, "exit": outcome.exit,
        "elapsed_s": round(outcome.elapsed_s, 6),
        "peak_rss_mib": round(outcome.peak_rss_mib, 1) if outcome.peak_rss_mib is not None else None,
    }
    if status == "timeout":
        fields["error"] = f"Lean did not finish within {timeout:g} s; its process tree was killed"
    elif status == "memory":
        fields["error"] = f"Lean's process tree passed {memory_mib:g} MiB of RSS; it was killed"
    elif status == "crashed":
        fields["error"] = _crash_sentence(outcome.exit)
        fields["stderr_tail"] = outcome.stderr_tail
    if output.dropped:
        fields["messages_dropped"] = output.dropped
    if output.sorries_dropped:
        fields["sorries_dropped"] = output.sorries_dropped
    if output.other:
        fields["other_output"] = output.other_text()
    return fields


def _crash_sentence(exit_status: int | None) -> str:
    if exit_status is None:
        return "Lean could not be reaped"
    if exit_status < 0:
        try:
            name = signal.Signals(-exit_status).name
        except ValueError:
            name = f"signal {-exit_status}"
        return f"Lean was killed by {name}"
    return f"Lean exited with status {exit_status} without an error message"


@file.check("lean")
def lean_check(session: FileSession) -> tuple[str, str]:
    """``lean --version`` through the session's command."""
    output = bytearray()
    try:
        outcome = run_bounded([*session.lean, "--version"], on_stdout=output.extend, cwd=session.workspace,
                              timeout=60)
    except OSError as exc:
        return ("error", f"{shlex.join(session.lean)}: {exc}")
    version = output.decode("utf-8", errors="replace").strip()
    if outcome.exit == 0 and version:
        return ("pass", f"{shlex.join(session.lean)}: {version}")
    return ("error", f"{shlex.join(session.lean)} --version: exit {outcome.exit}, {outcome.stderr_tail.strip()!r}")
