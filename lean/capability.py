"""The capability ``"leanworker.lean:repl"``: Lean's REPL behind the leanworker protocol (docs/lean.md).

Commands: ``run`` (one REPL request object in, the REPL's answer out, unchanged) and ``check`` (items of code, one
result row each on stream ``results``). Every answer is matched to its question (lean/matching.py); one item's
fault costs that item only (a typed status and reason, lean/faults.py). Built to the REPL's protocol and tested
against a simulator and a misbehaving fake of it (``leanworker.fixtures.repl_sim``, ``repl_fake``): no Lean
toolchain with a REPL was available to test against.
"""

from __future__ import annotations

import time
from typing import Any

from leanworker.errors import CommandError, InvalidModuleName
from leanworker.host import Capability, Context, SessionSpec
from leanworker.lean.driver import DEFAULT_MAX_ANSWER_BYTES, encode_request
from leanworker.lean.faults import ReplBadAnswer, ReplCancelled, ReplError, stderr_summary
from leanworker.lean.orphans import worker_orphans
from leanworker.lean.rows import RESULT_DEPTH, ROW_DEPTH, encoded_size, fit_row, id_problem, wire_problem
from leanworker.lean.session import DEFAULT_IMPORT_TIMEOUT, ReplSession, find_repl
from leanworker.lean.toolchain import find_toolchain
from leanworker.lean.verdict import status_of, verdict
from leanworker.planner.names import validate_module_name

STATUSES = ("ok", "sorry", "error", "timeout", "crashed")
__all__ = ["STATUSES", "repl", "status_of"]

repl = Capability("leanworker.lean:repl", version="0.2.0",
                  description="the Lean REPL (leanprover-community/repl), one warm REPL per session")

_RUN_FAULT_CODES = {"timeout": "repl_timeout", "repl_exited": "repl_crashed", "out_of_step": "repl_out_of_step",
                    "answer_too_large": "answer_too_large", "repl_unavailable": "repl_unavailable",
                    "bad_answer": "repl_bad_answer"}


def _positive_option(options: dict[str, Any], name: str, default: float | None) -> float | None:
    value = options.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise CommandError("bad_request", f"session option {name!r} must be a positive number, got {value!r}")
    return float(value)


@repl.session
def open_session(spec: SessionSpec) -> ReplSession:
    """Find and start the REPL, import the header once. Session options: ``repl``, ``import_timeout`` (seconds,
    default 300), ``max_answer_mib`` (the cap on one answer, default 64)."""
    for module in spec.imports:
        try:
            validate_module_name(module)
        except InvalidModuleName as exc:
            raise CommandError("bad_request", f"session import {module!r} is not a Lean module name: {exc}") from None
    argv = find_repl(spec.options.get("repl"), spec.workspace)
    import_timeout = _positive_option(spec.options, "import_timeout", DEFAULT_IMPORT_TIMEOUT)
    answer_mib = _positive_option(spec.options, "max_answer_mib", DEFAULT_MAX_ANSWER_BYTES / (1024 * 1024))
    assert answer_mib is not None
    return ReplSession(argv, spec.workspace, spec.imports, import_timeout,
                       max_answer_bytes=int(answer_mib * 1024 * 1024), orphans=worker_orphans())


@repl.command("run")
def run(ctx: Context, request: Any) -> Any:
    """One REPL request object in, the REPL's answer object out, unchanged (matched to the request)."""
    if not isinstance(request, dict):
        raise CommandError("bad_request", "run takes one REPL request object (a JSON object)")
    _check_encodable(request, "the request")
    session: ReplSession = ctx.session
    session.begin_check()
    try:
        answer = session.exchange(request, None, lambda: ctx.cancelled)
    except ReplCancelled:
        ctx.check_cancelled()
        raise
    except ReplError as exc:
        code = _RUN_FAULT_CODES.get(exc.reason, "repl_crashed")
        raise CommandError(code, f"{exc} (the next request gets a fresh REPL)") from None
    problem = wire_problem(answer, "answer", RESULT_DEPTH)
    if problem is not None:
        raise CommandError("repl_bad_answer", f"the worker protocol cannot carry the REPL's answer: {problem}")
    if encoded_size(answer) > ctx.max_frame_bytes - 1024:
        raise CommandError("answer_too_large", f"the REPL's answer does not fit in one frame of "
                                               f"{ctx.max_frame_bytes} bytes (WorkerConfig.max_frame_bytes)")
    return answer


