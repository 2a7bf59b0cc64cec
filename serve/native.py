"""The native endpoint's shapes: ``POST /v1/check`` takes items as a JSON list, or JSON lines when the content type
is ``application/x-ndjson``, and answers one JSON line per item as it completes.

An item is ``{"id": string or integer, "code": string}`` (other fields are ignored); ids are unique in a request.
A result line is ``{"id", "status", "messages", "sorries", "elapsed_s"}`` with positions in the item's code as
given, ``"error"`` when there is one, ``"cached": true`` for a cache hit and ``"simulated": true`` when the REPL is
the simulator. ``status`` is one of ``leanworker check``'s (``ok``, ``sorry``, ``error``, ``timeout``,
``crashed``) or ``unchecked`` (no verdict; ``error`` says why).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, FailFast, StrictInt, StrictStr, TypeAdapter, ValidationError

from leanworker.serve import json_body
from leanworker.serve.checker import Row
from leanworker.serve.refusals import HTTPRefusal, brief, field_error, from_pydantic, invalid

NDJSON = "application/x-ndjson"


class NativeItem(BaseModel):
    id: StrictStr | StrictInt
    code: StrictStr


_ITEMS = TypeAdapter(Annotated[list[NativeItem], FailFast()])  # a refusal names the first bad item, not each


def parse_items(body: bytes, content_type: str, most: int | None = None,
                count: Callable[[int], None] | None = None) -> list[NativeItem]:
    """The items of a request body; raises :class:`HTTPRefusal` (400 for bad JSON, 422 for a wrong shape).
    ``count(n)`` is told how many values the body holds before they are read as items (it may refuse them); JSON
    lines are read no further than ``most`` + 1 values."""
    if content_type.split(";")[0].strip().lower() == NDJSON:
        values = json_body.parse_lines(body, status=400, most=most)
    else:
        values = json_body.parse_body(body, status=400)
        if not isinstance(values, list):
            raise invalid([field_error("list_type", ["body"], "a JSON list of {\"id\", \"code\"} items (or JSON "
                                       f"lines with Content-Type: {NDJSON})", values)])
    if count is not None:
        count(len(values))
    try:
        items = _ITEMS.validate_python(values)
    except ValidationError as exc:
        raise from_pydantic(exc.errors(include_url=False)) from None
    if not items:
        raise invalid([field_error("too_short", ["body"], "no items", [])])
    seen: set[tuple[type, Any]] = set()
    for index, item in enumerate(items):
        marker = (type(item.id), item.id)
        if marker in seen:
            raise invalid([field_error("duplicate_id", ["body", index, "id"],
                                       f"duplicate id {brief(item.id)!r}: ids must be unique in a request", item.id)])
        seen.add(marker)
    return items


def parse_timeout(raw: str | None, default: float | None, maximum: float) -> float | None:
    """The ``timeout`` query parameter (seconds, > 0), capped at ``maximum``; ``default`` when absent."""
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise HTTPRefusal(422, [field_error("greater_than", ["query", "timeout"],
                                               "timeout must be a number of seconds > 0", raw, {"gt": 0})])
    return min(value, maximum)


def result_line(item_id: Any, row: Row, *, cached: bool, simulated: bool) -> bytes:
    """One JSON line of results."""
    line: dict[str, Any] = {"id": item_id, "status": row.get("status"), "messages": row.get("messages") or [],
                            "sorries": row.get("sorries") or [], "elapsed_s": row.get("elapsed_s", 0.0)}
    if "error" in row:
        line["error"] = row["error"]
    if cached:
        line["cached"] = True
    if simulated:
        line["simulated"] = True
    return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
