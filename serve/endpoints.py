"""The routes' handlers: Kimina's ``POST /api/check`` and ``POST /verify``, the native ``POST /v1/check``,
``GET /health`` and ``GET /metrics``.

Each check endpoint takes its request in through serve/intake.py (key, body, admission), parses its shape
(serve/kimina.py, serve/native.py), hands the items to the check service and shapes what comes back. An admitted
request is always answered: with its results, or with a typed refusal (503 when the drain stopped its items, 499 in
the log when its client went away).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from leanworker import __version__
from leanworker.serve import json_body, kimina, native
from leanworker.serve.access import AccessLog
from leanworker.serve.admission import Ticket, item_cost
from leanworker.serve.checker import stopped
from leanworker.serve.config import ServeConfig
from leanworker.serve.intake import admit, authorize, count_items, item_count, read_body
from leanworker.serve.metrics import CONTENT_TYPE
from leanworker.serve.refusals import HTTPRefusal
from leanworker.serve.service import CheckOptions, ItemResult
from leanworker.serve.state import ServiceState
from leanworker.serve.streaming import ResultStream


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.serve
    return state


def _refused(refusal: HTTPRefusal, access: AccessLog) -> Response:
    access.log(refusal.status)
    return JSONResponse({"detail": refusal.detail}, refusal.status, headers=refusal.headers)


def _capped(requested: int, config: ServeConfig) -> float:
    """The request's timeout, at most ``--max-timeout`` (compared as an integer: one past a float's range is still
    capped, never an ``OverflowError``)."""
    return float(min(requested, config.max_timeout))


async def _collect(state: ServiceState, request: Request, ticket: Ticket, codes: Sequence[str],
                   ids: Sequence[Any], options: CheckOptions, access: AccessLog) -> list[ItemResult]:
    """Every item's result in request order; stops (and withdraws the items) if the client goes away: a watcher
    cancels this task when the client disconnects (one task a request, on the hot path)."""
    service = state.service
    assert service is not None
    results: list[ItemResult | None] = [None] * len(codes)
    this = asyncio.current_task()
    assert this is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        this.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        async for result in service.check(list(zip(ids, codes)), options):
            results[result.position] = result
            access.item(result.row, result.cached)
            state.admission.item_done(ticket, item_cost(codes[result.position]))
    except asyncio.CancelledError:
        if not gone:  # the server is stopping this request: stay cancelled
            raise
        this.uncancel()  # the client went away: its items are withdrawn (as the Kimina server does)
        raise HTTPRefusal(499, "Client disconnected") from None
    finally:
        watcher.cancel()
    return [r for r in results if r is not None]


def _refuse_if_stopped(results: list[ItemResult]) -> None:
    """A request the drain stopped before all its items had a verdict is answered 503 (typed), not 200 with holes."""
    left = sum(1 for r in results if stopped(r.row))
    if left:
        raise HTTPRefusal(503, f"the service is stopping: {left} of {len(results)} items were not checked; send the "
                               "request again later", {"Retry-After": "1", "Connection": "close"})


async def _check_all(state: ServiceState, request: Request, access: AccessLog, codes: Sequence[str],
                     ids: Sequence[Any], options: CheckOptions) -> list[ItemResult]:
    """A batch endpoint's items admitted, checked and released: every result in request order (a typed refusal if
    the drain stopped some of them)."""
    access.items = len(codes)
    ticket = admit(state, access.key_id, codes)
    try:
        results = await _collect(state, request, ticket, codes, ids, options, access)
        _refuse_if_stopped(results)
    finally:
        state.admission.release(ticket)
    return results


async def api_check(request: Request) -> Response:
    """Kimina's ``POST /api/check``."""
    state = _state(request)
    access = AccessLog(request, state.metrics)
    try:
        access.key_id = authorize(state, request)
        payload = json_body.parse_body(await read_body(state, request))
        count_items(state, item_count(payload, "snippets"))
        body = kimina.parse_check(payload)
        codes = [s.code for s in body.snippets]
        timeout = _capped(body.timeout, state.config)
        options = CheckOptions(timeout, state.cache is not None,
                               (("infotree", body.infotree.value),) if body.infotree else ())
        results = await _check_all(state, request, access, codes, [s.id for s in body.snippets], options)
    except HTTPRefusal as refusal:
        return _refused(refusal, access)
    simulated = state.checker.simulated
    out = [kimina.check_result(body.snippets[r.position].id, r.row, codes[r.position], timeout, debug=body.debug,
                               cached=r.cached, simulated=simulated) for r in results]
    access.log(200)
    return JSONResponse({"results": out})


