"""The first session of a run, opened before any batch: a set-up that cannot work stops the run there, once.

On a local pool the first batch's session is opened through a lease and kept warm for the run (the pool gives that
worker the first batch of its key), so an expensive import is paid once, not once more to validate. Where every
batch shares that key, or the failure is not about the key's imports (the capability cannot load, no REPL can
start), the run stops with one line (exit status 2) instead of failing every batch. On Ray the same rule is applied
to the first result instead.
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


def open_first_session(pool: Any, batches: Sequence[Any], command: str) -> None:
    """Open the first batch's session on ``pool`` (it stays warm for the run); check that ``command`` exists.
    Raises :class:`UsageError` when the run cannot work."""
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
        return  # only this key's batches fail; the others may run
    if command not in commands:
        own = ", ".join(c for c in commands if not c.startswith(BUILT_IN_PREFIX)) or "none"
        raise UsageError(f"--command {command}: {key.capability} has no such command (its commands: {own})")


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
