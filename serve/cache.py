"""The results cache: verdicts of deterministic outcomes kept in SQLite, across restarts, bounded in bytes.

Only rows of status ``ok``, ``sorry`` or ``error`` without an ``"error"`` field (a Lean verdict on the code, never a
timeout, a crash, a REPL error object or a header that failed to import) are kept. The key (:func:`cache_key`) is a
digest of what decides the verdict: the checker's identity (toolchain fingerprint, REPL command, workspace), the
header's imports, the body, and the options that change the answer. A hit is served only when the verdict took no
longer than the request's timeout (the same item under a shorter deadline would have timed out).

The database is in WAL mode. Reads run on the caller's thread (an indexed lookup, no fsync); writes, the recency of
hits and eviction run on one writer thread, in batches, so the event loop never waits on a commit. When the stored
rows pass ``max_bytes``, the least recently used are deleted down to 90% of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from leanworker.serve.checker import VERDICTS, Row

log = logging.getLogger("leanworker.serve")

SCHEMA_VERSION = 1
_STOP = object()


def cache_key(identity: str, imports: Sequence[str], body: str, options: Sequence[tuple[str, Any]] = ()) -> bytes:
    """The digest that names one verdict."""
    material = json.dumps([SCHEMA_VERSION, identity, list(imports), body, sorted(options)], ensure_ascii=False,
                          separators=(",", ":"))
    return hashlib.sha256(material.encode("utf-8")).digest()


def cacheable(row: Row) -> bool:
    """True for a Lean verdict on the code (``ok``, ``sorry``, ``error`` with no ``"error"`` field)."""
    return row.get("status") in VERDICTS and "error" not in row


class ResultCache:
    """A bounded, persistent map from :func:`cache_key` to a result row. ``close()`` flushes pending writes."""

    def __init__(self, path: str | Path, max_bytes: int = 256 * 2**20) -> None:
        if max_bytes < 4096:
            raise ValueError("the cache needs max_bytes >= 4096")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = self._connect(isolation_level="DEFERRED")
        writer.execute("CREATE TABLE IF NOT EXISTS results (key BLOB PRIMARY KEY, row TEXT NOT NULL, "
                       "bytes INTEGER NOT NULL, used REAL NOT NULL)")
        writer.execute("CREATE INDEX IF NOT EXISTS results_used ON results (used)")
        writer.commit()
        self.stored_bytes = int(writer.execute("SELECT COALESCE(SUM(bytes), 0) FROM results").fetchone()[0])
        self._reader = self._connect(isolation_level=None)
        self._reader_lock = threading.Lock()
        self._writes: queue.Queue[Any] = queue.Queue()
        self.hits = 0
        self.misses = 0
        self.evicted = 0
        self._thread = threading.Thread(target=self._write_loop, args=(writer,), name="leanworker-serve-cache",
                                        daemon=True)
        self._thread.start()

    def _connect(self, isolation_level: Literal["DEFERRED"] | None) -> sqlite3.Connection:
        # each connection is used by one thread at a time (the writer's is handed to its thread once, at start)
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=isolation_level)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=5000")
        return connection

    def get(self, key: bytes) -> Row | None:
        """The stored row, or None."""
        with self._reader_lock:
            found = self._reader.execute("SELECT row FROM results WHERE key = ?", (key,)).fetchone()
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._writes.put(("touch", key, time.time()))
        row: Row = json.loads(found[0])
        return row

    def put(self, key: bytes, row: Row) -> bool:
        """Keep ``row`` if it is :func:`cacheable` (written soon, by the writer thread). True when it will be."""
        if not cacheable(row):
            return False
        self._writes.put(("put", key, json.dumps(row, ensure_ascii=False, separators=(",", ":"))))
        return True

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every write queued so far is committed."""
        done = threading.Event()
        self._writes.put(("flush", done))
        done.wait(timeout)

    def close(self) -> None:
        if self._thread.is_alive():
            self._writes.put(_STOP)
            self._thread.join(30)
        self._reader.close()

    # -- the writer thread ----------------------------------------------------------------------------------------

    def _write_loop(self, writer: sqlite3.Connection) -> None:
        try:
            while True:
                batch = [self._writes.get()]
                while len(batch) < 512:
                    try:
                        batch.append(self._writes.get_nowait())
                    except queue.Empty:
                        break
                stop = any(op is _STOP for op in batch)
                try:
                    self._apply([op for op in batch if op is not _STOP], writer)
                except sqlite3.Error:
                    log.exception("results cache: a write failed (the cache is only an optimisation)")
                if stop:
                    return
        finally:
            writer.close()

    def _apply(self, batch: list[Any], writer: sqlite3.Connection) -> None:
        now = time.time()
        flushed = []
        with writer:
            for op in batch:
                if op[0] == "put":
                    _, key, text = op
                    size = len(key) + len(text.encode("utf-8"))
                    old = writer.execute("SELECT bytes FROM results WHERE key = ?", (key,)).fetchone()
                    writer.execute("INSERT OR REPLACE INTO results (key, row, bytes, used) VALUES (?, ?, ?, ?)",
                                   (key, text, size, now))
                    self.stored_bytes += size - (old[0] if old else 0)
                elif op[0] == "touch":
                    writer.execute("UPDATE results SET used = ? WHERE key = ?", (op[2], op[1]))
                elif op[0] == "flush":
                    flushed.append(op[1])
            if self.stored_bytes > self.max_bytes:
                self._evict(writer)
        for done in flushed:
            done.set()

    def _evict(self, writer: sqlite3.Connection) -> None:
        target = int(self.max_bytes * 0.9)
        while self.stored_bytes > target:
            oldest = writer.execute("SELECT key, bytes FROM results ORDER BY used LIMIT 256").fetchall()
            if not oldest:
                self.stored_bytes = 0
                return
            for key, size in oldest:
                writer.execute("DELETE FROM results WHERE key = ?", (key,))
                self.stored_bytes -= size
                self.evicted += 1
                if self.stored_bytes <= target:
                    return
