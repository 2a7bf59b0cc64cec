"""The REPL's output framing as a pure, incremental parser: bytes in, whole answers (or a fault) out.

The REPL prints each answer as JSON over one or more lines, then exactly one blank line (``IO.println`` of the JSON,
then ``printFlush "\\n"``; docs/lean_repl_protocol.md, section 2), and prints nothing else on stdout. So an
answer is everything up to the next blank line, and a blank line where no answer has begun is not the REPL's output.
An answer (or an unfinished line) longer than ``max_answer_bytes`` is refused as it grows, so memory stays bounded
whatever the REPL prints. Scanning is incremental (each byte is looked at about once), so a 200 MB answer costs one
pass, not one pass per chunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BLANK_LINE = re.compile(rb"\n[ \t\r]*\n")
_REST_OF_BLANK_LINE = re.compile(rb"[ \t\r]*\n")
_WHITESPACE = b" \t\r"


@dataclass(frozen=True)
class EmptyLine:
    """A blank line where no answer had begun (the REPL prints exactly one blank line after each answer)."""


@dataclass(frozen=True)
class Overflow:
    """The answer being read passed the cap; ``size`` bytes had arrived without its ending blank line."""

    size: int


Piece = bytes | EmptyLine | Overflow


class AnswerFramer:
    """Cuts the REPL's stdout into answers. After an :class:`Overflow` it takes no more input (``overflowed``).

    The answer being read is kept as the chunks it arrived in (joined once, when it ends), and each chunk is scanned
    once: ``_line_open`` says whether everything since the last newline (or since the answer began) is whitespace,
    so a blank line split across chunks is still seen.
    """

    __slots__ = ("max_answer_bytes", "_chunks", "_size", "_text_begun", "_line_open", "overflowed")

    def __init__(self, max_answer_bytes: int) -> None:
        if max_answer_bytes < 1:
            raise ValueError("max_answer_bytes must be >= 1")
        self.max_answer_bytes = max_answer_bytes
        self._chunks: list[bytes] = []
        self._size = 0
        self._text_begun = False
        self._line_open = True
        self.overflowed = False

    @property
    def pending(self) -> int:
        """Bytes of an answer begun but not ended (whitespace included)."""
        return self._size

    def feed(self, data: bytes) -> list[Piece]:
        """Take ``data``; return the answers it completes (raw bytes, without the blank line) and any faults."""
        if self.overflowed:
            return []
        pieces: list[Piece] = []
        at = 0
        while at < len(data):
            if self._line_open:
                blank = _REST_OF_BLANK_LINE.match(data, at)
                if blank is not None:
                    pieces.append(self._cut(b"") if self._text_begun else EmptyLine())
                    self._reset()
                    at = blank.end()
                    continue
            found = _BLANK_LINE.search(data, at)
            if found is None:
                self._keep(data, at)
                break
            pieces.append(self._cut(data[at:found.start() + 1]))
            self._reset()
            at = found.end()
        if self._size > self.max_answer_bytes:
            pieces.append(Overflow(self._size))
            self._reset()
            self.overflowed = True
        return pieces

    def _keep(self, data: bytes, at: int) -> None:
        """Hold ``data[at:]``, the unfinished part of an answer, and note whether its last line is still blank."""
        rest = data[at:] if at else data
        self._chunks.append(rest)
        self._size += len(rest)
        last_newline = rest.rfind(b"\n")
        tail = rest[last_newline + 1:] if last_newline >= 0 else rest
        blank_tail = not tail.strip(_WHITESPACE)
        if last_newline >= 0:
            self._text_begun = self._text_begun or bool(rest[:last_newline].strip(_WHITESPACE + b"\n"))
            self._line_open = blank_tail
        else:
            self._line_open = self._line_open and blank_tail
            self._text_begun = self._text_begun or not blank_tail

    def _cut(self, last: bytes) -> bytes:
        if not self._chunks:
            return last
        return b"".join([*self._chunks, last])

    def _reset(self) -> None:
        self._chunks = []
        self._size = 0
        self._text_begun = False
        self._line_open = True
