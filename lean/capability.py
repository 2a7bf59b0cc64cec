"""The capability ``"leanworker.lean:repl"``: Lean's REPL behind the leanworker protocol (docs/lean.md).

Commands: ``run`` (one REPL request object in, the REPL's response out, unchanged) and ``check`` (items of code,
one result row each on stream ``results``). Built to the REPL's protocol and tested against a simulator
(``leanworker.fixtures.repl_sim``): no Lean toolchain was available to test against.
"""

from __future__ import annotations

import time
from typing import Any

from leanworker.errors import CommandError
from leanworker.host import Capability, Context, SessionSpec
from leanworker.lean.driver import ReplCrashed, ReplTimeout
from leanworker.lean.session import ReplSession, find_repl
from leanworker.lean.toolchain import find_toolchain

STATUSES = ("ok", "sorry", "error", "timeout", "crashed")

repl = Capability("leanworker.lean:repl", version="0.1.0",
                  description="the Lean REPL (leanprover-community/repl), one warm REPL per session")


@repl.session
def open_session(spec: SessionSpec) -> ReplSession:
    argv = find_repl(spec.options.get("repl"), spec.workspace)
    timeout = spec.options.get("import_timeout")
    try:
        return ReplSession(argv, spec.workspace, spec.imports, float(timeout) if timeout is not None else None)
    except OSError as exc:
        raise CommandError("repl_not_found", f"cannot start the REPL {argv!r}: {exc}") from None


@repl.command("run")
def run(ctx: Context, request: Any) -> Any:
    """One REPL request object in, the REPL's response object out, unchanged."""
    if not isinstance(request, dict):
        raise CommandError("bad_request", "run takes one REPL request object (a JSON object)")
    session: ReplSession = ctx.session
    try:
        return session.request(request, None)
    except ReplCrashed as exc:
        raise CommandError("repl_crashed", f"{exc} (the next request gets a fresh REPL)") from None


def status_of(response: dict[str, Any]) -> str:
    """``error`` for an error object or an error message, ``sorry`` for a sorry without errors, else ``ok``."""
    if set(response) == {"message"}:
        return "error"
    messages = response.get("messages") or []
    if any(isinstance(m, dict) and m.get("severity") == "error" for m in messages):
        return "error"
    return "sorry" if response.get("sorries") else "ok"


@repl.command("check", streams=("results",))
def check(ctx: Context, request: Any) -> dict[str, Any]:
    """``{"items": [{"id", "code"}], "timeout": seconds or null}`` -> one row per item on stream ``results``."""
    if not isinstance(request, dict) or not isinstance(request.get("items"), list):
        raise CommandError("bad_request", 'check takes {"items": [{"id": ..., "code": "..."}], "timeout": s}')
    items = request["items"]
    timeout = request.get("timeout")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise CommandError("bad_request", "timeout must be a positive number of seconds or null")
    session: ReplSession = ctx.session
    counts = dict.fromkeys(STATUSES, 0)
    restarts_before = session.restarts
    for index, item in enumerate(items):
        ctx.check_cancelled()
        if not isinstance(item, dict) or not isinstance(item.get("code"), str):
            raise CommandError("bad_request", f"item {index} needs a text 'code'")
        body: dict[str, Any] = {"cmd": item["code"]}
        if session.base_env is not None:
            body["env"] = session.base_env
        started = time.perf_counter()
        row: dict[str, Any] = {"id": item.get("id"), "messages": [], "sorries": []}
        try:
            response = session.request(body, timeout)
            row["status"] = status_of(response)
            row["messages"] = response.get("messages", [])
            row["sorries"] = response.get("sorries", [])
            if set(response) == {"message"}:
                row["error"] = response["message"]
        except ReplTimeout as exc:
            row["status"], row["error"] = "timeout", str(exc)
        except ReplCrashed as exc:
            row["status"], row["error"] = "crashed", str(exc)
        row["elapsed_s"] = round(time.perf_counter() - started, 6)
        counts[row["status"]] += 1
        ctx.row("results", row)
        ctx.progress("check", index + 1, len(items))
    return {"items": len(items), "by_status": counts, "repl_restarts": session.restarts - restarts_before,
            "headers_imported": session.headers_imported}


@repl.check("toolchain")
def toolchain_check(session: ReplSession) -> tuple[str, str]:
    found = find_toolchain(session.workspace)
    return ("pass" if found.lean else "warning", found.describe())


@repl.check("repl")
def repl_check(session: ReplSession) -> tuple[str, str]:
    alive = session.process is not None and session.process.process.poll() is None
    return ("pass" if alive else "error", f"{' '.join(session.argv)} ({'running' if alive else 'not running'}, "
                                          f"{session.restarts} restarts, header imported "
                                          f"{session.headers_imported} time(s))")
