"""The message kinds of the leanworker protocol, their required fields, and constructors.

Parent to worker: ``configure``, ``open``, ``call``, ``cancel``, ``ping``, ``stop``.
Worker to parent: ``hello``, ``rows``, ``diag``, ``progress``, ``done``, ``pong``, ``bye``.
Every message but ``hello`` carries ``id``, the request id it belongs to. docs/protocol.md is the spec.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

from leanworker.errors import HandshakeError, ProtocolError
from leanworker.protocol.frames import Message

PROTOCOL_VERSION: Final = 1

OUTCOME_OK: Final = "ok"
OUTCOME_ERROR: Final = "error"
OUTCOME_CANCELLED: Final = "cancelled"
WIRE_OUTCOMES: Final = frozenset({OUTCOME_OK, OUTCOME_ERROR, OUTCOME_CANCELLED})

# Message kinds (the ``type`` field). Parent to worker:
CONFIGURE: Final = "configure"
OPEN: Final = "open"
CALL: Final = "call"
CANCEL: Final = "cancel"
PING: Final = "ping"
STOP: Final = "stop"
# Worker to parent:
HELLO: Final = "hello"
ROWS: Final = "rows"
DIAG: Final = "diag"
PROGRESS: Final = "progress"
DONE: Final = "done"
PONG: Final = "pong"
BYE: Final = "bye"

# Commands every worker host answers besides its capability's own (docs/protocol.md); a capability's own command
# names may not start with the prefix.
BUILTIN_PREFIX: Final = "leanworker."
METADATA_COMMAND: Final = BUILTIN_PREFIX + "metadata"
DOCTOR_COMMAND: Final = BUILTIN_PREFIX + "doctor"

MAX_ID: Final = 2**63 - 1
SEVERITIES: Final = frozenset({"info", "warning", "error"})

Check = Callable[[Any], str | None]  # None when the value is fine, else what is wrong with it


def _int_in(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if type(value) is not int:
            return f"must be an integer, got {type(value).__name__}"
        return None if low <= value <= high else f"must be in [{low}, {high}], got {value}"
    return check


def _text(value: Any) -> str | None:
    return None if type(value) is str else f"must be text, got {type(value).__name__}"


def _opt_text(value: Any) -> str | None:
    return None if value is None or type(value) is str else f"must be text or null, got {type(value).__name__}"


def _bool(value: Any) -> str | None:
    return None if type(value) is bool else f"must be a bool, got {type(value).__name__}"


def _any(value: Any) -> str | None:
    return None


def _finite(value: Any) -> str | None:
    if type(value) is int:
        return None
    if type(value) is float:
        return None if math.isfinite(value) else f"must be a finite number, got {value}"
    return f"must be a number, got {type(value).__name__}"


def _opt_finite(value: Any) -> str | None:
    return None if value is None else _finite(value)


def _elapsed(value: Any) -> str | None:
    problem = _finite(value)
    return problem or (None if value >= 0 else f"must be >= 0, got {value}")


def _one_of(choices: frozenset[str]) -> Check:
    def check(value: Any) -> str | None:
        return None if type(value) is str and value in choices else f"must be one of {sorted(choices)}, got {value!r:.40}"
    return check


_COUNT = _int_in(0, MAX_ID)


def _counts(value: Any) -> str | None:
    if type(value) is not dict:
        return f"must be a map, got {type(value).__name__}"
    count = _COUNT
    for stream, number in value.items():
        if type(stream) is not str:
            return f"keys must be text, got {type(stream).__name__}"
        problem = count(number)
        if problem:
            return f"[{stream!r:.40}] {problem}"
    return None


def _error_info(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is not dict:
        return f"must be null or a map, got {type(value).__name__}"
    for name in ("code", "message"):
        if type(value.get(name)) is not str:
            return f"{name} must be text"
    return None


def _payloads(value: Any) -> str | None:
    if type(value) is not list:
        return f"must be an array, got {type(value).__name__}"
    return None if value else "must hold at least one row"


def _text_list(value: Any) -> str | None:
    if type(value) is not list:
        return f"must be an array, got {type(value).__name__}"
    return None if all(type(item) is str for item in value) else "must hold only text"


def _map(value: Any) -> str | None:
    return None if type(value) is dict else f"must be a map, got {type(value).__name__}"


_ID = _int_in(0, MAX_ID)

# kind -> {field: (check, required)}
Fields = dict[str, tuple[Check, bool]]
TO_WORKER: Final[dict[str, Fields]] = {
    CONFIGURE: {"id": (_ID, True), "max_frame_bytes": (_int_in(0, MAX_ID), True)},
    OPEN: {"id": (_ID, True), "capability": (_text, True), "workspace": (_opt_text, True),
             "imports": (_text_list, True), "options": (_map, True)},
    CALL: {"id": (_ID, True), "command": (_text, True), "request": (_any, True), "stream": (_bool, True)},
    CANCEL: {"id": (_ID, True)},
    PING: {"id": (_ID, True)},
    STOP: {"id": (_ID, True)},
}
FROM_WORKER: Final[dict[str, Fields]] = {
    HELLO: {"protocol": (_int_in(0, MAX_ID), True), "host": (_text, True), "pid": (_int_in(1, MAX_ID), True),
              "python": (_opt_text, False), "lean": (_opt_text, False)},
    ROWS: {"id": (_ID, True), "stream": (_text, True), "seq": (_int_in(0, MAX_ID), True),
             "payloads": (_payloads, True)},
    DIAG: {"id": (_ID, True), "severity": (_one_of(SEVERITIES), True), "code": (_text, True),
             "message": (_text, True), "data": (_any, False)},
    PROGRESS: {"id": (_ID, True), "phase": (_text, True), "current": (_finite, True),
                 "total": (_opt_finite, True)},
    DONE: {"id": (_ID, True), "outcome": (_one_of(WIRE_OUTCOMES), True), "result": (_any, False),
             "error": (_error_info, False), "counts": (_counts, True), "elapsed": (_elapsed, True)},
    PONG: {"id": (_ID, True)},
    BYE: {"id": (_ID, True)},
}


def _validate(message: Message, table: dict[str, Fields], direction: str) -> str:
    kind = message.get("type")
    if type(kind) is not str:
        raise ProtocolError(f"message has no text 'type' field: {sorted(map(str, message))!r:.200}")
    fields = table.get(kind)
    if fields is None:
        raise ProtocolError(f"unknown message type {kind!r:.60} {direction}")
    for name, (check, required) in fields.items():
        if name not in message:
            if required:
                raise ProtocolError(f"{kind} message lacks field {name!r}")
            continue
        problem = check(message[name])
        if problem is not None:
            raise ProtocolError(f"{kind}.{name} {problem}")
    return kind


def validate_from_worker(message: Message) -> str:
    """Check every field of a message a worker sent (docs/protocol.md); return its kind or raise ProtocolError."""
    kind = _validate(message, FROM_WORKER, "from a worker")
    if kind == DONE and message["outcome"] == OUTCOME_ERROR and type(message.get("error")) is not dict:
        raise ProtocolError("done.error must be a map {code, message} when the outcome is error")
    return kind


def validate_to_worker(message: Message) -> str:
    """Check every field of a message a parent sent; return its kind or raise :class:`ProtocolError`."""
    return _validate(message, TO_WORKER, "to a worker")


def check_hello(message: Message) -> Message:
    """Validate the first message of a worker: it must be a ``hello`` of our protocol version."""
    try:
        kind = validate_from_worker(message)
    except ProtocolError as exc:
        raise HandshakeError(f"bad hello: {exc}") from None
    if kind != HELLO:
        raise HandshakeError(f"worker spoke {kind!r} before saying hello")
    if message["protocol"] != PROTOCOL_VERSION:
        raise HandshakeError(
            f"worker speaks protocol version {message['protocol']}, this parent speaks {PROTOCOL_VERSION}"
        )
    return message


# Constructors. They return plain dicts: the wire form is the data model.


def hello(host: str, pid: int, python: str | None, lean: str | None) -> Message:
    return {"type": HELLO, "protocol": PROTOCOL_VERSION, "host": host, "pid": pid, "python": python, "lean": lean}


def configure(request_id: int, max_frame_bytes: int) -> Message:
    return {"type": CONFIGURE, "id": request_id, "max_frame_bytes": max_frame_bytes}


def open_session(
    request_id: int, capability: str, workspace: str | None, imports: list[str], options: dict[str, Any]
) -> Message:
    return {
        "type": OPEN,
        "id": request_id,
        "capability": capability,
        "workspace": workspace,
        "imports": imports,
        "options": options,
    }


def call(request_id: int, command: str, request: Any, stream: bool) -> Message:
    return {"type": CALL, "id": request_id, "command": command, "request": request, "stream": stream}


def cancel(request_id: int) -> Message:
    return {"type": CANCEL, "id": request_id}


def ping(request_id: int) -> Message:
    return {"type": PING, "id": request_id}


def stop(request_id: int) -> Message:
    return {"type": STOP, "id": request_id}


def rows(request_id: int, stream: str, seq: int, payloads: list[Any]) -> Message:
    return {"type": ROWS, "id": request_id, "stream": stream, "seq": seq, "payloads": payloads}


def diag(request_id: int, severity: str, code: str, message: str, data: Any = None) -> Message:
    return {"type": DIAG, "id": request_id, "severity": severity, "code": code, "message": message, "data": data}


def progress(request_id: int, phase: str, current: float, total: float | None) -> Message:
    return {"type": PROGRESS, "id": request_id, "phase": phase, "current": current, "total": total}


def done(
    request_id: int,
    outcome: str,
    *,
    result: Any = None,
    error: dict[str, str] | None = None,
    counts: dict[str, int] | None = None,
    elapsed: float = 0.0,
) -> Message:
    return {
        "type": DONE,
        "id": request_id,
        "outcome": outcome,
        "result": result,
        "error": error,
        "counts": counts or {},
        "elapsed": elapsed,
    }


def pong(request_id: int) -> Message:
    return {"type": PONG, "id": request_id}


def bye(request_id: int) -> Message:
    return {"type": BYE, "id": request_id}
