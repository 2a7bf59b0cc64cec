"""Regenerate vectors.json: ``python tests/vectors/generate.py``. Review the diff: vectors are the spec's examples.

Each valid vector is a frame and the message it means; each invalid vector is a frame and the error it must give.
Bytes values are written as {"$bytes": "<hex>"} because JSON has no bytes.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from leanworker.protocol import messages as m
from leanworker.protocol.frames import encode_frame

VALID = [
    ("hello", "from_worker", m.hello("leanworker-host/0.1.0", 4242, "3.11.7", None)),
    ("configure", "to_worker", m.configure(1, 1048576)),
    ("open", "to_worker", m.open_session(2, "pkg.mod:capability", "/work/project", ["Mathlib"], {"import_ms": 200})),
    ("call_streaming", "to_worker", m.call(3, "index", {"modules": ["Mathlib.Logic.Basic"]}, True)),
    ("call_plain", "to_worker", m.call(4, "version", None, False)),
    ("cancel", "to_worker", m.cancel(3)),
    ("ping", "to_worker", m.ping(5)),
    ("stop", "to_worker", m.stop(6)),
    ("rows", "from_worker", m.rows(3, "declarations", 0, [{"module": "Mathlib.Logic.Basic", "n": 1},
                                                          {"module": "Mathlib.Logic.Basic", "n": 2}])),
    ("rows_with_bytes", "from_worker", m.rows(3, "blobs", 2, [{"data": b"\x00\x01\xff"}])),
    ("diag", "from_worker", m.diag(3, "info", "index.start", "index of 1 modules", None)),
    ("progress", "from_worker", m.progress(3, "index.chunk", 1, 4)),
    ("done_ok", "from_worker", m.done(3, "ok", result={"rows": 2}, counts={"declarations": 2}, elapsed=0.25)),
    ("done_error", "from_worker", m.done(4, "error", error={"code": "exception", "message": "RuntimeError: x"},
                                        elapsed=0.5)),
    ("done_cancelled", "from_worker", m.done(3, "cancelled", counts={"declarations": 7}, elapsed=0.125)),
    ("pong", "from_worker", m.pong(5)),
    ("bye", "from_worker", m.bye(6)),
]

INVALID = [
    ("not_a_map", struct.pack(">I", 3) + bytes.fromhex("820102"), "must be a CBOR map"),
    ("int_key", struct.pack(">I", 3) + bytes.fromhex("a10102"), "keys must be text"),
    ("tagged_datetime", struct.pack(">I", 25) + bytes.fromhex("a16174c074323031332d30332d32315432303a30343a30305a"),
     "tag"),
    ("undefined_value", struct.pack(">I", 4) + bytes.fromhex("a16174f7"), "not plain data"),
    ("bytes_after_the_item", struct.pack(">I", 5) + bytes.fromhex("a1617401") + b"\x00", "after its one CBOR item"),
    ("over_cap_length", struct.pack(">I", 0x7FFFFFFF), "exceeds the cap"),
    ("truncated_body", struct.pack(">I", 10) + b"\xa1", "inside a frame"),
]


def _jsonable(value: object) -> object:
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def main() -> None:
    data = {
        "protocol": m.PROTOCOL_VERSION,
        "max_frame_bytes": 1048576,
        "valid": [{"name": n, "direction": d, "frame": encode_frame(msg).hex(), "message": _jsonable(msg)}
                  for n, d, msg in VALID],
        "invalid": [{"name": n, "frame": f.hex(), "error": e} for n, f, e in INVALID],
    }
    path = Path(__file__).with_name("vectors.json")
    path.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
