"""Length-prefixed CBOR frames: a 4-byte big-endian length, then one CBOR map.

Decoding is strict. The item must be a map with text keys; CBOR tags are refused (no object is ever constructed
from the wire); only null, bool, int, float, text, bytes, arrays and maps pass. Anything else is a
:class:`ProtocolError`, never a hang and never another exception type.
"""

from __future__ import annotations

import io
import os
import select
import struct
import time
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import cbor2

from leanworker.errors import NotPlainData, ProtocolError
from leanworker.protocol.plain import MAX_DEPTH, check_decoded, check_plain

HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size
DEFAULT_MAX_FRAME_BYTES = 1 << 20
MIN_FRAME_CAP = 64 * 1024
MAX_FRAME_CAP = 256 * 1024 * 1024

Message = dict[str, Any]

class _RefuseEveryTag(Mapping[int, Any]):
    """A ``semantic_decoders`` table that claims every tag, so that no tag is ever decoded."""

    def __getitem__(self, tag: int) -> Any:
        def refuse(decoder: object) -> NoReturn:
            raise ValueError(f"CBOR tag {tag} is not allowed")

        return refuse

    def __contains__(self, tag: object) -> bool:
        return True

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


_REFUSE_TAGS = _RefuseEveryTag()


def _refuse_tag_hook(decoder: object, tag: object) -> NoReturn:
    raise ValueError("CBOR tags are not allowed")


def check_frame_cap(max_bytes: int) -> int:
    """Return ``max_bytes`` if it is a legal negotiated frame cap, else raise ``ValueError``."""
    if not MIN_FRAME_CAP <= max_bytes <= MAX_FRAME_CAP:
        raise ValueError(f"frame cap must be in [{MIN_FRAME_CAP}, {MAX_FRAME_CAP}] bytes, got {max_bytes}")
    return max_bytes


_NO_INPUT = io.BytesIO()


def strict_decoder() -> cbor2.CBORDecoder:
    """A CBOR decoder that refuses every tag, for :func:`decode_body` to reuse (made fresh for each frame, it costs
    as much as decoding a small frame). It reads nothing until :func:`decode_body` gives it a body."""
    return cbor2.CBORDecoder(_NO_INPUT, semantic_decoders=_REFUSE_TAGS, tag_hook=_refuse_tag_hook,
                             max_depth=MAX_DEPTH + 1)


def decode_body(body: bytes, decoder: cbor2.CBORDecoder | None = None) -> Message:
    """Decode one frame body strictly; raise :class:`ProtocolError` on anything but one plain map with text keys.

    ``decoder``: one from :func:`strict_decoder` to reuse (one thread at a time; after a ``ProtocolError`` make a
    new one). None makes one for this body."""
    stream = io.BytesIO(body)
    try:
        if decoder is None:
            decoder = strict_decoder()
        decoder.fp = stream
        try:
            item = decoder.decode()
        finally:
            decoder.fp = _NO_INPUT  # keep no body alive between frames
    except Exception as exc:  # cbor2 raises several types; every one of them means "bad CBOR"
        raise ProtocolError(f"bad CBOR in frame body: {exc}") from None
    if stream.tell() != len(body):
        raise ProtocolError(f"frame body holds {len(body) - stream.tell()} bytes after its one CBOR item")
    if type(item) is not dict:
        raise ProtocolError(f"frame body must be a CBOR map, got {type(item).__name__}")
    for key in item:
        if type(key) is not str:
            raise ProtocolError(f"top-level map keys must be text, got {type(key).__name__}")
    try:
        check_decoded(item)
    except NotPlainData as exc:
        raise ProtocolError(f"frame body is not plain data: {exc}") from None
    return item


def encode_body(message: Mapping[str, Any]) -> bytes:
    """Encode one message as CBOR after checking that it is plain data (raises :class:`NotPlainData`)."""
    check_plain(message, "message")
    try:
        return cbor2.dumps(message)
    except Exception as exc:  # not expected after the check; never let an encoder error escape untyped
        raise ProtocolError(f"message cannot be encoded as plain CBOR: {exc}") from None


