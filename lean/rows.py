"""Fitting a ``check`` row into one protocol frame, and what a row may carry: pure policies, for both capabilities.

A row travels in one frame of the worker protocol (1 MiB by default, ``WorkerConfig.max_frame_bytes``, 64 KiB at
the least). A valid answer can be far larger (a 10 MB message, thousands of warnings). Such a row keeps its verdict,
which was read from the whole answer, and is cut to fit: every text longer than :data:`TEXT_CAP` characters is
shortened (with a marker saying how much was cut; shorter still if the row does not fit even so), then messages and
sorries are kept in order while they fit. ``truncated`` then gives the counts the answer had and its size, so a
reader knows the row is partial. The item's ``id`` is never cut: an id must encode in :data:`ID_MAX_BYTES` or the
request is refused before anything runs (:func:`id_problem`).
"""

from __future__ import annotations

from typing import Any

import cbor2

from leanworker.errors import NotPlainData
from leanworker.protocol.plain import MAX_DEPTH, check_plain

TEXT_CAP = 16 * 1024
_SMALLER_CAPS = (4096, 1024, 256)  # when texts cut to TEXT_CAP still do not fit the frame
ID_MAX_BYTES = 4096
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


def id_problem(item_id: Any) -> str | None:
    """Why ``item_id`` cannot be an item's id (it must come back whole in every row of that item), or None."""
    size = encoded_size(item_id)
    if size > ID_MAX_BYTES:
        return f"encodes to {size} bytes; an id may take at most {ID_MAX_BYTES} (it comes back in the item's row)"
    return None


def fit_row(row: dict[str, Any], max_bytes: int, answer_bytes: int | None = None) -> dict[str, Any]:
    """``row`` if it encodes within ``max_bytes - FRAME_HEADROOM``, else a cut copy with ``truncated`` set."""
    budget = max_bytes - FRAME_HEADROOM
    surely_too_large = answer_bytes is not None and answer_bytes > 8 * budget  # spare encoding all of it
    if not surely_too_large and encoded_size(row) <= budget:
        return row
    for cap in (TEXT_CAP, *_SMALLER_CAPS):
        cut = {key: value if key == "id" else _shorten(value, cap) for key, value in row.items()
               if key not in _LISTS}
        cut["truncated"] = {"messages": len(row.get("messages") or []), "sorries": len(row.get("sorries") or []),
                            "answer_bytes": answer_bytes}
        left = budget - encoded_size(cut) - 2 * 16
        if left >= 0:
            break
    for field in _LISTS:
        kept = []
        for entry in row.get(field) or []:
            short = _shorten(entry, TEXT_CAP)
            size = encoded_size(short)
            if size > left:
                left = 0
                break
            kept.append(short)
            left -= size
        cut[field] = kept
    return cut


def _shorten(value: Any, cap: int) -> Any:
    if isinstance(value, str):
        if len(value) <= cap:
            return value
        return value[:cap] + f" [... {len(value) - cap} more characters cut by leanworker]"
    if isinstance(value, dict):
        return {key: _shorten(item, cap) for key, item in value.items()}
    if isinstance(value, list):
        return [_shorten(item, cap) for item in value]
    return value
