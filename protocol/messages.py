"""The message kinds of the leanworker protocol, their required fields, and constructors.

Parent to worker: ``configure``, ``open``, ``call``, ``cancel``, ``ping``, ``stop``.
Worker to parent: ``hello``, ``rows``, ``diag``, ``progress``, ``done``, ``pong``, ``bye``.
Every message but ``hello`` carries ``id``, the request id it belongs to. docs/protocol.md is the spec.
"""

from __future__ import annotations

from typing import Any, Final

from leanworker.errors import HandshakeError, ProtocolError
from leanworker.protocol.frames import Message

PROTOCOL_VERSION: Final = 1

OUTCOME_OK: Final = "ok"
OUTCOME_ERROR: Final = "error"
OUTCOME_CANCELLED: Final = "cancelled"
WIRE_OUTCOMES: Final = frozenset({OUTCOME_OK, OUTCOME_ERROR, OUTCOME_CANCELLED})

_INT = (int,)
_STR = (str,)
_OPT_STR = (str, type(None))
_NUM = (int, float)
_ANY: tuple[type, ...] = ()

# kind -> {field: allowed types}; an empty tuple means "any plain value".
TO_WORKER: Final[dict[str, dict[str, tuple[type, ...]]]] = {
    "configure": {"id": _INT, "max_frame_bytes": _INT},
    "open": {"id": _INT, "capability": _STR, "workspace": _OPT_STR, "imports": (list,), "options": (dict,)},
    "call": {"id": _INT, "command": _STR, "request": _ANY, "stream": (bool,)},
    "cancel": {"id": _INT},
    "ping": {"id": _INT},
    "stop": {"id": _INT},
}
FROM_WORKER: Final[dict[str, dict[str, tuple[type, ...]]]] = {
    "hello": {"protocol": _INT, "host": _STR, "pid": _INT},
    "rows": {"id": _INT, "stream": _STR, "seq": _INT, "payloads": (list,)},
    "diag": {"id": _INT, "severity": _STR, "code": _STR, "message": _STR},
    "progress": {"id": _INT, "phase": _STR, "current": _NUM, "total": (int, float, type(None))},
    "done": {"id": _INT, "outcome": _STR, "counts": (dict,), "elapsed": _NUM},
    "pong": {"id": _INT},
    "bye": {"id": _INT},
}


def _validate(message: Message, table: dict[str, dict[str, tuple[type, ...]]], direction: str) -> str:
    kind = message.get("type")
    if type(kind) is not str:
        raise ProtocolError(f"message has no text 'type' field: {sorted(message)!r}")
    fields = table.get(kind)
    if fields is None:
        raise ProtocolError(f"unknown message type {kind!r} {direction}")
    for name, types in fields.items():
        if name not in message:
            raise ProtocolError(f"{kind} message lacks field {name!r}")
        if types and not isinstance(message[name], types):
            raise ProtocolError(f"{kind}.{name} has type {type(message[name]).__name__}")
        if types == _INT and type(message[name]) is bool:
            raise ProtocolError(f"{kind}.{name} must be an integer, not a bool")
    return kind


def validate_from_worker(message: Message) -> str:
    """Check a message a worker sent; return its kind or raise :class:`ProtocolError`."""
    kind = _validate(message, FROM_WORKER, "from a worker")
    if kind == "done" and message["outcome"] not in WIRE_OUTCOMES:
        raise ProtocolError(f"done.outcome {message['outcome']!r} is not one of {sorted(WIRE_OUTCOMES)}")
    return kind


def validate_to_worker(message: Message) -> str:
    """Check a message a parent sent; return its kind or raise :class:`ProtocolError`."""
    return _validate(message, TO_WORKER, "to a worker")


def check_hello(message: Message) -> Message:
    """Validate the first message of a worker: it must be a ``hello`` of our protocol version."""
    try:
        kind = validate_from_worker(message)
    except ProtocolError as exc:
        raise HandshakeError(f"bad hello: {exc}") from None
    if kind != "hello":
        raise HandshakeError(f"worker spoke {kind!r} before saying hello")
    if message["protocol"] != PROTOCOL_VERSION:
        raise HandshakeError(
            f"worker speaks protocol version {message['protocol']}, this parent speaks {PROTOCOL_VERSION}"
        )
    return message


# Constructors. They return plain dicts: the wire form is the data model.


def hello(host: str, pid: int, python: str | None, lean: str | None) -> Message:
    return {"type": "hello", "protocol": PROTOCOL_VERSION, "host": host, "pid": pid, "python": python, "lean": lean}


def configure(request_id: int, max_frame_bytes: int) -> Message:
    return {"type": "configure", "id": request_id, "max_frame_bytes": max_frame_bytes}


def open_session(
    request_id: int, capability: str, workspace: str | None, imports: list[str], options: dict[str, Any]
) -> Message:
    return {
        "type": "open",
        "id": request_id,
        "capability": capability,
        "workspace": workspace,
        "imports": imports,
        "options": options,
    }


def call(request_id: int, command: str, request: Any, stream: bool) -> Message:
    return {"type": "call", "id": request_id, "command": command, "request": request, "stream": stream}


def cancel(request_id: int) -> Message:
    return {"type": "cancel", "id": request_id}


def ping(request_id: int) -> Message:
    return {"type": "ping", "id": request_id}


def stop(request_id: int) -> Message:
    return {"type": "stop", "id": request_id}


def rows(request_id: int, stream: str, seq: int, payloads: list[Any]) -> Message:
    return {"type": "rows", "id": request_id, "stream": stream, "seq": seq, "payloads": payloads}


def diag(request_id: int, severity: str, code: str, message: str, data: Any = None) -> Message:
    return {"type": "diag", "id": request_id, "severity": severity, "code": code, "message": message, "data": data}


def progress(request_id: int, phase: str, current: float, total: float | None) -> Message:
    return {"type": "progress", "id": request_id, "phase": phase, "current": current, "total": total}


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
        "type": "done",
        "id": request_id,
        "outcome": outcome,
        "result": result,
        "error": error,
        "counts": counts or {},
        "elapsed": elapsed,
    }


def pong(request_id: int) -> Message:
    return {"type": "pong", "id": request_id}


def bye(request_id: int) -> Message:
    return {"type": "bye", "id": request_id}
