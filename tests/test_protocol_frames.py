"""Frames: length prefix, cap, strict CBOR. Bad bytes give a typed ProtocolError, never a hang or another error."""

from __future__ import annotations

import struct

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leanworker.errors import ProtocolError
from leanworker.protocol.frames import FrameDecoder, decode_body, encode_frame

plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text()
    | st.binary(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)
messages_strategy = st.dictionaries(st.text(min_size=1), plain_values, min_size=1, max_size=5)


def frame_of(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


@given(messages_strategy)
def test_a_plain_message_round_trips_through_a_frame(message: dict) -> None:
    assert FrameDecoder().feed(encode_frame(message)) == [message]


@given(st.lists(messages_strategy, min_size=1, max_size=4), st.data())
def test_frames_split_at_any_byte_decode_the_same(frames: list[dict], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(m) for m in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    decoder = FrameDecoder()
    out: list[dict] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out += decoder.feed(stream[start:cut])
        start = cut
    decoder.close()
    assert out == frames


@settings(max_examples=500)
@given(st.binary(max_size=512))
def test_random_bytes_yield_frames_or_a_protocol_error(data: bytes) -> None:
    decoder = FrameDecoder(max_bytes=64 * 1024)
    try:
        for message in decoder.feed(data):
            assert isinstance(message, dict) and all(isinstance(k, str) for k in message)
        decoder.close()
    except ProtocolError:
        pass


@settings(max_examples=300)
@given(st.binary(max_size=256))
def test_random_bodies_decode_or_raise_protocol_error(body: bytes) -> None:
    try:
        assert isinstance(decode_body(body), dict)
    except ProtocolError:
        pass


def test_oversized_length_is_refused_from_the_header_alone() -> None:
    decoder = FrameDecoder(max_bytes=1024)
    with pytest.raises(ProtocolError, match="exceeds the cap"):
        decoder.feed(struct.pack(">I", 1025))  # no body bytes at all
    with pytest.raises(ProtocolError):  # poisoned: a byte stream cannot resynchronise
        decoder.feed(b"")


def test_encoding_refuses_a_body_over_the_cap() -> None:
    with pytest.raises(ProtocolError, match="exceeds the cap"):
        encode_frame({"type": "x", "blob": b"\0" * 2000}, max_bytes=1024)


def test_a_truncated_frame_is_an_error_at_end_of_stream() -> None:
    decoder = FrameDecoder()
    frame = encode_frame({"type": "ping", "id": 1})
    assert decoder.feed(frame[:-1]) == []
    with pytest.raises(ProtocolError, match="inside a frame"):
        decoder.close()


@pytest.mark.parametrize("item, reason", [
    ([1, 2], "must be a CBOR map"),
    ("text", "must be a CBOR map"),
    ({1: "int key"}, "keys must be text"),
])
def test_a_body_that_is_not_a_text_keyed_map_is_refused(item: object, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_body(cbor2.dumps(item))


@pytest.mark.parametrize("hex_body", [
    "a16174c074323031332d30332d32315432303a30343a30305a",  # tag 0: a datetime
    "a16174c249010000000000000000",  # tag 2: a bignum
    "a16174d9010283010203",  # tag 258: a set
    "a16174d81c80",  # tag 28: a shared reference
    "a16174d903e880",  # an unknown tag
])
def test_cbor_tags_are_refused(hex_body: str) -> None:
    with pytest.raises(ProtocolError, match="tag"):
        decode_body(bytes.fromhex(hex_body))


@pytest.mark.parametrize("hex_body", ["a16174f7", "a16174f0", "a16174f820"])  # undefined, simple(16), simple(32)
def test_non_plain_simple_values_are_refused(hex_body: str) -> None:
    with pytest.raises(ProtocolError, match="not plain data"):
        decode_body(bytes.fromhex(hex_body))


def test_bad_cbor_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="bad CBOR"):
        decode_body(b"\xa1\x61")  # a map whose key is cut short


def test_nesting_beyond_the_limit_is_refused() -> None:
    value: object = 1
    for _ in range(100):
        value = [value]
    with pytest.raises(ProtocolError):
        decode_body(cbor2.dumps({"deep": value}))


def test_bytes_after_the_one_cbor_item_are_a_protocol_error() -> None:
    body = cbor2.dumps({"type": "pong", "id": 1})
    assert decode_body(body) == {"type": "pong", "id": 1}
    with pytest.raises(ProtocolError, match="after its one CBOR item"):
        decode_body(body + b"\x01")
    with pytest.raises(ProtocolError, match="after its one CBOR item"):
        FrameDecoder().feed(struct.pack(">I", len(body) + 2) + body + b"\xa0\xa0")


def test_nesting_at_the_limit_passes_and_one_more_level_is_refused() -> None:
    def nested(levels: int) -> object:
        value: object = 1
        for _ in range(levels):
            value = [value]
        return value

    decode_body(cbor2.dumps({"deep": nested(63)}))  # the message map plus 63 levels: 64 in all
    with pytest.raises(ProtocolError, match="deeper than 64"):
        decode_body(cbor2.dumps({"deep": nested(64)}))
