"""Items for ``leanworker check``: split each item's import header off, group items by import set into batches,
and map the REPL's positions back into the item's code as given; or, with ``--mode file``, batches of whole
files for ``"leanworker.lean:file"`` (Lean reads the header itself)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from leanworker.actors.core.config import SessionKey
from leanworker.planner import ImportHeader, parse_import_header
from leanworker.planner.plan import PlannedBatch

REPL_CAPABILITY = "leanworker.lean:repl"
FILE_CAPABILITY = "leanworker.lean:file"


@dataclass(frozen=True)
class CheckItem:
    """An item as given, its header's imports, the code the REPL sees (the body), and where the body starts."""

    id: Any
    code: str
    imports: tuple[str, ...]
    body: str
    line_shift: int  # body line 1 is code line 1 + line_shift
    column_shift: int  # ... and body column c on that first line is column c + column_shift


def split_item(item_id: Any, code: str, header: ImportHeader | None = None) -> CheckItem:
    """The item with its header split off (``header``: ``parse_import_header(code)``, when the caller has it)."""
    if header is None:
        header = parse_import_header(code)
    end = header.end
    line_start = code.rfind("\n", 0, end) + 1
    return CheckItem(item_id, code, header.modules, code[end:], code[:end].count("\n"), end - line_start)


def shift_position(position: Any, item: CheckItem) -> Any:
    """A REPL ``{line, column}`` in the body, as a position in the item's code."""
    if not isinstance(position, dict) or not isinstance(position.get("line"), int):
        return position
    line = position["line"]
    shifted = dict(position)
    if line >= 1:
        shifted["line"] = line + item.line_shift
        if line == 1 and isinstance(position.get("column"), int):
            shifted["column"] = position["column"] + item.column_shift
    return shifted


def shift_row(row: dict[str, Any], item: CheckItem) -> dict[str, Any]:
    """A result row with every message and sorry position pointing into the item's code as given."""
    out = dict(row)
    for field in ("messages", "sorries"):
        entries = []
        for entry in row.get(field) or []:
            if isinstance(entry, dict):
                entry = dict(entry)
                for where in ("pos", "endPos"):
                    if where in entry:
                        entry[where] = shift_position(entry[where], item)
            entries.append(entry)
        out[field] = entries
    return out


def plan_items(items: list[CheckItem], workspace: str | None, repl: str | None, toolchain: str | None,
               per_batch: int, import_timeout: float | None = None) -> list[PlannedBatch]:
    """One batch per import set (split into chunks of ``per_batch``); a batch's "modules" are item indexes.
    ``import_timeout``: the session option (None: the session's default)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(item.imports, []).append(index)
    options: tuple[tuple[str, Any], ...] = (("repl", repl),) if repl else ()
    if import_timeout is not None:
        options += (("import_timeout", import_timeout),)
    batches = []
    for imports, indexes in groups.items():
        key = SessionKey(REPL_CAPABILITY, workspace, imports, None, toolchain, options)
        for start in range(0, len(indexes), per_batch):
            names = tuple(str(i) for i in indexes[start:start + per_batch])
            digest = hashlib.sha256(json.dumps([list(imports), names]).encode()).hexdigest()
            batches.append(PlannedBatch(key, names, digest))
    return batches


def plan_file_items(count: int, workspace: str | None, lean: str | None, toolchain: str | None,
                    per_batch: int) -> list[PlannedBatch]:
    """Items 0..count-1 in batches of ``per_batch`` for the file capability (one session key: no header to share)."""
    key = SessionKey(FILE_CAPABILITY, workspace, (), None, toolchain, (("lean", lean),) if lean else ())
    batches = []
    for start in range(0, count, per_batch):
        names = tuple(str(i) for i in range(start, min(start + per_batch, count)))
        batches.append(PlannedBatch(key, names, hashlib.sha256(json.dumps(["file", names]).encode()).hexdigest()))
    return batches
