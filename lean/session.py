"""A session of the ``leanworker.lean:repl`` capability: one REPL, its header imported once, replaced when it fails.

The session owns the REPL's lifecycle: start and header import (with ``import_timeout``), replacement after a
timeout, a crash or a doubt, and the rule for a REPL that cannot be restarted: the request that needed it and every
later one in the same ``check`` get :class:`~leanworker.lean.faults.ReplUnavailable` (one restart attempt per
``check``, so a broken import costs one attempt, not one per item), and the next ``check`` tries once more.
"""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from leanworker.errors import CommandError
from leanworker.lean.driver import DEFAULT_MAX_ANSWER_BYTES, ReplProcess
from leanworker.lean.faults import ReplError, ReplUnavailable, ReplUnsolicited
from leanworker.lean.matching import is_error_object
from leanworker.lean.orphans import OrphanSweeper

REPL_ENV = "LEANWORKER_REPL"
DEFAULT_IMPORT_TIMEOUT = 300.0
_HEADER_ATTEMPTS = 2  # a header import in doubt (output out of step) is tried once more on a fresh REPL
IMPORT_TIMEOUT_HINT = (" (a large import can take minutes: raise the session option import_timeout, or leanworker "
                       "check --import-timeout; docs/lean.md)")


def find_repl(option: object, workspace: str | None) -> list[str]:
    """The REPL's command line: the ``repl`` session option, else ``$LEANWORKER_REPL``, else the project's built
    REPL under ``lake env``, else ``repl`` on PATH. Raises ``CommandError("repl_not_found")`` naming what was
    searched, or naming the program of a given command line that does not exist."""
    if isinstance(option, str) and option.strip():
        return check_executable(shlex.split(option), workspace, "the session option 'repl'")
    from_env = os.environ.get(REPL_ENV, "").strip()
    if from_env:
        return check_executable(shlex.split(from_env), workspace, f"${REPL_ENV}")
    built = Path(workspace or ".") / ".lake" / "packages" / "REPL" / ".lake" / "build" / "bin" / "repl"
    lake = shutil.which("lake")
    if built.is_file() and lake:
        return [lake, "env", str(built)]
    on_path = shutil.which("repl")
    if on_path:
        return [on_path]
    raise CommandError("repl_not_found", f"no Lean REPL found: searched the session option 'repl', ${REPL_ENV}, "
                                        f"{built} (with lake {'found' if lake else 'not found'}), and 'repl' on "
                                        "PATH. Build the REPL for the project's toolchain and set SessionKey(options="
                                        "(('repl', 'lake env /path/to/repl'),)) or LEANWORKER_REPL (docs/lean.md)")


def check_executable(argv: list[str], workspace: str | None, source: str) -> list[str]:
    """``argv`` with its program (and, for ``lake env PROGRAM``, that program too) found and executable, else
    ``CommandError("repl_not_found")``. Checked before the spawn because ``setpriv`` would hide a failed exec."""
    if not argv:
        raise CommandError("repl_not_found", f"{source} is an empty command line")
    programs = [0, 2] if len(argv) > 2 and Path(argv[0]).name == "lake" and argv[1] == "env" else [0]
    resolved = list(argv)
    for index in programs:
        found = _executable(argv[index], workspace)
        if found is None:
            raise CommandError("repl_not_found", f"the REPL command from {source}, {shlex.join(argv)!r}: "
                                                 f"{argv[index]!r} is not an executable file (looked "
                                                 f"{'in ' + (workspace or os.getcwd()) if '/' in argv[index] else 'on PATH'})")
        if index == 0:
            resolved[0] = found
    return resolved


def _executable(program: str, workspace: str | None) -> str | None:
    if "/" in program:
        path = Path(workspace or ".") / program if not os.path.isabs(program) else Path(program)
        return program if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(program)


def header(imports: tuple[str, ...]) -> str:
    """Exactly one ``import`` line per module, in order."""
    return "\n".join(f"import {module}" for module in imports)


