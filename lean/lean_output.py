"""What ``lean --json`` printed for one file, read as it arrives, in bounded memory; and the verdict it gives.

``lean --json`` prints one JSON object per message and line (keys sorted): ``caption``, ``data`` (the text),
``endPos``, ``fileName``, ``isSilent``, ``keepFullRange``, ``kind``, ``pos``, ``severity`` (``information``,
``warning`` or ``error``). Checked against Lean 4.35.0 (docs/lean.md). A message is kept as the REPL gives it,
``{"severity", "pos", "endPos", "data"}``, so rows of both capabilities read alike. Lean's own warning for an
unfinished proof is ``declaration uses `sorry``` (kind ``hasSorry``; older Lean quotes it 'sorry').
"""

from __future__ import annotations

import json
import re
from typing import Any

KEPT_FIELDS = ("severity", "pos", "endPos", "data")
SORRY_TEXTS = ("declaration uses `sorry`", "declaration uses 'sorry'")
MESSAGE_BUDGET_BYTES = 48 * 1024
"""Message text kept per item: a row must fit in one frame (64 KiB at the smallest cap)."""
LINE_LIMIT_BYTES = 1 << 20
OTHER_OUTPUT_BYTES = 4096
_SEVERITY = re.compile(rb'"severity"\s*:\s*"(\w+)"')
_TRUNCATED = " [truncated by leanworker]"


def is_sorry_warning(message: dict[str, Any]) -> bool:
    """Lean's "declaration uses 'sorry'" warning."""
    if message.get("severity") != "warning":
        return False
    return message.get("kind") == "hasSorry" or str(message.get("data", "")).strip() in SORRY_TEXTS


def verdict(stopped_for: str | None, exit_status: int | None, errors: int, sorries: int) -> str:
    """The status of one item: ``timeout``/``memory`` when it was stopped for that; ``crashed`` when Lean died of a
    signal, or failed without an error message; ``error`` when Lean reported one; ``sorry`` when it only warned that
    a declaration uses sorry; else ``ok``."""
    if stopped_for in ("timeout", "memory"):
        return stopped_for
    if exit_status is None or exit_status < 0:
        return "crashed"
    if errors:
        return "error"
    if exit_status != 0:
        return "crashed"
    return "sorry" if sorries else "ok"


class LeanOutput:
    """Feed it stdout's bytes; it keeps the messages (at most ``budget`` bytes of text, the rest counted in
    ``dropped``), counts every error and sorry warning (kept or not), and keeps a short tail of other output."""

    def __init__(self, budget: int = MESSAGE_BUDGET_BYTES, line_limit: int = LINE_LIMIT_BYTES) -> None:
        self.budget = budget
        self.line_limit = line_limit
        self.messages: list[dict[str, Any]] = []
        self.sorries: list[dict[str, Any]] = []
        self.errors = 0
        self.dropped = 0
        self.other = bytearray()
        self._used = 0
        self._line = bytearray()
        self._oversized = False

    def feed(self, chunk: bytes) -> None:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                self._extend(chunk[start:])
                return
            self._extend(chunk[start:end])
            self._end_line()
            start = end + 1

    def close(self) -> None:
        """End of output: a last line without a newline still counts."""
        if self._line or self._oversized:
            self._end_line()

    def _extend(self, part: bytes) -> None:
        self._line += part
        if len(self._line) > self.line_limit:  # keep only a tail, enough to find the severity (keys are sorted)
            self._oversized = True
            del self._line[:-256]

    def _end_line(self) -> None:
        line, oversized = bytes(self._line), self._oversized
        self._line.clear()
        self._oversized = False
        if oversized:
            found = _SEVERITY.search(line)
            self._count(found.group(1).decode() if found else None, None)
            self.dropped += 1
            return
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("severity"), str):
            self._other(line)
            return
        self._count(message["severity"], message)
        self._keep({field: message.get(field) for field in KEPT_FIELDS})

    def _count(self, severity: str | None, message: dict[str, Any] | None) -> None:
        if severity == "error":
            self.errors += 1
        elif message is not None and is_sorry_warning(message):
            self.sorries.append({"pos": message.get("pos"), "endPos": message.get("endPos")})

    def _keep(self, message: dict[str, Any]) -> None:
        text = message["data"] if isinstance(message["data"], str) else json.dumps(message["data"])
        data = text.encode("utf-8")
        room = self.budget - self._used - 128  # 128: the message's other fields
        if len(data) > room:
            if room < 1024:
                self.dropped += 1
                return
            text, data = data[:room].decode("utf-8", errors="ignore") + _TRUNCATED, data[:room]
        message["data"] = text
        self._used += len(data) + 128
        self.messages.append(message)

    def _other(self, line: bytes) -> None:
        self.other += line + b"\n"
        if len(self.other) > OTHER_OUTPUT_BYTES:
            del self.other[:-OTHER_OUTPUT_BYTES]

    def other_text(self) -> str:
        return self.other.decode("utf-8", errors="replace")
