"""Exactly-once output of a plan run: committed rows as JSON lines, and a journal of what was committed.

``PATH`` receives one JSON line per committed row: ``{"batch", "module_set", "stream", "seq", "payload"}`` (bytes
in payloads are written ``{"$bytes": "<hex>"}``). ``PATH.journal`` receives, after the rows of a batch result are
written and fsynced, one JSON line naming that result (its batch and module-set fingerprints, its modules, its row
count and the size of ``PATH`` after its rows), fsynced too. A result is committed exactly when its journal line is
whole on disk. On resume the journal is read up to its last whole line (a torn last line is cut off), ``PATH`` is
cut back to the size the last committed result left (rows written but never journaled are dropped), and the run
skips what is committed: so after any number of parent kills and resumes, every row of every committed result is
in ``PATH`` exactly once. While a run writes ``PATH`` it holds an exclusive ``flock`` on ``PATH.journal``: a second run
given the same output is refused (``UsageError``) before it changes anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leanworker.actors.core import locks
from leanworker.actors.core.file_lock import lock_exclusively
from leanworker.actors.core.results import Row
from leanworker.errors import UsageError

JOURNAL_VERSION = 1


class ResumeMismatch(UsageError, ValueError):
    """``resume=True`` found a journal of another plan, or output that does not match its journal."""


def module_set_fingerprint(batch_fingerprint: str, modules: Iterable[str]) -> str:
    """The fingerprint of one result's modules within its batch."""
    text = json.dumps({"batch": batch_fingerprint, "modules": sorted(modules)})
    return hashlib.sha256(text.encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, dict):
        return {(k.hex() if isinstance(k, bytes) else k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _line(record: dict[str, Any]) -> str:
    try:
        return json.dumps(record, ensure_ascii=False, allow_nan=True) + "\n"
    except (TypeError, ValueError):
        return json.dumps(_jsonable(record), ensure_ascii=False, allow_nan=True) + "\n"

@dataclass
class _JournalRead:
    committed: dict[str, set[str]] = field(default_factory=dict)  # batch fingerprint -> modules committed
    rows: int = 0
    end: int = 0  # the output's size after the last committed result
    good: int = 0  # the journal's bytes up to its last whole line


def _read_journal(journal_path: Path, data: bytes, plan_fingerprint: str) -> _JournalRead:
    """The journal's whole lines (a torn last line, written but never fsynced whole, ends the reading)."""
    read = _JournalRead()
    header_seen = False
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break
        try:
            record = json.loads(raw)
        except ValueError:
            break
        if not header_seen:
            if record.get("plan") != plan_fingerprint:
                raise ResumeMismatch(f"{journal_path} belongs to plan {str(record.get('plan'))[:16]}, not "
                                     f"{plan_fingerprint[:16]}; resume the same plan, or run without resume")
            header_seen = True
        else:
            read.committed.setdefault(record["batch"], set()).update(record["modules"])
            read.rows += int(record["rows"])
            read.end = int(record["end"])
        read.good += len(raw)
    if not header_seen:
        raise ResumeMismatch(f"{journal_path} has no readable header")
    return read


def committed_modules(output: str | os.PathLike[str], plan_fingerprint: str) -> dict[str, set[str]]:
    """What earlier runs of the plan committed to ``output``, by batch fingerprint, read without changing anything
    (empty when there is no journal). Raises :class:`ResumeMismatch` as a resumed run would."""
    path = Path(output)
    journal_path = path.with_name(path.name + ".journal")
    try:
        data = journal_path.read_bytes()
    except FileNotFoundError:
        return {}
    return _read_journal(journal_path, data, plan_fingerprint).committed



def _hold(path: Path, journal_path: Path) -> int:
    """An exclusive lock on the journal (``flock``; the file is created if missing), held until its descriptor is
    closed, by :meth:`OutputJournal.close` or the process's end: a second run writing the same output, in this
    process or another, is refused before it changes anything (where the file system has no ``flock``, there is
    no such guard)."""
    fd = os.open(journal_path, os.O_RDWR | os.O_CREAT, 0o666)
    if not lock_exclusively(fd):
        os.close(fd)
        raise UsageError(f"{path} is being written by another run now (its journal {journal_path.name} is locked): "
                         "let that run end, or write to another file")
    return fd


def _release(held: int | None) -> None:
    if held is not None:
        os.close(held)


class OutputJournal:
    """Writes committed rows exactly once across crashes and resumes (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], plan_fingerprint: str, resume: bool) -> None:
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.plan_fingerprint = plan_fingerprint
        self.committed: dict[str, set[str]] = {}  # batch fingerprint -> modules committed
        self.rows_recovered = 0
        self._lock = locks.lock("journal")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.journal_path.exists()
        self._held: int | None = _hold(self.path, self.journal_path)  # before anything of the output is changed
        try:
            if resume and existed:
                end = self._recover()
            else:
                end = 0
                with open(self.journal_path, "w", encoding="utf-8") as journal:
                    journal.write(_line({"plan": plan_fingerprint, "version": JOURNAL_VERSION}))
                    journal.flush()
                    os.fsync(journal.fileno())
            self._out = open(self.path, "ab" if resume else "wb")  # noqa: SIM115 - closed in close()
            self._out.truncate(end)
            self._out.seek(end)
            self._journal = open(self.journal_path, "ab")  # noqa: SIM115 - closed in close()
        except BaseException:
            _release(self._held)
            raise
        self._sync_directory()

    def _recover(self) -> int:
        """Read the journal; cut a torn tail off it and off the output. Returns the committed output size."""
        data = self.journal_path.read_bytes()
        read = _read_journal(self.journal_path, data, self.plan_fingerprint)
        self.committed, self.rows_recovered = read.committed, read.rows
        if read.good < len(data):
            with open(self.journal_path, "r+b") as journal:
                journal.truncate(read.good)
                os.fsync(journal.fileno())
        size = self.path.stat().st_size if self.path.exists() else 0
        if size < read.end:
            raise ResumeMismatch(f"{self.path} holds {size} bytes but its journal committed {read.end}: it was "
                                 "changed outside leanworker")
        return read.end

    def _sync_directory(self) -> None:
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def commit(self, batch_fingerprint: str, modules: tuple[str, ...], rows: tuple[Row, ...]) -> None:
        """Write a result's rows, fsync, then journal it, fsync: from then on it is committed."""
        module_set = module_set_fingerprint(batch_fingerprint, modules)
        data = "".join(_line({"batch": batch_fingerprint, "module_set": module_set, "stream": row.stream,
                              "seq": row.seq, "payload": row.payload}) for row in rows).encode("utf-8")
        with self._lock:
            self._out.write(data)
            self._out.flush()
            os.fsync(self._out.fileno())
            record = {"batch": batch_fingerprint, "module_set": module_set, "modules": list(modules),
                      "rows": len(rows), "end": self._out.tell()}
            self._journal.write(_line(record).encode("utf-8"))
            self._journal.flush()
            os.fsync(self._journal.fileno())
            self.committed.setdefault(batch_fingerprint, set()).update(modules)

    def close(self) -> None:
        with self._lock:
            self._out.close()
            self._journal.close()
            _release(self._held)
            self._held = None