def encode_frame(message: Mapping[str, Any], max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Encode ``message`` as one frame; raise :class:`ProtocolError` if its body exceeds ``max_bytes``."""
    body = encode_body(message)
    if len(body) > max_bytes:
        raise ProtocolError(f"frame body of {len(body)} bytes exceeds the cap of {max_bytes} bytes")
    return HEADER.pack(len(body)) + body


class FrameDecoder:
    """Incremental decoder: ``feed`` bytes, get complete messages.

    A declared length over the cap is refused as soon as the header is seen, before any of the body is buffered.
    After an error the decoder is poisoned: a byte stream cannot be resynchronised.
    """

    __slots__ = ("max_bytes", "_buffer", "_need", "_failed", "_cbor")

    def __init__(self, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._need: int | None = None
        self._failed: ProtocolError | None = None
        self._cbor = strict_decoder()  # reused for every frame: after an error the decoder is poisoned anyway

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        """Add ``data`` and return every message it completes, in order."""
        return [message for message, _ in self.feed_sized(data)]

    def feed_sized(self, data: bytes) -> list[tuple[Message, int]]:
        """Like :meth:`feed`, with each message's frame size in bytes (header included)."""
        if self._failed is not None:
            raise self._failed
        self._buffer += data
        out: list[tuple[Message, int]] = []
        buffer = self._buffer
        start = 0
        try:
            while True:
                if self._need is None:
                    if len(buffer) - start < HEADER_SIZE:
                        break
                    (length,) = HEADER.unpack_from(buffer, start)
                    if length > self.max_bytes:
                        raise ProtocolError(
                            f"frame length {length} exceeds the cap of {self.max_bytes} bytes (refused unread)"
                        )
                    start += HEADER_SIZE
                    self._need = length
                if len(buffer) - start < self._need:
                    break
                end = start + self._need
                out.append((decode_body(bytes(buffer[start:end]), self._cbor), self._need + HEADER_SIZE))
                start = end
                self._need = None
        except ProtocolError as exc:
            self._failed = exc
            raise
        finally:
            del buffer[:start]
        return out

    def close(self) -> None:
        """Declare end of input; raise :class:`ProtocolError` if a frame was cut short."""
        if self._failed is not None:
            raise self._failed
        if self._buffer or self._need is not None:
            raise ProtocolError(f"stream ended inside a frame ({len(self._buffer)} bytes of it received)")


class SpinWait:
    """Waits for ``fd`` to be readable: until ``spin_wait`` seconds have passed it looks without blocking (a
    zero-timeout ``poll()``, cheaper than a read that finds nothing and raises) and yields the CPU between looks (the
    writer may be queued on this CPU: pipe wakeups favour the waker's), then sleeps in ``poll()``. One per wait."""

    __slots__ = ("until", "_poll")

    def __init__(self, fd: int, spin_wait: float) -> None:
        self.until = time.perf_counter() + spin_wait
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        self._poll = poller.poll

    def wait(self, timeout_ms: int | None = None) -> None:
        """Return once ``fd`` is readable (or at its end), or after sleeping ``timeout_ms`` (None: no limit)."""
        poll, until = self._poll, self.until
        while time.perf_counter() < until:
            if poll(0):
                return
            os.sched_yield()
        poll(timeout_ms)


class FrameReader:
    """Reads messages from a file descriptor, in large chunks, through a :class:`FrameDecoder`.

    ``last_size`` is the frame size in bytes (header included) of the message :meth:`read` returned last.
    """

    __slots__ = ("fd", "_decoder", "_pending", "chunk_size", "last_size")

    def __init__(self, fd: int, max_bytes: int = DEFAULT_MAX_FRAME_BYTES, chunk_size: int = 256 * 1024) -> None:
        self.fd = fd
        self._decoder = FrameDecoder(max_bytes)
        self._pending: list[tuple[Message, int]] = []
        self.chunk_size = chunk_size
        self.last_size = 0

    @property
    def max_bytes(self) -> int:
        return self._decoder.max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        self._decoder.max_bytes = value

    def poll(self) -> list[Message] | None:
        """Without blocking: every message already readable (maybe none); ``None`` at end of stream."""
        out, self._pending = [m for m, _ in reversed(self._pending)], []
        while select.select([self.fd], [], [], 0)[0]:
            data = os.read(self.fd, self.chunk_size)
            if not data:
                self._decoder.close()
                return out or None
            out += self._decoder.feed(data)
        return out

    def read_available(self) -> list[tuple[Message, int]] | None:
        """From a non-blocking fd: the messages (with frame sizes) decoded but not yet read, else those that one
        read completes, maybe none; ``None`` at end of stream."""
        if self._pending:
            out, self._pending = self._pending[::-1], []
            return out
        try:
            data = os.read(self.fd, self.chunk_size)
        except BlockingIOError:
            return []
        if not data:
            self._decoder.close()
            return None
        return self._decoder.feed_sized(data)

    def read_waiting(self, spin_wait: float = 0.0) -> Message | None:
        """From a non-blocking fd: the next message, or ``None`` at end of stream. Spins on reads for
        ``spin_wait`` seconds, yielding the CPU between them, before it sleeps in ``poll()``."""
        if not self._pending:
            waiter = SpinWait(self.fd, spin_wait)
            while not (batch := self.read_available()):
                if batch is None:
                    return None
                waiter.wait()
            self._pending = batch[::-1]
        message, self.last_size = self._pending.pop()
        return message

    def read(self) -> Message | None:
        """Return the next message, or ``None`` on a clean end of stream between frames."""
        while not self._pending:
            data = os.read(self.fd, self.chunk_size)
            if not data:
                self._decoder.close()
                return None
            self._pending = self._decoder.feed_sized(data)
            self._pending.reverse()
        message, self.last_size = self._pending.pop()
        return message


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write less than asked on a pipe)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
