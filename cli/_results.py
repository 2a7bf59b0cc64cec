"""``leanworker check``'s items and results files: reading items, and writing each result as it arrives, exactly
once across Ctrl-C, kills and ``--resume``.

An item is done when the results file holds a whole line with its id and the SHA-256 of its code
(``code_sha256``). On resume the file is read up to its last whole line; lines of the current items that are stale
(another code under the same id), repeated, or torn are dropped (the file is rewritten atomically), lines of other
ids are kept as they are, and only the items not done are checked. Each result is written and flushed as it
arrives, and the file is fsynced at least once a second and at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from leanworker.cli._output import UsageError, plural

FSYNC_EVERY_S = 1.0
DUPLICATES_SHOWN = 5


@dataclass(frozen=True)
class Item:
    """One line of the items file: its id as given, its code (or, with ``--mode file``, a file's path), the key
    that identifies it (the id, and the SHA-256 of the code or of the file's bytes), and its line number."""

    id: Any
    code: str | None
    path: str | None
    key: str
    line: int

    @property
    def code_sha256(self) -> str:
        return self.key.rsplit("\0", 1)[1]

    def source(self) -> dict[str, str]:
        """What a check request carries: ``{"code": ...}`` or ``{"path": ...}``."""
        return {"code": self.code} if self.code is not None else {"path": str(self.path)}


def id_text(item_id: Any) -> str:
    return json.dumps(item_id, sort_keys=True, ensure_ascii=False)


def item_key(item_id: Any, code_sha256: str) -> str:
    return f"{id_text(item_id)}\0{code_sha256}"


def _file_sha256(path: str, workspace: str | None) -> str:
    """The SHA-256 of a file item's bytes (relative paths start at the workspace), or of its path if unreadable."""
    file = Path(workspace or ".") / path
    try:
        return hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError:
        return hashlib.sha256(f"unreadable:{path}".encode()).hexdigest()


def read_items(path: Path, *, paths: bool = False, workspace: str | None = None) -> list[Item]:
    """The items of a JSON-lines file of ``{"id": ..., "code": "..."}`` (with ``paths``, ``{"id": ..., "path":
    "..."}`` too); any problem is a :class:`UsageError` (a line that is not such an object, no item at all, an id
    given twice)."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (some editors write one) is no item
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    shape = '{"id": ..., "code": "..."}' + (' or {"id": ..., "path": "..."}' if paths else "")
    items: list[Item] = []
    lines_of: dict[str, list[int]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(record, dict) or "id" not in record:
            raise UsageError(f"{path}:{number}: an item is {shape}")
        if isinstance(record.get("code"), str):
            code, file = record["code"], None
            digest = hashlib.sha256(code.encode("utf-8")).hexdigest()
        elif paths and isinstance(record.get("path"), str):
            code, file = None, record["path"]
            digest = _file_sha256(file, workspace)
        else:
            raise UsageError(f"{path}:{number}: an item is {shape}")
        items.append(Item(record["id"], code, file, item_key(record["id"], digest), number))
        lines_of.setdefault(id_text(record["id"]), []).append(number)
    if not items:
        raise UsageError(f"{path} has no items (one {shape} JSON object a line): nothing to check")
    repeated = [(name, lines) for name, lines in lines_of.items() if len(lines) > 1]
    if repeated:
        shown = "; ".join(f"{name} (lines {', '.join(map(str, lines))})" for name, lines in repeated[:DUPLICATES_SHOWN])
        more = f"; and {len(repeated) - DUPLICATES_SHOWN} more" if len(repeated) > DUPLICATES_SHOWN else ""
        raise UsageError(f"{path}: {len(repeated)} duplicate item id{'s' if len(repeated) > 1 else ''}: "
                         f"{shown}{more}; each id must be unique")
    return items


@dataclass
class Resumed:
    """What an earlier run left in the results file: the keys done and their results' statuses."""

    done: set[str]
    statuses: dict[str, int]


def resume(path: Path, items: list[Item], simulated: bool = False) -> Resumed:
    """Read ``path`` (if it exists), keep what is whole and current, rewrite it atomically when something was
    dropped, and return what is done. Results of the REPL simulator never count as done for a check on Lean, nor
    the other way round: a file that holds such results for these items is refused (:class:`UsageError`), and so is
    a file another check is writing now (it holds the lock :meth:`ResultWriter.to_file` takes)."""
    try:
        held = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return Resumed(set(), {})
    with held:  # locked while it is read and rewritten: a check writing it now refuses this one before any change
        _lock_exclusively(held, path)
        return _resume_read(path, held.read(), items, simulated)


def _resume_read(path: Path, data: bytes, items: list[Item], simulated: bool) -> Resumed:
    current = {item.key for item in items}
    current_ids = {item.key.rsplit("\0", 1)[0] for item in items}
    done: set[str] = set()
    statuses: dict[str, int] = {}
    records = [(raw, _record(raw)) for raw in data.splitlines(keepends=True)]
    other = sum(1 for _, record in records if record is not None and id_text(record["id"]) in current_ids
                and bool(record.get("simulated", False)) != simulated)
    if other:
        theirs, ours = ("the REPL simulator", "Lean") if not simulated else ("Lean", "the REPL simulator")
        raise UsageError(f"--output {path}: holds {plural(other, 'result')} of these items from {theirs}, and this "
                         f"check runs on {ours}: --resume would mix them (name another --output, or leave out "
                         "--resume to start afresh)")
    kept: list[bytes] = []
    dropped = 0
    for raw, record in records:
        if record is None:
            dropped += 1  # torn (never whole) or not ours
            continue
        key = item_key(record["id"], str(record.get("code_sha256")))
        if key in current and key not in done:
            done.add(key)
            statuses[str(record.get("status"))] = statuses.get(str(record.get("status")), 0) + 1
            kept.append(raw)
        elif id_text(record["id"]) in current_ids:
            dropped += 1  # stale (its code changed) or repeated
        else:
            kept.append(raw)  # another item set's result: left as it was
    if dropped:
        temporary = path.with_name(path.name + ".resume-tmp")
        with open(temporary, "wb") as out:
            out.writelines(kept)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    return Resumed(done, statuses)


def _record(raw: bytes) -> dict[str, Any] | None:
    if not raw.endswith(b"\n"):
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "id" in record else None


def _lock_exclusively(stream: IO[Any], path: Path) -> None:
    """Hold an exclusive ``flock`` on ``stream`` until it is closed (actors/core/file_lock.py)."""
    from leanworker.actors.core.file_lock import lock_exclusively

    if not lock_exclusively(stream.fileno()):
        raise UsageError(f"--output {path} is being written by another check now: let it end, or write to another "
                         "file")


class ResultWriter:
    """Writes one JSON line a result, flushed at once (stdout, or a file appended to and fsynced)."""

    def __init__(self, stream: IO[str], owned: bool, durable: bool = False) -> None:
        self._stream = stream
        self._owned = owned
        self._durable = durable  # a regular file, fsynced; a pipe or a terminal (--output /dev/stdout) cannot be
        self._synced = time.monotonic()

    @classmethod
    def to_file(cls, path: Path, append: bool) -> ResultWriter:
        """Append to ``path``, or write it anew (a pipe or a terminal: write to it). A regular file is locked (``flock``) while it is written, from
        before it is truncated: a second check given the same output is refused (``UsageError``) and changes
        nothing."""
        try:
            stream = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close(); truncated once locked
        except OSError as exc:
            raise UsageError(f"--output {path}: cannot write: {exc.strerror or exc}") from None
        regular = stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
        try:
            if regular:
                _lock_exclusively(stream, path)
                if not append:
                    stream.truncate(0)
        except BaseException:
            stream.close()
            raise
        return cls(stream, owned=True, durable=regular)

    def write(self, result: dict[str, Any]) -> None:
        self._stream.write(json.dumps(result, ensure_ascii=False) + "\n")
        self._stream.flush()
        if self._durable and time.monotonic() - self._synced >= FSYNC_EVERY_S:
            os.fsync(self._stream.fileno())
            self._synced = time.monotonic()

    def close(self) -> None:
        if self._owned:
            self._stream.flush()
            if self._durable:
                os.fsync(self._stream.fileno())
            self._stream.close()
