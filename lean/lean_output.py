"""What ``lean --json`` printed for one file, read as it arrives, in bounded memory; and the verdict it gives.

``lean --json`` prints one JSON object per message and line (keys sorted): ``caption``, ``data`` (the text),
``endPos``, ``fileName``, ``isSilent``, ``keepFullRange``, ``kind``, ``pos``, ``severity`` (``information``,
``warning`` or ``error``). Checked against Lean 4.35.0 (docs/lean.md). A message is kept as the REPL gives it,
``{"severity", "pos", "endPos", "data"}`` with the REPL's severity words (``info``, ``warning``, ``error``), so rows
of both capabilities read alike. Lean's own warning for an unfinished proof is ``declaration uses `sorry```
(kind ``hasSorry``; older Lean quotes it 'sorry').

Memory and the row stay bounded whatever Lean (or a process it started) prints: messages and sorry positions are kept
while their size as JSON fits :data:`MESSAGE_BUDGET_BYTES`, the rest only counted; a message the worker protocol
cannot carry (a lone surrogate, an int past 2**64) is counted, never kept; every error and sorry counts for the
verdict, kept or not.
"""

from __future__ import annotations

import json
import re
from typing import Any

from leanworker.lean.rows import wire_problem

KEPT_FIELDS = ("severity", "pos", "endPos", "data")
SEVERITY_WORDS = {"information": "info"}  # Lean's word -> the REPL's
SORRY_TEXTS = ("declaration uses `sorry`", "declaration uses 'sorry'")
MESSAGE_BUDGET_BYTES = 48 * 1024
"""Messages and sorry positions kept per item, as JSON: a row must fit in one frame (64 KiB at the smallest cap)."""
_MESSAGE_DEPTH = 8
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
    """Feed it stdout's bytes; it keeps messages and sorry positions (at most ``budget`` bytes encoded, the rest
    counted in ``dropped`` and ``sorries_dropped``), counts every error and sorry warning (kept or not:
    ``errors``, ``sorry_count``), and keeps a short tail of other output."""

    def __init__(self, budget: int = MESSAGE_BUDGET_BYTES, line_limit: int = LINE_LIMIT_BYTES) -> None:
        self.budget = budget
        self.line_limit = line_limit
        self.messages: list[dict[str, Any]] = []
        self.sorries: list[dict[str, Any]] = []
        self.errors = 0
        self.sorry_count = 0
        self.dropped = 0
        self.sorries_dropped = 0
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
        kept = {field: message.get(field) for field in KEPT_FIELDS}
        kept["severity"] = SEVERITY_WORDS.get(message["severity"], message["severity"])
        self._keep(kept)

    def _count(self, severity: str | None, message: dict[str, Any] | None) -> None:
        if severity == "error":
            self.errors += 1
        elif message is not None and is_sorry_warning(message):
            self.sorry_count += 1
            position = {"pos": message.get("pos"), "endPos": message.get("endPos")}
            size = self._size_of(position)
            if size is None or size > self.budget - self._used:
                self.sorries_dropped += 1
                return
            self._used += size
            self.sorries.append(position)

    def _keep(self, message: dict[str, Any]) -> None:
        text = message["data"] if isinstance(message["data"], str) else json.dumps(message["data"])
        message["data"] = ""
        frame = self._size_of(message)  # the message without its text: positions can be as large as anything
        if frame is None or not _carried(text):
            self.dropped += 1
            return
        data = text.encode("utf-8")
        room = self.budget - self._used - frame
        if len(data) > room:
            if room < 1024:
                self.dropped += 1
                return
            text, data = data[:room].decode("utf-8", errors="ignore") + _TRUNCATED, data[:room]
        message["data"] = text
        self._used += len(data) + frame
        self.messages.append(message)

    @staticmethod
    def _size_of(value: dict[str, Any]) -> int | None:
        """Size of ``value`` as a JSON line (what a result file holds; more than its frame's CBOR), or None when
        the worker protocol cannot carry it."""
        if wire_problem(value, "message", _MESSAGE_DEPTH) is not None:
            return None
        return len(json.dumps(value, ensure_ascii=False).encode("utf-8")) + 2

    def _other(self, line: bytes) -> None:
        self.other += line + b"\n"
        if len(self.other) > OTHER_OUTPUT_BYTES:
            del self.other[:-OTHER_OUTPUT_BYTES]

    def other_text(self) -> str:
        return self.other.decode("utf-8", errors="replace")


def _carried(text: str) -> bool:
    """Whether ``text`` can travel as text (no lone UTF-16 surrogate, which JSON allows and UTF-8 does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
