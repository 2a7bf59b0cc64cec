"""Bounds on what one HTTP connection may hold before its request reaches the app: uvicorn's httptools protocol with
the two it lacks.

uvicorn waits forever for a request head that trickles in (slow-loris: a connection that sends a byte a minute, or
nothing, holds its socket and its memory for ever) and keeps every header line of a head however large (a client
sending headers without end grows the server by its whole stream). Here:

- a request head must arrive whole within ``head_timeout`` seconds of the connection opening, or of the previous
  answer on a kept-alive connection; else the connection is closed, with a ``408`` first when part of a head came
  (a connection that sent nothing is closed quietly, so that no client reads a 408 it did not ask for on a
  connection it keeps alive). The body's own deadline is the app's (serve/intake.py);
- a head (request line and headers) is at most ``max_head_bytes``; past it, ``431`` and the connection is closed;
- an answer must be taken: once the connection's write buffer is full (the transport pauses writing), the client
  must take some of it every ``write_timeout`` seconds, else the connection is aborted and what it held dropped. An
  answer is written into that buffer whole (a Kimina answer of megabytes at once) and a connection closed with bytes
  in it waits for them to go, so without this a client that reads nothing holds its answer's memory for ever, on as
  many connections as it opens. (A native stream also ends itself at its own write deadline, serve/streaming.py.)

Both answers are ``{"detail": ...}`` as the app's refusals, sent with a lingering close: the server stops writing,
then reads and drops what the client is still sending for up to ``LINGER`` seconds before it closes (closing a socket
with unread bytes would reset it, and the client would never read the answer). uvicorn's own idle keep-alive timeout
still closes a connection that sends nothing after an answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TIMEOUT = 60.0
MAX_HEAD_BYTES = 64 * 1024
LINGER = 2.0  # seconds a refused connection's incoming bytes are read and dropped before it is closed

log = logging.getLogger("leanworker.serve")


class _HeadTooLarge(Exception):
    """Raised from the parser's callback to stop parsing a head past its bound."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size bound on each request head (module docstring).
    :meth:`bounded` makes the class with other bounds (uvicorn builds one protocol object per connection)."""

    head_timeout: float = HEAD_TIMEOUT
    max_head_bytes: int = MAX_HEAD_BYTES
    write_timeout: float = HEAD_TIMEOUT

    @classmethod
    def bounded(cls, head_timeout: float = HEAD_TIMEOUT, max_head_bytes: int = MAX_HEAD_BYTES,
                write_timeout: float = HEAD_TIMEOUT) -> type[GuardedHttpProtocol]:
        return type(cls.__name__, (cls,), {"head_timeout": head_timeout, "max_head_bytes": max_head_bytes,
                                           "write_timeout": write_timeout})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_bytes = 0
        self._head_too_large = False
        self._head_begun = False  # a head has begun and is not complete
        self._head_timer: asyncio.TimerHandle | None = None
        self._lingering = False  # refused: what comes is dropped
        self._write_timer: asyncio.TimerHandle | None = None
        self._write_left = 0  # bytes in the write buffer when the write deadline was last set
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """The write buffer is full: from now on the client must take some of it every ``write_timeout`` s."""
        super().pause_writing()
        if self._write_timer is None:
            self._write_left = self.transport.get_write_buffer_size()
            self._write_timer = self.loop.call_later(self.write_timeout, self._write_late)

    def resume_writing(self) -> None:
        """The client took the buffer down to its low-water mark: it keeps up, and the deadline is off until the buffer
        is full again (a deadline left running would cut a client that took one answer in time and then, on the same
        connection or stream, the next more slowly than the first deadline allowed)."""
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_late(self) -> None:
        self._write_timer = None
        left = self.transport.get_write_buffer_size()
        if left == 0:
            return
        if left < self._write_left:  # the client took some: a new deadline for the rest
            self._write_left = left
            self._write_timer = self.loop.call_later(self.write_timeout, self._write_late)
            return
        client = self.client
        log.warning("%s took none of its answer for %g s: %d bytes dropped and the connection closed",
                    f"{client[0]}:{client[1]}" if client else "a client", self.write_timeout, left)
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self._lingering:
            super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._head_begun = True

    def on_headers_complete(self) -> None:
        self._head_begun = False
        super().on_headers_complete()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._await_head()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a head the parser refused: ours when the refusal was the size bound."""
        if self._head_too_large:
            self._refuse(431, f"the request head is over the limit of {self.max_head_bytes} bytes")
        else:
            super().send_400_response(msg)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            self._head_too_large = True
            raise _HeadTooLarge  # the parser stops; uvicorn answers through send_400_response

    def _awaiting_head(self) -> bool:
        """No request is being answered: what comes next is a head."""
        return self.cycle is None or self.cycle.response_complete

    def _await_head(self) -> None:
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_late)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if not self._awaiting_head():  # a request is being answered: its body's deadline is the app's
            return
        if self._head_begun:
            self._refuse(408, f"the request head did not arrive within {self.head_timeout:g} s")
        else:
            self.transport.close()

    def _refuse(self, status: int, detail: str) -> None:
        """Answer ``status`` and close, lingering (module docstring)."""
        body = json.dumps({"detail": detail}).encode()
        head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode("ascii")
        self.transport.write(head + body)
        self._lingering = True
        self._cancel_head_timer()
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER, self.transport.close)
        else:
            self.transport.close()
