"""The leanworker wire protocol: frames and messages. Pure functions; no threads, no processes."""

from leanworker.protocol.frames import (
    DEFAULT_MAX_FRAME_BYTES,
    MAX_FRAME_CAP,
    MIN_FRAME_CAP,
    FrameDecoder,
    FrameReader,
    Message,
    decode_body,
    encode_frame,
)
from leanworker.protocol.messages import PROTOCOL_VERSION, check_hello, validate_from_worker, validate_to_worker

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "MAX_FRAME_CAP",
    "MIN_FRAME_CAP",
    "PROTOCOL_VERSION",
    "FrameDecoder",
    "FrameReader",
    "Message",
    "check_hello",
    "decode_body",
    "encode_frame",
    "validate_from_worker",
    "validate_to_worker",
]