async def verify(request: Request) -> Response:
    """Kimina's older ``POST /verify`` (and ``/one_pass_verify_batch``)."""
    state = _state(request)
    access = AccessLog(request, state.metrics)
    try:
        access.key_id = authorize(state, request)
        payload = json_body.parse_body(await read_body(state, request))
        count_items(state, item_count(payload, "codes"))
        body = kimina.parse_verify(payload)
        if not body.codes:
            access.log(200)
            return JSONResponse({"results": []})
        codes = [c.content for c in body.codes]
        ids = [str(c.custom_id) for c in body.codes]
        timeout = _capped(body.timeout, state.config)
        options = CheckOptions(timeout, state.cache is not None and not body.disable_cache,
                               (("infotree", body.infotree_type.value),) if body.infotree_type else ())
        results = await _check_all(state, request, access, codes, ids, options)
    except HTTPRefusal as refusal:
        return _refused(refusal, access)
    out = [kimina.verify_result(ids[r.position], r.row, codes[r.position], timeout) for r in results]
    access.log(200)
    return JSONResponse({"results": out})


async def native_check(request: Request) -> Response:
    """``POST /v1/check``: JSON lines of results, each as soon as it is known."""
    state = _state(request)
    access = AccessLog(request, state.metrics)
    try:
        access.key_id = authorize(state, request)
        timeout = native.parse_timeout(request.query_params.get("timeout"), state.config.timeout,
                                       state.config.max_timeout)
        items = native.parse_items(await read_body(state, request), request.headers.get("content-type", ""),
                                   state.admission.most_items, lambda count: count_items(state, count))
        codes = [item.code for item in items]
        ids = [item.id for item in items]
        access.items = len(codes)
        ticket = admit(state, access.key_id, codes)
    except HTTPRefusal as refusal:
        return _refused(refusal, access)
    service = state.service
    assert service is not None
    simulated = state.checker.simulated

    began = False

    async def lines() -> AsyncIterator[bytes]:
        nonlocal began
        began = True
        async for result in service.check(list(zip(ids, codes)), CheckOptions(timeout, state.cache is not None)):
            access.item(result.row, result.cached)
            state.admission.item_done(ticket, item_cost(codes[result.position]))
            yield native.result_line(ids[result.position], result.row, cached=result.cached, simulated=simulated)

    def ended() -> None:  # however the stream ended, even before its first line (serve/streaming.py)
        state.admission.release(ticket)
        access.log(200 if began else 499)

    return ResultStream(lines(), write_timeout=state.config.client_timeout, media_type=native.NDJSON, on_end=ended)


async def health(request: Request) -> Response:
    """Kimina's ``GET /health`` (``{"status": "ok"}``), plus what this service is."""
    state = _state(request)
    body: dict[str, Any] = {"status": "ok", "server": "leanworker", "version": __version__}
    if state.checker.simulated:
        body["simulated"] = True
    return JSONResponse(body)


async def metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus text, the service's figures beside its pool's (a key is needed when keys are)."""
    state = _state(request)
    try:
        authorize(state, request)
    except HTTPRefusal as refusal:
        return JSONResponse({"detail": refusal.detail}, refusal.status, headers=refusal.headers)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)
