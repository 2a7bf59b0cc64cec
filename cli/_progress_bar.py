"""The progress bar of a long command (``check``'s items, ``run``'s modules), on stderr, shown on a terminal only:
``LABEL ━━━━ done/total UNIT`` and then the command's own columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ELAPSED = "elapsed"  # a column of the time since the bar started
REMAINING = "remaining"  # a column of the time left, as rich estimates it


class ProgressBar:
    """A bar of ``total`` units (at least one) followed by ``columns``: :data:`ELAPSED`, :data:`REMAINING`, or the
    name of a text field the command sets in :meth:`update` (empty until then)."""

    def __init__(self, label: str, total: int, unit: str, columns: Sequence[str]) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        clocks: dict[str, type[ProgressColumn]] = {ELAPSED: TimeElapsedColumn, REMAINING: TimeRemainingColumn}
        shown = [clocks[name]() if name in clocks else TextColumn(f"{{task.fields[{name}]}}") for name in columns]
        count = TextColumn(f"{{task.completed}}/{{task.total}} {unit}")
        self.progress = Progress(TextColumn(label), BarColumn(), count, *shown)
        empty: dict[str, Any] = {name: "" for name in columns if name not in clocks}
        self.task = self.progress.add_task(label, total=max(total, 1), **empty)
        self.progress.start()

    @property
    def elapsed(self) -> float | None:
        """Seconds since the bar started (None before it did)."""
        return self.progress.tasks[0].elapsed

    def update(self, completed: int, **fields: str) -> None:
        text: dict[str, Any] = fields  # rich types its keywords; these are the fields the columns show
        self.progress.update(self.task, completed=completed, **text)

    def close(self) -> None:
        self.progress.stop()
