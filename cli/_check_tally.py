"""How ``leanworker check`` counts its results and what it concludes from them (pure; _check.py runs the pool and
prints; tests/test_cli_check_tally.py checks each rule without a worker).

An item is *checked* when Lean gave it a status; a batch that did not commit leaves its items *unchecked*, each with
the first line of its error (and marked when an injected fault cost it). The run is ok only when every item of the
file has a verdict (ok, sorry or error) and none is unchecked. After Ctrl-C one line says how many items have results
and the command that resumes. The deadlines of a request and of a session open are decided here too.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from leanworker.cli._output import plural
from leanworker.cli._results import Item

VERDICTS = ("ok", "sorry", "error")  # a Lean verdict; any other status means the item could not be checked
CHAOS_REQUEST_TIMEOUT = 30.0  # seconds an item may take with --chaos, at least: an injected hang ends there
OPEN_MARGIN = 60.0  # seconds a session open's own bound lies past its imports' (header import retried once)

Shape = Callable[[dict[str, Any], int], dict[str, Any]]  # a capability row of item ``index`` -> the result


def request_timeout(chaos: bool, item_timeout: float | None) -> float | None:
    """A request's deadline. An item has its own deadline in the worker, so none is needed; an injected hang has
    none but the request's, so with --chaos it ends at ``CHAOS_REQUEST_TIMEOUT`` or twice the item's, whichever is
    later."""
    return max(CHAOS_REQUEST_TIMEOUT, 2 * (item_timeout or 0.0)) if chaos else None


def open_timeout(mode: str, import_timeout: float) -> float | None:
    """A session open's deadline: a header import (retried once when in doubt) has ``import_timeout`` each, and the
    open's own bound lies past both, so that the import's message is the one a person reads. ``--mode file`` opens
    no REPL."""
    return 2 * import_timeout + OPEN_MARGIN if mode == "repl" else None


def error_line(error: BaseException | None) -> str:
    """An error in one line: its type and the first line of its message."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def resume_command(argv: list[str]) -> str:
    """The command line that resumes a run started with ``argv``: the same, with ``--resume``."""
    return shlex.join(["leanworker", *argv, *([] if "--resume" in argv else ["--resume"])])


def interrupted_line(output: str | None, argv: list[str], checked: int | None, total: int) -> str:
    """The one line after Ctrl-C; ``checked`` is None when no item had been checked yet."""
    if checked is None:
        if output is None:
            return "interrupted before any item was checked"
        return (f"interrupted before any item was checked: {output} is as it was; resume with: "
                f"{resume_command(argv)}")
    if output is None:
        return (f"interrupted: {checked} of {plural(total, 'item')} checked (printed above); to be able to resume, "
                "use --output FILE")
    return f"interrupted: {checked} of {plural(total, 'item')} have results in {output}; resume with: " \
           f"{resume_command(argv)}"


class CheckTally:
    """The results of one run as they come: counts by status, the unchecked items, and the run's status."""

    def __init__(self, items: int, todo: list[Item], simulated: bool, by_status: dict[str, int]) -> None:
        self.items = items
        self.todo = todo
        self.simulated = simulated
        self.by_status = by_status  # the items done before (--resume), then this run's
        self.skipped = items - len(todo)
        self.done_now = 0
        self.unchecked: list[dict[str, Any]] = []

    def take(self, result: Any, shape: Shape) -> list[dict[str, Any]]:
        """Count a batch result (``lw.BatchResult``); the results of its checked items, to be written."""
        if not result.committed:
            text = error_line(result.error)
            self.unchecked += [{"id": self.todo[int(i)].id, "error": text, **({"injected": True} if result.injected
                                                                               else {})} for i in result.modules]
            self.done_now += len(result.modules)
            return []
        checked: list[dict[str, Any]] = []
        for row in result.rows:
            index = int(row.payload["id"])
            item = self.todo[index]
            entry = {**shape(row.payload, index), "id": item.id, "code_sha256": item.code_sha256}
            if self.simulated:
                entry["simulated"] = True
            status = str(entry.get("status"))
            self.by_status[status] = self.by_status.get(status, 0) + 1
            self.done_now += 1
            checked.append(entry)
        return checked

    @property
    def checked(self) -> int:
        return sum(self.by_status.values())

    @property
    def injected(self) -> list[dict[str, Any]]:
        """The unchecked items an injected fault cost."""
        return [entry for entry in self.unchecked if entry.get("injected")]

    def status(self) -> str:
        """ok when every item of the file has a verdict and none is unchecked; else failed."""
        complete = not self.unchecked and all(s in VERDICTS for s in self.by_status)
        return "ok" if complete and self.checked == self.items else "failed"
