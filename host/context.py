"""The ``ctx`` a command receives: its session, rows, diagnostics, progress, and the cancel it can see."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from leanworker.errors import NotPlainData, ProtocolError
from leanworker.host.cancel_flag import CancelFlag
from leanworker.host.capability import RequestCancelled
from leanworker.host.output import BadOutput, ProtocolWriter
from leanworker.protocol import messages
from leanworker.protocol.frames import Message


class RequestContext:
    """The ``ctx`` a command receives (see :class:`leanworker.host.Context`).

    Cancellation is cooperative: a command sees it only through its ctx. So the watchdog, which reads the parent's
    frames (a ``cancel`` among them) while a command runs, is woken at the command's first use of its ctx, not at
    every call: a command that never looks answers without a thread handoff on the worker's side.
    """

    __slots__ = ("session", "request_id", "_cancel", "_writer", "_streaming", "_watch", "_watched")

    def __init__(self, session: Any, request_id: int, writer: ProtocolWriter, streaming: bool,
                 watch: Callable[[], None], cancel: CancelFlag) -> None:
        self.session = session
        self.request_id = request_id
        self._cancel = cancel  # set by the host when the parent cancels this request
        self._writer = writer
        self._streaming = streaming
        self._watch = watch
        self._watched = False

    def _watching(self) -> None:
        if not self._watched:
            self._watched = True
            self._watch()

    @property
    def max_frame_bytes(self) -> int:
        return self._writer.max_frame_bytes

    @property
    def cancelled(self) -> bool:
        self._watching()
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        self._watching()
        if self._cancel.is_set():
            raise RequestCancelled()

    def sleep(self, seconds: float) -> None:
        self._watching()
        if self._cancel.wait(seconds):
            raise RequestCancelled()

    def row(self, stream: str, payload: Any) -> None:
        if not self._watched:
            self._watching()
        if self._cancel.is_set():
            raise RequestCancelled()
        if self._streaming:
            self._writer.row(stream, payload)
        else:
            self._writer.count_only(stream)

    def rows(self, stream: str, payloads: Iterable[Any]) -> None:
        for payload in payloads:
            self.row(stream, payload)

    def diagnostic(self, severity: str, code: str, message: str, data: Any = None) -> None:
        self._watching()
        frame = messages.diag(self.request_id, severity, code, message, data)
        _send_checked(self._writer, frame, "bad_diagnostic")

    def progress(self, phase: str, current: float, total: float | None = None) -> None:
        self._watching()
        frame = messages.progress(self.request_id, phase, current, total)
        _send_checked(self._writer, frame, "bad_progress")


def _send_checked(writer: ProtocolWriter, frame: Message, code: str) -> None:
    """Send a diagnostic or progress frame the parent will accept, else raise :class:`BadOutput` (nothing sent)."""
    try:
        messages.validate_from_worker(frame)
    except ProtocolError as exc:
        raise BadOutput(code, str(exc)) from None
    writer.flush()  # a bad row pending is reported as such, not as this frame's fault
    try:
        writer.send(frame)
    except (NotPlainData, ProtocolError) as exc:
        raise BadOutput(code, f"{frame['type']} cannot be sent: {exc}") from None
