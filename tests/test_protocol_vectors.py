"""The test vectors of docs/protocol.md, checked in both directions (encode gives the frame, decode the message)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from leanworker.errors import HandshakeError, ProtocolError
from leanworker.protocol import messages
from leanworker.protocol.frames import FrameDecoder, encode_frame

VECTORS = json.loads((Path(__file__).parent / "vectors" / "vectors.json").read_text())


def from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vector_encodes_to_its_frame_and_decodes_to_its_message(vector: dict) -> None:
    message = from_json(vector["message"])
    frame = bytes.fromhex(vector["frame"])
    assert encode_frame(message) == frame
    decoded = FrameDecoder().feed(frame)
    assert decoded == [message]
    validate = messages.validate_from_worker if vector["direction"] == "from_worker" else messages.validate_to_worker
    assert validate(decoded[0]) == message["type"]


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vector_gives_its_protocol_error(vector: dict) -> None:
    decoder = FrameDecoder(VECTORS["max_frame_bytes"])
    with pytest.raises(ProtocolError, match=vector["error"]):
        decoder.feed(bytes.fromhex(vector["frame"]))
        decoder.close()


def test_every_message_kind_has_a_vector() -> None:
    kinds = {from_json(v["message"])["type"] for v in VECTORS["valid"]}
    assert kinds == set(messages.TO_WORKER) | set(messages.FROM_WORKER)


def test_unknown_kind_and_missing_fields_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="unknown message type"):
        messages.validate_from_worker({"type": "launch", "id": 1})
    with pytest.raises(ProtocolError, match="lacks field 'payloads'"):
        messages.validate_from_worker({"type": "rows", "id": 1, "stream": "s", "seq": 0})
    with pytest.raises(ProtocolError, match="must be an integer, got str"):
        messages.validate_from_worker({"type": "pong", "id": "1"})
    with pytest.raises(ProtocolError, match="must be an integer, got bool"):
        messages.validate_from_worker({"type": "pong", "id": True})
    with pytest.raises(ProtocolError, match="outcome"):
        messages.validate_from_worker(messages.done(1, "exploded"))


def test_hello_of_another_protocol_version_is_a_handshake_error() -> None:
    hello = messages.hello("x", 1, None, None)
    assert messages.check_hello(hello) is hello
    with pytest.raises(HandshakeError, match="protocol version 2"):
        messages.check_hello({**hello, "protocol": 2})
    with pytest.raises(HandshakeError, match="before saying hello"):
        messages.check_hello(messages.pong(1))


@pytest.mark.parametrize("counts", [{"rows": None}, {"rows": float("nan")}, {"rows": float("inf")}, {"rows": "3"},
                                    {"rows": -1}, {"rows": 2**63}, {"rows": True}, {1: 2}, [1, 2], None])
def test_done_counts_must_map_text_to_counts(counts: object) -> None:
    with pytest.raises(ProtocolError, match="done.counts"):
        messages.validate_from_worker({**messages.done(1, "ok"), "counts": counts})


@pytest.mark.parametrize(("kind", "field", "value"), [
    ("done", "elapsed", float("nan")), ("done", "elapsed", -1.0), ("done", "elapsed", "1"),
    ("done", "error", "boom"), ("done", "error", {"code": 1, "message": "x"}),
    ("progress", "current", float("inf")), ("progress", "current", None), ("progress", "total", float("nan")),
    ("progress", "current", True), ("diag", "severity", "fatal"), ("diag", "code", None),
    ("rows", "seq", -1), ("rows", "payloads", []), ("rows", "stream", 3), ("pong", "id", -1), ("pong", "id", 2**63),
    ("hello", "pid", 0), ("hello", "python", 3),
])
def test_every_field_of_a_worker_message_is_checked(kind: str, field: str, value: object) -> None:
    valid = {
        "done": messages.done(1, "ok"), "progress": messages.progress(1, "p", 1, None),
        "diag": messages.diag(1, "info", "c", "m"), "rows": messages.rows(1, "s", 0, [1]), "pong": messages.pong(1),
        "hello": messages.hello("h", 1, None, None),
    }[kind]
    messages.validate_from_worker(valid)
    with pytest.raises(ProtocolError, match=f"{kind}.{field}"):
        messages.validate_from_worker({**valid, field: value})


def test_a_done_with_outcome_error_needs_an_error_map() -> None:
    with pytest.raises(ProtocolError, match="done.error"):
        messages.validate_from_worker(messages.done(1, "error"))
