"""Request bodies read as JSON, refusing what Python's ``json`` lets through and a service must not take.

``json.loads`` accepts ``NaN`` and ``Infinity`` (not JSON), turns ``1e400`` into infinity, raises ``ValueError`` for
an integer of more than 4,300 digits and ``RecursionError`` for arrays nested a thousand deep, and keeps a lone
UTF-16 surrogate escape (``"\\ud800"``) as a string that cannot be encoded again. Each of these would otherwise
become a 500 or a stream cut short later on; here each is a typed refusal naming where it is (``loc``): nesting too
deep and an integer too long with ``400``, as FastAPI (and so the Kimina server) answers a body it cannot parse, the
others with the status the endpoint uses for malformed JSON (422 on Kimina's endpoints, as FastAPI; 400 on the
native one), where the Kimina server answers 500.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from leanworker.serve.refusals import HTTPRefusal, field_error, invalid, json_invalid

MAX_DIGITS = 1000  # an integer longer than this is refused (Python's own limit is 4,300)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_BLANKS = re.compile(r"\s*")  # blanks as str.strip's, newlines included


UNPARSABLE = 400  # FastAPI's status for a body its JSON parser gives up on ("There was an error parsing the body")


class _NotJSON(ValueError):
    """A value ``json.loads`` would take that the service refuses (raised from the parser's hooks)."""


class _TooLong(_NotJSON):
    """An integer past :data:`MAX_DIGITS` (Python's parser gives up on it, or takes quadratic time)."""


def _constant(name: str) -> Any:
    raise _NotJSON(f"{name} is not JSON")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJSON(f"the number {text[:40]} is out of range")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise _TooLong(f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_DIGITS})")
    return int(text)


def decode_utf8(body: bytes, loc: Sequence[str | int] = ("body",), status: int = 422) -> str:
    """``body`` as text, or a refusal when it is not UTF-8 (JSON exchanged between systems is UTF-8, RFC 8259)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid([field_error("utf8", [*loc, exc.start], "the body is not UTF-8")], status) from None


def loads(text: str, loc: Sequence[str | int] = ("body",), status: int = 422) -> Any:
    """One JSON value from ``text``; :class:`HTTPRefusal` with ``status`` for anything that is not plain JSON."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise json_invalid(exc, loc, status) from None
    except RecursionError:
        raise invalid([field_error("json_invalid", list(loc), "JSON nested too deeply", {},
                                   {"error": "nested too deeply"})], UNPARSABLE) from None
    except _NotJSON as exc:
        raise invalid([field_error("json_invalid", list(loc), "JSON decode error", {}, {"error": str(exc)})],
                      UNPARSABLE if isinstance(exc, _TooLong) else status) from None
    if _SURROGATE_ESCAPE.search(text):  # a pair of escapes is one character; only a lone one is refused
        where = _lone_surrogate(value)
        if where is not None:
            raise invalid([field_error("string_unicode", [*loc, *where], "a lone UTF-16 surrogate: not a Unicode "
                                       "character", None)], status)
    return value


def _lone_surrogate(value: Any) -> list[str | int] | None:
    """Where the first string (or key) that cannot be encoded as UTF-8 is, or None."""
    stack: list[tuple[list[str | int], Any]] = [([], value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            if not _encodable(node):
                return path
        elif isinstance(node, list):
            stack.extend(([*path, i], item) for i, item in enumerate(node))
        elif isinstance(node, dict):
            for key, item in node.items():
                if not _encodable(key):
                    return path
                stack.append(([*path, key], item))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_body(body: bytes, status: int = 422) -> Any:
    """A whole body as one JSON value (an empty body is a missing one, 422, as FastAPI answers)."""
    if not body.strip():
        raise HTTPRefusal(422, [field_error("missing", ["body"], "Field required")])
    return loads(decode_utf8(body, status=status), status=status)


def parse_lines(body: bytes, status: int = 400, most: int | None = None) -> list[Any]:
    """A JSON lines body: one value per line (lines end with ``\n``, a ``\r`` before it ignored; a JSON string may
    hold U+2028 and the like), blank lines skipped; ``loc`` names the line (from 1). Read no further than ``most``
    + 1 values (the caller refuses so many). Blanks are skipped by a regular expression, never listed: a body of 64
    MiB of newlines is not 64 million strings."""
    text = decode_utf8(body, status=status)
    values: list[Any] = []
    number, counted, at = 1, 0, 0  # the line number at offset `counted`; where to look next
    while (at := _BLANKS.match(text, at).end()) < len(text):  # type: ignore[union-attr]  # `*`: always matches
        start = text.rfind("\n", 0, at) + 1  # the line as given, its leading blanks included
        end = text.find("\n", at)
        end = len(text) if end < 0 else end
        number += text.count("\n", counted, start)
        counted = start
        values.append(loads(text[start:end], ("body", f"line {number}"), status))
        if most is not None and len(values) > most:
            break
        at = end
    return values
