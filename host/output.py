"""Everything the host writes to the protocol pipe, with rows coalesced into ``rows`` frames.

Rows are buffered per request and flushed as one frame when the stream changes, when enough rows (about 64 KiB)
are pending, when another message must go out (so order is kept), or ``FLUSH_DELAY`` after the first pending row,
by a flusher thread (so a slow command's rows still arrive live).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from leanworker.actors.core import locks
from leanworker.errors import CommandError, NotPlainData, ProtocolError
from leanworker.protocol import messages
from leanworker.protocol.frames import DEFAULT_MAX_FRAME_BYTES, HEADER, encode_body, write_all

FLUSH_DELAY = 0.002
MAX_BATCH_ROWS = 256
TARGET_FRAME_BYTES = 64 * 1024


class BadOutput(CommandError):
    """Output a command produced that the protocol cannot carry; its request ends with this code, the worker warm.

    Codes: ``bad_row`` (a row that is not plain data or does not fit in a frame), ``bad_diagnostic``,
    ``bad_progress``, ``unencodable_result``.
    """


class RowTooLarge(ProtocolError):
    """A single row does not fit in one frame under the negotiated cap."""


class ProtocolWriter:
    """Serialises every frame the host sends; owns the pending row batch."""

    def __init__(self, fd: int, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.fd = fd
        self.max_frame_bytes = max_frame_bytes
        self._cond = locks.condition("host_writer", locks.rlock("host_writer"))
        self._request_id = 0
        self._stream = ""
        self._seq: dict[str, int] = {}
        self._pending: list[Any] = []
        self._first_pending_at = 0.0
        self._batch_rows = MAX_BATCH_ROWS
        self._closed = False
        self._failure: BadOutput | None = None  # a row batch that could not be written: ends the request
        self._flusher = threading.Thread(target=self._flush_loop, name="leanworker-flusher", daemon=True)
        self._flusher.start()

    # -- any message -------------------------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        """Flush pending rows, then write ``message`` as one frame."""
        with self._cond:
            if self._pending:
                self._flush_locked()
            self._write_locked(message)

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (fault injection only: lets a fixture break the protocol on purpose)."""
        with self._cond:
            if self._pending:
                self._flush_locked()
            write_all(self.fd, data)

    def _write_locked(self, message: dict[str, Any]) -> None:
        body = encode_body(message)  # NotPlainData: nothing written
        if len(body) > self.max_frame_bytes:
            raise ProtocolError(f"{message.get('type')} frame of {len(body)} bytes exceeds the cap")
        write_all(self.fd, HEADER.pack(len(body)) + body)

    def check(self) -> None:
        """Raise the request's output failure, if a row batch could not be written (it stays set until begin)."""
        with self._cond:
            if self._failure is not None:
                raise self._failure

    # -- rows --------------------------------------------------------------------------------------------------

    def begin(self, request_id: int) -> None:
        """Start counting rows for a new request."""
        with self._cond:
            self._request_id = request_id
            self._seq = {}
            self._pending = []
            self._failure = None

    def row(self, stream: str, payload: Any) -> None:
        """Queue one row; may write a frame (and block there if the parent is not reading: backpressure)."""
        with self._cond:
            if self._failure is not None:
                raise self._failure
            if stream != self._stream:
                if self._pending:
                    self._flush_locked()
                self._stream = stream
            if not self._pending:
                self._first_pending_at = time.monotonic()
                self._cond.notify()
            self._pending.append(payload)
            if len(self._pending) >= self._batch_rows:
                self._flush_locked()

    def count_only(self, stream: str) -> None:
        """Count a row of a non-streaming call without sending it."""
        with self._cond:
            self._seq[stream] = self._seq.get(stream, 0) + 1

    def counts(self) -> dict[str, int]:
        """Rows per stream of the current request, pending ones included."""
        with self._cond:
            counts = dict(self._seq)
            if self._pending:
                counts[self._stream] = counts.get(self._stream, 0) + len(self._pending)
            return counts

    def discard_pending(self) -> None:
        """Drop rows not yet written (a cancelled or failed request), keeping them counted as produced."""
        with self._cond:
            if self._pending:
                self._seq[self._stream] = self._seq.get(self._stream, 0) + len(self._pending)
                self._pending = []

    def flush(self) -> None:
        """Write pending rows; raise :class:`BadOutput` if any row of this request could not be written."""
        with self._cond:
            if self._pending:
                self._flush_locked()
            if self._failure is not None:
                raise self._failure

    def _flush_locked(self) -> None:
        payloads, self._pending = self._pending, []
        stream = self._stream
        seq = self._seq.get(stream, 0)
        self._seq[stream] = seq + len(payloads)
        if self._failure is not None:
            return  # the request already failed: later rows are counted, not sent
        try:
            self._write_rows_locked(stream, seq, payloads)
        except (NotPlainData, RowTooLarge) as exc:
            self._failure = BadOutput("bad_row", f"a row on {stream!r} cannot be sent: {exc}")
            raise self._failure from None

    def _write_rows_locked(self, stream: str, seq: int, payloads: list[Any]) -> None:
        body = encode_body(messages.rows(self._request_id, stream, seq, payloads))
        if len(body) > self.max_frame_bytes:
            if len(payloads) == 1:
                raise RowTooLarge(f"one row on {stream!r} encodes to {len(body)} bytes, over the frame cap")
            half = len(payloads) // 2
            self._write_rows_locked(stream, seq, payloads[:half])
            self._write_rows_locked(stream, seq + half, payloads[half:])
            return
        write_all(self.fd, HEADER.pack(len(body)) + body)
        # Aim the next batch at about TARGET_FRAME_BYTES.
        per_row = max(1, len(body) // len(payloads))
        self._batch_rows = max(1, min(MAX_BATCH_ROWS, TARGET_FRAME_BYTES // per_row))

    def _flush_loop(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._pending:
                    self._cond.wait()
                    continue
                wait = self._first_pending_at + FLUSH_DELAY - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                try:
                    self._flush_locked()
                except BadOutput:  # kept in _failure: the command sees it at its next row, or the done does
                    pass
                except OSError:  # the parent is gone; the stdin thread sees EOF and ends the process
                    self._pending = []

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