def _check_encodable(value: dict[str, Any], what: str) -> None:
    try:
        encode_request(value)
    except (TypeError, ValueError) as exc:
        raise CommandError("bad_request", f"{what} cannot be sent to the REPL as JSON: {exc}") from None


@repl.command("check", streams=("results",))
def check(ctx: Context, request: Any) -> dict[str, Any]:
    """``{"items": [{"id", "code"}], "timeout": seconds or null}`` -> one row per item on stream ``results``."""
    items, timeout = _check_request(request)
    session: ReplSession = ctx.session
    session.begin_check()
    counts = dict.fromkeys(STATUSES, 0)
    reasons: dict[str, int] = {}
    restarts_before, replaced_before = session.restarts, session.replaced_out_of_turn
    for index, item in enumerate(items):
        ctx.check_cancelled()
        row = check_item(session, item, timeout, lambda: ctx.cancelled)
        if row is None:
            ctx.check_cancelled()  # cancelled while the REPL worked: it was stopped, the request ends cancelled
            raise CommandError("cancelled", "the check was cancelled")
        counts[row["status"]] += 1
        if "reason" in row:
            reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
        ctx.row("results", fit_row(row, ctx.max_frame_bytes, row.pop("_answer_bytes", None)))
        ctx.progress("check", index + 1, len(items))
    return {"items": len(items), "by_status": counts, "by_reason": reasons,
            "repl_restarts": session.restarts - restarts_before,
            "replaced_for_unsolicited_output": session.replaced_out_of_turn - replaced_before,
            "headers_imported": session.headers_imported}


def _check_request(request: Any) -> tuple[list[dict[str, Any]], float | None]:
    if not isinstance(request, dict) or not isinstance(request.get("items"), list):
        raise CommandError("bad_request", 'check takes {"items": [{"id": ..., "code": "..."}], "timeout": s}')
    timeout = request.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise CommandError("bad_request", "timeout must be a positive number of seconds or null")
    items = request["items"]
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("code"), str):
            raise CommandError("bad_request", f"item {index} needs a text 'code'")
        problem = id_problem(item.get("id"))
        if problem is not None:
            raise CommandError("bad_request", f"item {index}'s id {problem}")
        _check_encodable({"cmd": item["code"]}, f"item {index}'s code")
    return items, None if timeout is None else float(timeout)


def check_item(session: ReplSession, item: dict[str, Any], timeout: float | None,
               cancelled: Any) -> dict[str, Any] | None:
    """One item's row: its verdict, or a typed fault (``status`` timeout/crashed with ``reason`` and ``error``).
    None when the request was cancelled meanwhile."""
    started = time.perf_counter()
    row: dict[str, Any] = {"id": item.get("id")}
    try:
        answer = session.exchange(session.item_body(item["code"]), timeout, cancelled)
        found = verdict(answer)
        problem = wire_problem(found, "answer", ROW_DEPTH)
        if problem is not None:
            raise ReplBadAnswer(f"the worker protocol cannot carry the REPL's answer: {problem}")
        row.update(found)
        row["_answer_bytes"] = session.last_answer_bytes
    except ReplCancelled:
        return None
    except ReplError as exc:
        row.update(status=exc.status, messages=[], sorries=[], reason=exc.reason, error=str(exc))
        if exc.exit_status is not None:
            row["exit"] = exc.exit_status
    row["elapsed_s"] = round(time.perf_counter() - started, 6)
    return row


@repl.check("toolchain")
def toolchain_check(session: ReplSession) -> tuple[str, str]:
    found = find_toolchain(session.workspace)
    return ("pass" if found.lean else "warning", found.describe())


@repl.check("repl")
def repl_check(session: ReplSession) -> tuple[str, str]:
    alive = session.process is not None and session.process.alive
    tail = stderr_summary(session.process.stderr_text()) if session.process is not None and not alive else ""
    timeout = "none" if session.import_timeout is None else f"{session.import_timeout:g} s"
    return ("pass" if alive else "error", f"{' '.join(session.argv)} ({'running' if alive else 'not running'}, "
                                          f"{session.restarts} restarts, header imported "
                                          f"{session.headers_imported} time(s), import timeout {timeout}, answer "
                                          f"cap {session.max_answer_bytes // (1024 * 1024)} MiB){tail}")
