"""Routing a worker's frames after its hello: each one validated, then delivered to its request's channel.

The reader thread of a generation runs :meth:`FrameDispatcher.dispatch` for every frame. Every message is checked
against docs/protocol.md first (every field, and the kinds allowed after the handshake); anything wrong raises
:class:`ProtocolError`, which ends the request in flight with outcome ``protocol`` and the generation with it.
"""

from __future__ import annotations

from typing import Any

from leanworker.actors.core.results import Diagnostic, Progress
from leanworker.actors.core.tracing import TraceSink
from leanworker.actors.slot.channel import CANCELLED, ERROR, OK, PROTOCOL, Terminal
from leanworker.actors.slot.connection import Connection
from leanworker.actors.slot.gate import AdmissionGate
from leanworker.errors import Cancelled, CommandError, ProtocolError
from leanworker.protocol import messages
from leanworker.protocol.messages import DIAG, DONE, HELLO, PROGRESS, ROWS


def terminal_from_done(message: dict[str, Any], received: dict[str, int], streaming: bool) -> Terminal:
    """Turn a validated ``done`` into a Terminal, checking that no streamed row was lost."""
    counts: dict[str, int] = message["counts"]
    elapsed = float(message["elapsed"])
    outcome = message["outcome"]
    if outcome == messages.OUTCOME_OK:
        if streaming and {k: v for k, v in counts.items() if v} != {k: v for k, v in received.items() if v}:
            error = ProtocolError(f"done reports rows {counts} but {received} arrived: rows were lost")
            return Terminal(PROTOCOL, error=error, counts=received, elapsed=elapsed)
        return Terminal(OK, result=message.get("result"), counts=counts, elapsed=elapsed)
    if outcome == messages.OUTCOME_CANCELLED:
        return Terminal(CANCELLED, error=Cancelled("request cancelled"), counts=counts, elapsed=elapsed)
    error_info = message["error"]
    trace = error_info.get("traceback")
    command_error = CommandError(error_info["code"], error_info["message"],
                                 traceback=trace if isinstance(trace, str) else None)
    return Terminal(ERROR, error=command_error, counts=counts, elapsed=elapsed)


class FrameDispatcher:
    """Delivers one generation's frames (after hello) to the channels of its requests."""

    __slots__ = ("connection", "gate", "tracer", "name", "generation")

    def __init__(self, connection: Connection, gate: AdmissionGate, tracer: TraceSink | None, name: str) -> None:
        self.connection = connection
        self.gate = gate
        self.tracer = tracer
        self.name = name
        self.generation = connection.generation

    def dispatch(self, message: dict[str, Any], nbytes: int) -> None:
        """Handle one frame of ``nbytes`` bytes; raise :class:`ProtocolError` if it breaks the protocol."""
        kind = messages.validate_from_worker(message)
        if kind == HELLO:
            raise ProtocolError("a second hello in the middle of a session")
        connection = self.connection
        request_id = message["id"]
        if kind == ROWS:
            channel = connection.get(request_id)
            payloads = message["payloads"]
            if self.tracer is not None:
                self.tracer.record("rows", self.name, self.generation, request_id, stream=message["stream"],
                                   count=len(payloads))
            if channel is None or not channel.put_rows(message["stream"], message["seq"], payloads, nbytes):
                connection.stale()
        elif kind == DIAG or kind == PROGRESS:
            channel = connection.get(request_id)
            if kind == DIAG:
                event: Any = Diagnostic(message["severity"], message["code"], message["message"],
                                        message.get("data"))
            else:
                event = Progress(message["phase"], message["current"], message["total"])
            # the channel's item kinds are compared by identity: pass its constant, not the decoded string
            if channel is None or not channel.put_event(DIAG if kind == DIAG else PROGRESS, event, nbytes):
                connection.stale()
        elif kind == DONE:
            channel = connection.pop(request_id)
            if channel is None:
                connection.stale()
                return
            terminal = terminal_from_done(message, channel.received, channel.streaming)
            if self.tracer is not None:
                fields: dict[str, Any] = {"rows": sum(terminal.counts.values())}
                if terminal.error is not None:
                    fields["error"] = type(terminal.error).__name__
                self.tracer.record("done", self.name, self.generation, request_id, outcome=terminal.outcome,
                                   **fields)
            # Free the slot (and tell the supervisor, when it has something to decide) before the caller can see
            # the terminal, so that the caller's next request finds the slot idle.
            self.gate.release(channel, terminal)
            if not channel.finish(terminal):
                connection.stale()
        # pong and bye need no routing: the exit (or the next request) tells the rest.