class ReplSession:
    """One REPL process with the session's imports loaded once (its env is the base env of every item)."""

    def __init__(self, argv: list[str], workspace: str | None, imports: tuple[str, ...],
                 import_timeout: float | None = DEFAULT_IMPORT_TIMEOUT, *,
                 max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES, orphans: OrphanSweeper | None = None) -> None:
        self.argv = argv
        self.workspace = workspace
        self.imports = imports
        self.import_timeout = import_timeout
        self.max_answer_bytes = max_answer_bytes
        self.orphans = orphans or OrphanSweeper(adopting=False)
        self.restarts = 0
        self.headers_imported = 0
        self.replaced_out_of_turn = 0
        self.base_env: int | None = None
        self.process: ReplProcess | None = None
        self.unavailable: str | None = None  # why the last restart failed (until the next check tries again)
        _live_sessions.add(self)
        try:
            self.start()
        except CommandError:
            self.close()
            raise

    # -- start and restart ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """A fresh REPL with the header imported. Raises ``CommandError`` (``repl_not_found``, ``import_failed``,
        ``repl_crashed``) when none can be had."""
        last: ReplError | None = None
        for _ in range(_HEADER_ATTEMPTS):
            self._spawn()
            try:
                self._import_header()
                return
            except ReplError as exc:
                last = exc
                if exc.reason != "out_of_step":
                    break
        assert last is not None
        what = f"importing {', '.join(self.imports)}" if self.imports else "starting the REPL"
        hint = IMPORT_TIMEOUT_HINT if last.reason == "timeout" else ""
        raise CommandError("repl_crashed" if last.reason == "repl_exited" else "import_failed",
                           f"{what}: {last}{hint}")

    def _spawn(self) -> None:
        if self.process is not None:
            self.process.kill()
        self.base_env = None
        try:
            self.process = ReplProcess(self.argv, cwd=self.workspace, max_answer_bytes=self.max_answer_bytes,
                                       orphans=self.orphans)
        except OSError as exc:
            self.process = None
            raise CommandError("repl_not_found", f"cannot start the REPL {shlex.join(self.argv)!r}: "
                                                 f"{exc.strerror or exc}") from None

    def _import_header(self) -> None:
        assert self.process is not None
        if not self.imports:
            return
        # The ledger has checked the env already: a command's answer carries env 0 on a fresh REPL, else it is
        # out of step (so -1, 1.5, true or 1e30 never become the base env).
        answer = self.process.exchange({"cmd": header(self.imports)}, self.import_timeout)
        self.headers_imported += 1
        failure = _header_failure(answer)
        if failure is not None:
            self.process.kill()
            raise CommandError("import_failed", f"importing {', '.join(self.imports)} failed: {failure}")
        self.base_env = answer["env"]

    def begin_check(self) -> None:
        """A new ``check``: a REPL that could not be restarted is tried once more."""
        self.unavailable = None
        self.orphans.reap(self._keep())

    def ensure_alive(self) -> ReplProcess:
        """The running REPL, or a fresh one (header re-imported). Raises :class:`ReplUnavailable`."""
        if self.process is not None and self.process.alive:
            return self.process
        if self.unavailable is not None:
            raise ReplUnavailable(f"not run: {self.unavailable}")
        self.restarts += 1
        try:
            self.start()
        except CommandError as exc:
            if self.process is not None:
                self.process.kill()
            self.unavailable = f"the REPL could not be restarted ({exc.message})"
            raise ReplUnavailable(self.unavailable) from None
        assert self.process is not None
        return self.process

    # -- requests -------------------------------------------------------------------------------------------------

    def exchange(self, body: dict[str, Any], timeout: float | None,
                 cancelled: Callable[[], bool] | None = None) -> Any:
        """Send one request to a live REPL and return its matched answer; raises a :class:`ReplError`. Output seen
        before the request was sent replaces the REPL, and the request goes to the fresh one."""
        try:
            return self.ensure_alive().exchange(body, timeout, cancelled)
        except ReplUnsolicited:
            self.replaced_out_of_turn += 1
            return self.ensure_alive().exchange(body, timeout, cancelled)

    @property
    def last_answer_bytes(self) -> int:
        """The size of the last answer accepted, as the REPL wrote it."""
        return self.process.last_answer_bytes if self.process is not None else 0

    def item_body(self, code: str) -> dict[str, Any]:
        """The command for one item: its code on the base env (no env without imports)."""
        body: dict[str, Any] = {"cmd": code}
        if self.base_env is not None:
            body["env"] = self.base_env
        return body

    def _keep(self) -> list[int]:
        return [self.process.pid] if self.process is not None and self.process.alive else []

    def close(self) -> None:
        """End the REPL and everything it started."""
        _live_sessions.discard(self)
        if self.process is not None:
            self.process.close()
        self.orphans.sweep()


def _header_failure(answer: Any) -> str | None:
    """Why the header's answer is not a successful import (an error object, error messages), or None."""
    if is_error_object(answer):
        return str(answer["message"])
    messages = answer.get("messages", [])
    if not isinstance(messages, list):
        return f"the answer's messages are {type(messages).__name__}, not a list"
    errors = [m for m in messages if not isinstance(m, dict) or m.get("severity") == "error"]
    if errors:
        return "; ".join(str(m.get("data") if isinstance(m, dict) else m) for m in errors)
    return None


_live_sessions: weakref.WeakSet[ReplSession] = weakref.WeakSet()


@atexit.register
def _close_live_sessions() -> None:
    """The worker is exiting (a ``stop``): end every REPL tree now, not when the guardian gets to it."""
    for session in list(_live_sessions):
        session.close()
