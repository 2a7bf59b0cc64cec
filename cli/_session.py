"""The first session of a run, opened before any batch: a set-up that cannot work stops the run there, once.

On a local pool the first batch's session is opened through a lease and kept warm for the run (the pool gives that
worker the first batch of its key), so an expensive import is paid once, not once more to validate. Where every
batch shares that key, or the failure is not about the key's imports (the capability cannot load, no REPL can
start), the run stops with one line (exit status 2) instead of failing every batch. On Ray the same rule is applied
to the first result instead. For ``check``, when no import has shown that the Lean program answers at all, one
empty request does (:func:`check_lean_answers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from leanworker.cli._output import UsageError

# CommandError codes of a session open that no other key would escape: the capability, or the REPL, cannot start.
KEY_INDEPENDENT = frozenset({"capability_load", "repl_not_found"})
# What a first result failing with one of these says about the set-up (on Ray, where no session is opened first).
SET_UP_CODES = KEY_INDEPENDENT | {"session_open", "import_failed", "unknown_command"}
BUILT_IN_PREFIX = "leanworker."


def open_first_session(pool: Any, batches: Sequence[Any], command: str) -> bool:
    """Open the first batch's session on ``pool`` (it stays warm for the run); check that ``command`` exists.
    Raises :class:`UsageError` when the run cannot work; returns False when only that key's session failed (its
    batches will fail; the others may run)."""
    from leanworker.errors import CommandError, HandshakeError, LeanWorkerError

    key = batches[0].key
    shared = all(batch.key == key for batch in batches)
    from leanworker.actors.core.waits import lease_bound

    wait = lease_bound(pool.config)  # the queue, the start, the session open (an import may take minutes)
    try:
        with pool.lease(key, timeout=wait) as lease:
            commands = lease.metadata().commands
    except LeanWorkerError as exc:
        independent = isinstance(exc, HandshakeError) or (
            isinstance(exc, CommandError) and exc.code in KEY_INDEPENDENT)
        if shared or independent:
            raise UsageError(session_failure(key, exc)) from None
        return False  # only this key's batches fail; the others may run
    if command not in commands:
        own = ", ".join(c for c in commands if not c.startswith(BUILT_IN_PREFIX)) or "none"
        raise UsageError(f"--command {command}: {key.capability} has no such command (its commands: {own})")
    return True


def check_lean_answers(pool: Any, key: Any, mode: str, what: str, timeout: float,
                       memory_mib: int | None = None) -> None:
    """The Lean program of ``check`` answers at all, before any item runs: the REPL an empty command, or ``lean``
    an empty ``prelude`` file, on a session of ``key`` without imports (for a key without imports, the warm worker
    the run then uses). A program that exits or hangs there (a ``python`` without leanworker, a ``lake exe repl``
    that is not built, ``--lean false``) would cost every item; it stops the check in one line instead. Any answer,
    an error included, passes: only the program's own fate counts.

    ``what`` names the program for the line (``--repl COMMAND``). Raises :class:`UsageError`."""
    import dataclasses

    from leanworker.errors import CommandError, LeanWorkerError, RequestTimeout

    bare = dataclasses.replace(key, imports=())
    try:
        with pool.lease(bare) as lease:
            if mode == "file":
                request = {"items": [{"id": 0, "code": "prelude"}], "timeout": timeout, "memory_mib": memory_mib}
                with lease.stream("check", request, timeout=timeout + 30.0) as rows:
                    row = {"status": "ok"}
                    for answer in rows:
                        row = dict(answer.payload)
                if row.get("status") == "memory":
                    raise UsageError(f"--memory-mib {memory_mib}: lean needs more than that for an empty file")
                if row.get("status") in ("crashed", "timeout"):
                    tail = str(row.get("stderr_tail") or "").strip().splitlines()
                    raise UsageError(f"{what}: does not run as lean: {row.get('error')}"
                                     + (f" ({tail[-1]})" if tail else ""))
            else:
                lease.call("run", {"cmd": ""}, timeout=timeout)
    except RequestTimeout:
        raise UsageError(f"{what}: no answer to an empty command within {timeout:g} s") from None
    except CommandError as exc:
        if exc.code in ("repl_crashed", "repl_unavailable", "repl_not_found", "repl_timeout", "capability_load"):
            text = exc.message.replace(" (the next request gets a fresh REPL)", "")
            raise UsageError(f"{what}: the REPL does not run: {text.strip().splitlines()[0]}") from None
    except LeanWorkerError:
        return  # the worker's own trouble (say, one crash), not the program's: the run meets it, item by item


def shared_failure(result: Any, batches: Sequence[Any], committed_before: int) -> str | None:
    """The one line that stops a run at its first result, when that result shows a set-up every batch shares."""
    from leanworker.errors import CommandError, HandshakeError, StartupTimeout

    if result.committed or committed_before or not all(batch.key == result.batch.key for batch in batches):
        return None
    error = result.error
    if isinstance(error, (HandshakeError, StartupTimeout)) or (
            isinstance(error, CommandError) and error.code in SET_UP_CODES):
        if isinstance(error, CommandError) and error.code == "unknown_command":
            return f"--command: {error.message}"
        return session_failure(result.batch.key, error)
    return None


def session_failure(key: Any, error: BaseException) -> str:
    from leanworker.errors import CommandError

    if isinstance(error, CommandError) and error.code == "capability_load":
        return f"--capability {key.capability}: {error.message}"
    imports = f" (imports {', '.join(key.imports)})" if key.imports else ""
    text = error.message if isinstance(error, CommandError) else f"{type(error).__name__}: {error}"
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return f"cannot open a session of {key.capability}{imports}: {first}"
