"""Refused requests, typed: the status, a ``detail`` in FastAPI's shape (what the Kimina server and its clients
know), and headers such as ``Retry-After``.

A ``detail`` entry echoes the offending ``input`` as FastAPI does, but bounded (:func:`brief`): a client's 60 MiB
string or a list nested a thousand deep is described, never sent back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


class HTTPRefusal(Exception):
    """A request answered with ``status`` and ``{"detail": detail}`` instead of results (an HTTP answer; not the
    runtime's ``lw.RequestRefused``)."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.headers = headers or {}


ECHO_CHARS = 200  # the most of a client's string a refusal echoes
ECHO_NODES = 50  # the most values of a client's list or object a refusal echoes


def brief(value: Any) -> Any:
    """``value`` as a refusal may echo it: itself when small, else a short description of it."""
    budget = [ECHO_NODES]

    def small(node: Any, depth: int) -> bool:
        budget[0] -= 1
        if budget[0] < 0 or depth > 8:
            return False
        if isinstance(node, str):
            return len(node) <= ECHO_CHARS
        if isinstance(node, float):
            return node == node and node not in (float("inf"), float("-inf"))
        if isinstance(node, int) and not isinstance(node, bool):
            return abs(node) < 10**40
        if isinstance(node, list):
            return all(small(item, depth + 1) for item in node)
        if isinstance(node, dict):
            return all(isinstance(k, str) and small(k, depth + 1) and small(v, depth + 1) for k, v in node.items())
        return node is None or isinstance(node, bool)

    if small(value, 0):
        return value
    if isinstance(value, str):
        return f"{value[:ECHO_CHARS]}... ({len(value)} characters)"
    if isinstance(value, list):
        return f"(a list of {len(value)} items)"
    if isinstance(value, dict):
        return f"(an object of {len(value)} keys)"
    return f"(a {type(value).__name__})"


def field_error(kind: str, loc: Sequence[str | int], msg: str, value: Any = None,
                ctx: dict[str, Any] | None = None) -> dict[str, Any]:
    """One entry of a 422/400 ``detail`` list, as FastAPI writes it (``loc`` starts with ``"body"``/``"query"``;
    ``value``, the input, echoed in brief)."""
    entry: dict[str, Any] = {"type": kind, "loc": [brief(part) for part in loc], "msg": msg, "input": brief(value)}
    if ctx is not None:
        entry["ctx"] = ctx
    return entry


def invalid(errors: list[dict[str, Any]], status: int = 422) -> HTTPRefusal:
    return HTTPRefusal(status, errors)


def json_invalid(exc: json.JSONDecodeError, loc_prefix: Sequence[str | int] = ("body",),
                 status: int = 422) -> HTTPRefusal:
    """Malformed JSON, as FastAPI reports it (the position of the error in ``loc``)."""
    return invalid([field_error("json_invalid", [*loc_prefix, exc.pos], "JSON decode error", {},
                                {"error": exc.msg})], status)


def from_pydantic(errors: Sequence[Any], loc_prefix: Sequence[str | int] = ("body",)) -> HTTPRefusal:
    """A pydantic ``ValidationError.errors()`` list as a 422, as FastAPI renders it (exceptions in ``ctx`` as {})."""
    rendered = []
    for error in errors:
        ctx = error.get("ctx")
        entry = field_error(error["type"], [*loc_prefix, *error["loc"]], error["msg"], error.get("input"),
                            {k: ({} if isinstance(v, Exception) else brief(v)) for k, v in ctx.items()} if ctx
                            else None)
        rendered.append(entry)
    return invalid(rendered)
