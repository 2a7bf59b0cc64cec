"""Fitting a ``check`` row into one protocol frame: a pure policy.

A row travels in one frame of the worker protocol (1 MiB by default, ``WorkerConfig.max_frame_bytes``). A valid
answer can be far larger (a 10 MB message, thousands of warnings). Such a row keeps its verdict, which was read from
the whole answer, and is cut to fit: every text longer than :data:`TEXT_CAP` characters is shortened (with a marker
saying how much was cut), then messages and sorries are kept in order while they fit. ``truncated`` then gives the
counts the answer had and its size, so a reader knows the row is partial.
"""

from __future__ import annotations

from typing import Any

import cbor2

from leanworker.errors import NotPlainData
from leanworker.protocol.plain import MAX_DEPTH, check_plain

TEXT_CAP = 16 * 1024
ROW_DEPTH = MAX_DEPTH - 2  # a row nests inside the rows frame and its payloads
RESULT_DEPTH = MAX_DEPTH - 1  # a command's result nests inside the done frame
FRAME_HEADROOM = 1024  # the rows frame's own fields around the payload
_LISTS = ("messages", "sorries")


def encoded_size(value: Any) -> int:
    return len(cbor2.dumps(value))


def wire_problem(value: Any, where: str, max_depth: int) -> str | None:
    """Why the worker protocol cannot carry ``value`` (a lone UTF-16 surrogate in a text, an int past 2**64,
    nesting past the protocol's depth), naming the part with ``where`` as its root, or None. JSON can hold all of
    these; a frame cannot."""
    try:
        check_plain(value, where, max_depth)
    except NotPlainData as exc:
        return str(exc)
    return None


def fit_row(row: dict[str, Any], max_bytes: int, answer_bytes: int | None = None) -> dict[str, Any]:
    """``row`` if it encodes within ``max_bytes - FRAME_HEADROOM``, else a cut copy with ``truncated`` set."""
    budget = max_bytes - FRAME_HEADROOM
    surely_too_large = answer_bytes is not None and answer_bytes > 8 * budget  # spare encoding all of it
    if not surely_too_large and encoded_size(row) <= budget:
        return row
    cut = {key: _shorten(value) for key, value in row.items() if key not in _LISTS}
    cut["truncated"] = {"messages": len(row.get("messages") or []), "sorries": len(row.get("sorries") or []),
                        "answer_bytes": answer_bytes}
    left = budget - encoded_size(cut) - 2 * 16
    for field in _LISTS:
        kept = []
        for entry in row.get(field) or []:
            short = _shorten(entry)
            size = encoded_size(short)
            if size > left:
                left = 0
                break
            kept.append(short)
            left -= size
        cut[field] = kept
    return cut


def _shorten(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) <= TEXT_CAP:
            return value
        return value[:TEXT_CAP] + f" [... {len(value) - TEXT_CAP} more characters cut by leanworker]"
    if isinstance(value, dict):
        return {key: _shorten(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shorten(item) for item in value]
    return value
