"""An item's verdict, read from the REPL's answer to it: a pure policy.

``error`` for an error object or any message of severity ``error``; else ``sorry`` when the answer reports a sorry;
else ``ok``. An answer whose fields are not shaped as the REPL's are (``{"env": 1, "messages": 5}``, a message
without a severity Lean has) gives no verdict: :class:`~leanworker.lean.faults.ReplBadAnswer`, never a guess.
"""

from __future__ import annotations

from typing import Any

from leanworker.lean.faults import ReplBadAnswer
from leanworker.lean.matching import is_error_object

SEVERITIES = ("info", "warning", "error")


def status_of(answer: dict[str, Any]) -> str:
    """``error``, ``sorry`` or ``ok`` for an answer already checked by :func:`verdict`."""
    if is_error_object(answer):
        return "error"
    if any(m.get("severity") == "error" for m in answer.get("messages") or []):
        return "error"
    return "sorry" if answer.get("sorries") else "ok"


def verdict(answer: Any) -> dict[str, Any]:
    """``{"status", "messages", "sorries"}`` (plus ``error`` for an error object) from an answer that was matched
    to its request; raises :class:`ReplBadAnswer` naming what is malformed."""
    if not isinstance(answer, dict):
        raise ReplBadAnswer(f"the REPL's answer is a {type(answer).__name__}, not an object")
    if is_error_object(answer):
        return {"status": "error", "messages": [], "sorries": [], "error": answer["message"]}
    messages = _entries(answer, "messages", _message_problem)
    sorries = _entries(answer, "sorries", _sorry_problem)
    return {"status": status_of(answer), "messages": messages, "sorries": sorries}


def _entries(answer: dict[str, Any], field: str, problem_of: Any) -> list[dict[str, Any]]:
    value = answer.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ReplBadAnswer(f"the REPL's answer has {field} of type {type(value).__name__} ({value!r:.80}), "
                            "where a list belongs")
    for index, entry in enumerate(value):
        problem = problem_of(entry)
        if problem is not None:
            raise ReplBadAnswer(f"the REPL's answer has a malformed {field[:-1] if field != 'sorries' else 'sorry'} "
                                f"(entry {index}): {problem}")
    return value


def _message_problem(entry: object) -> str | None:
    if not isinstance(entry, dict):
        return f"a {type(entry).__name__}, not an object"
    if entry.get("severity") not in SEVERITIES:
        return f"severity {entry.get('severity')!r:.40} is not one of {', '.join(SEVERITIES)}"
    if not isinstance(entry.get("data"), str):
        return f"data of type {type(entry.get('data')).__name__}, not text"
    return None


def _sorry_problem(entry: object) -> str | None:
    if not isinstance(entry, dict):
        return f"a {type(entry).__name__}, not an object"
    if not isinstance(entry.get("goal"), str):
        return f"goal of type {type(entry.get('goal')).__name__}, not text"
    return None
