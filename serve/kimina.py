"""The Kimina Lean Server's shapes (kimina-ast-server 2.1.3 and kimina-client 0.2), so its clients work unchanged.

Requests are validated with models that mirror the client's own (same fields, defaults, bounds and messages), so a
wrong request gets the 422 the Kimina server would give. Results follow its ``ReplResponse`` and ``/verify``
shapes, with ``None`` fields left out as that server does, and with these differences (docs/serve.md):

- a crashed REPL is reported with its real fate (``"Lean REPL crashed: ..."``), not as a JSON decode error;
- ``diagnostics`` appears only when the request asked for ``debug`` (Kimina adds it to timeouts regardless), and
  holds ``cached``, ``status`` and ``simulated``; the client's model ignores keys it does not know;
- ``/verify`` refuses duplicate ``custom_id`` values, a negative ``timeout`` and a code with neither ``proof`` nor
  ``code`` (422; Kimina checks duplicates twice, runs a negative timeout as an immediate timeout, and answers 500 to
  the last);
- a list of bad snippets (or codes) is refused for its first bad one: the Kimina server names each, and an answer
  one error an item would be as large as the request many times over;
- ``response`` holds the REPL's ``messages`` and ``sorries`` (not its ``env`` number, which says nothing to a
  client), with positions relative to the snippet's body after its import lines, as Kimina reports them.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from leanworker.serve.checker import Row
from leanworker.serve.refusals import brief, from_pydantic


class Infotree(str, Enum):
    full = "full"
    tactics = "tactics"
    original = "original"
    substantive = "substantive"


class Snippet(BaseModel):
    id: str
    code: str


class CheckRequest(BaseModel):
    """``POST /api/check``."""

    snippets: Annotated[list[Snippet], Field(fail_fast=True)]  # a refusal names the first bad one, not each
    timeout: int = Field(30, ge=0)
    debug: bool = False
    reuse: bool = True
    infotree: Infotree | None = None

    @model_validator(mode="after")
    def check_snippets(self) -> CheckRequest:
        if not self.snippets:
            raise ValueError("`snippets` must be non empty")
        if len({s.id for s in self.snippets}) != len(self.snippets):
            raise ValueError("`snippets` must have unique ids")
        return self


class Code(BaseModel):
    custom_id: str | int
    proof: str | None = None
    code: str | None = None

    @model_validator(mode="after")
    def has_content(self) -> Code:
        if self.proof is None and self.code is None:
            raise ValueError(f"code {brief(self.custom_id)!r} has neither `proof` nor `code`")
        return self

    @property
    def content(self) -> str:
        return self.proof if self.proof is not None else self.code or ""


class VerifyRequest(BaseModel):
    """``POST /verify`` (and ``/one_pass_verify_batch``), the older shape."""

    codes: Annotated[list[Code], Field(fail_fast=True)]
    timeout: int = Field(300, ge=0)
    infotree_type: Infotree | None = None
    disable_cache: bool = False

    @model_validator(mode="after")
    def unique_ids(self) -> VerifyRequest:
        if len({str(c.custom_id) for c in self.codes}) != len(self.codes):
            raise ValueError("`codes` must have unique custom ids")
        return self


def parse_check(payload: Any) -> CheckRequest:
    """A ``/api/check`` body, or :class:`HTTPRefusal` 422 with the Kimina server's detail."""
    try:  # from_attributes: FastAPI validates bodies so, and its error for a non-object is then the same
        return CheckRequest.model_validate(payload, from_attributes=True)
    except ValidationError as exc:
        raise from_pydantic(exc.errors(include_url=False)) from None


def parse_verify(payload: Any) -> VerifyRequest:
    """A ``/verify`` body, or :class:`HTTPRefusal` 422."""
    try:
        return VerifyRequest.model_validate(payload, from_attributes=True)
    except ValidationError as exc:
        raise from_pydantic(exc.errors(include_url=False)) from None


def body_line_shift(code: str) -> int:
    """How many leading lines the Kimina server splits off as the header (blank lines and ``import`` lines)."""
    shift = 0
    for line in code.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("import "):
            break
        shift += 1
    return shift


def _to_body(entries: Any, shift: int) -> list[Any]:
    out = []
    for entry in entries or []:
        if isinstance(entry, dict):
            entry = dict(entry)
            for where in ("pos", "endPos"):
                position = entry.get(where)
                if isinstance(position, dict) and isinstance(position.get("line"), int) and position["line"] > shift:
                    entry[where] = {**position, "line": position["line"] - shift}
        out.append(entry)
    return out


def timeout_error(timeout: float) -> str:
    """Kimina's text (its client classifies an error containing "timed out" as a timeout)."""
    return f"Lean REPL command timed out in {float(timeout)} seconds"


def outcome(row: Row, code: str, timeout: float) -> tuple[dict[str, Any] | None, str | None, float]:
    """``(response, error, time)`` of one result row (positions in ``code``) in Kimina's terms."""
    status = row.get("status")
    elapsed = float(row.get("elapsed_s") or 0.0)
    if status in ("ok", "sorry", "error"):
        if "error" in row:  # a REPL error object, or a header that does not import
            return {"message": str(row["error"])}, None, elapsed
        shift = body_line_shift(code)
        response: dict[str, Any] = {}
        if row.get("messages"):
            response["messages"] = _to_body(row["messages"], shift)
        if row.get("sorries"):
            response["sorries"] = _to_body(row["sorries"], shift)
        return response, None, elapsed
    if status == "timeout":
        return None, timeout_error(timeout), float(timeout)
    if status == "crashed":
        return None, f"Lean REPL crashed: {row.get('error')}", elapsed
    return None, str(row.get("error") or f"not checked ({status})"), elapsed


def diagnostics(status: str, cached: bool, simulated: bool) -> dict[str, Any]:
    found: dict[str, Any] = {"status": status, "cached": cached}
    if simulated:
        found["simulated"] = True
    return found


def check_result(item_id: str, row: Row, code: str, timeout: float, *, debug: bool, cached: bool,
                 simulated: bool) -> dict[str, Any]:
    """One entry of ``/api/check``'s ``results``."""
    response, error, elapsed = outcome(row, code, timeout)
    result: dict[str, Any] = {"id": item_id, "time": elapsed}
    if error is not None:
        result["error"] = error
    else:
        result["response"] = response
    if debug:
        result["diagnostics"] = diagnostics(str(row.get("status")), cached, simulated)
    return result


def verify_result(custom_id: str, row: Row, code: str, timeout: float) -> dict[str, Any]:
    """One entry of ``/verify``'s ``results``: the time goes inside ``response``, as Kimina's ``extend`` does."""
    response, error, elapsed = outcome(row, code, timeout)
    result: dict[str, Any] = {"custom_id": custom_id}
    if error is not None:
        result["error"] = error
    else:
        result["response"] = {**(response or {}), "time": elapsed}
    return result
