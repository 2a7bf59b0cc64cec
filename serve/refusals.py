"""Refused requests, typed: the status, a ``detail`` in FastAPI's shape (what the Kimina server and its clients
know), and headers such as ``Retry-After``."""

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


def field_error(kind: str, loc: Sequence[str | int], msg: str, value: Any = None,
                ctx: dict[str, Any] | None = None) -> dict[str, Any]:
    """One entry of a 422/400 ``detail`` list, as FastAPI writes it (``loc`` starts with ``"body"``/``"query"``)."""
    entry: dict[str, Any] = {"type": kind, "loc": list(loc), "msg": msg, "input": value}
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
                            {k: ({} if isinstance(v, Exception) else v) for k, v in ctx.items()} if ctx else None)
        rendered.append(entry)
    return invalid(rendered)
