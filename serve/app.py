"""The ASGI application (Starlette): routes, keys, body limits, admission, the access log, and the lifespan.

Kimina-compatible: ``POST /api/check``, ``POST /verify`` (and ``/one_pass_verify_batch``), ``GET /health`` (and
``/``). Native: ``POST /v1/check``, streamed JSON lines. ``GET /metrics``: Prometheus text. The checking itself is
:class:`CheckService` over a :class:`Checker`; this module only speaks HTTP. Every request passes the
:class:`ServiceMiddleware` first (drain refusals, metrics, spans); :func:`drain` ends the service gracefully.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from leanworker import __version__
from leanworker.serve import kimina, native
from leanworker.serve.admission import ANONYMOUS, Admission, Refusal, Ticket
from leanworker.serve.cache import ResultCache
from leanworker.serve.checker import Checker, Row, stopped
from leanworker.serve.config import ServeConfig
from leanworker.serve.keys import KeyRing, presented_key
from leanworker.serve.lifecycle import Lifecycle
from leanworker.serve.metrics import CONTENT_TYPE, ServeMetrics
from leanworker.serve.middleware import ACCESS, ServiceMiddleware
from leanworker.serve.refusals import HTTPRefusal, json_invalid
from leanworker.serve.service import CheckOptions, CheckService, ItemResult

access_log = logging.getLogger("leanworker.serve.access")


@dataclass
class _State:
    config: ServeConfig
    checker: Checker
    keys: KeyRing
    admission: Admission
    cache: ResultCache | None
    lifecycle: Lifecycle
    metrics: ServeMetrics
    service: CheckService | None = None
    reading: int = 0  # bytes of request bodies being read right now, over every request

    def gauges(self) -> dict[str, tuple[str, float, str]]:
        """The service's state for ``/metrics`` (read at scrape time)."""
        batcher = self.service.batcher if self.service is not None else None
        return {
            "leanworker_serve_queue_items": ("Items admitted and not yet answered (bounded by --max-queue).",
                                             self.admission.items, "gauge"),
            "leanworker_serve_queue_bytes": ("Bytes of code admitted and not yet answered.", self.admission.size,
                                             "gauge"),
            "leanworker_serve_refused": ("Requests refused by admission (429 and 413).", self.admission.refused,
                                         "counter"),
            "leanworker_serve_items_waiting": ("Items waiting for a REPL (admitted, not yet in a call).",
                                               batcher.waiting if batcher else 0, "gauge"),
            "leanworker_serve_calls": ("Check calls started on REPLs (a call takes up to 16 items of one header).",
                                       batcher.calls if batcher else 0, "counter"),
            "leanworker_serve_requests_in_flight": ("HTTP requests being answered.", self.lifecycle.in_flight,
                                                    "gauge"),
            "leanworker_serve_draining": ("1 while the service drains (SIGTERM), else 0.",
                                          float(self.lifecycle.draining), "gauge"),
        }


class _Access:
    """What the access log line of one request says (never the code it carried)."""

    def __init__(self, request: Request, metrics: ServeMetrics) -> None:
        request.scope[ACCESS] = self  # the request's span says what this says
        self.metrics = metrics
        self.started = time.perf_counter()
        self.method = request.method
        self.path = request.url.path
        client = request.client
        self.client = f"{client.host}:{client.port}" if client else "-"
        self.key_id = "?"
        self.items = 0
        self.statuses: Counter[str] = Counter()

    def item(self, row: Row, cached: bool) -> None:
        status = str(row.get("status"))
        self.statuses[status] += 1
        self.metrics.item(status, cached)

    def log(self, status: int) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        statuses = ",".join(f"{k}={v}" for k, v in sorted(self.statuses.items())) or "-"
        access_log.info('%s key=%s "%s %s" %d items=%d statuses=%s %.1fms', self.client, self.key_id, self.method,
                        self.path, status, self.items, statuses, (time.perf_counter() - self.started) * 1000)


def _refused(refusal: HTTPRefusal, access: _Access) -> Response:
    access.log(refusal.status)
    return JSONResponse({"detail": refusal.detail}, refusal.status, headers=refusal.headers)


def _state(request: Request) -> _State:
    state: _State = request.app.state.serve
    return state


def _authorize(state: _State, request: Request) -> str:
    if not state.keys:
        return ANONYMOUS
    presented = presented_key(request.headers)
    if presented is None:
        raise HTTPRefusal(401, "Missing API key", {"WWW-Authenticate": "Bearer"})
    key_id = state.keys.identify(presented)
    if key_id is None:
        raise HTTPRefusal(401, "Invalid API key", {"WWW-Authenticate": "Bearer"})
    return key_id


async def _read_body(state: _State, request: Request) -> bytes:
    """The body, at most ``--max-body-mib``; bodies being read at once hold at most the queue's byte bound between
    them (past it, 429), so memory stays bounded in bytes however many clients send at once. The bytes are given back
    when the body is read: parsing and admission follow without an ``await`` in between, and admission counts the
    code it admits."""
    limit = state.config.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPRefusal(413, f"the request body is {declared} bytes, over the limit of {limit} bytes")
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            state.reading += len(chunk)
            if size > limit:
                raise HTTPRefusal(413, f"the request body is over the limit of {limit} bytes")
            if state.reading > state.admission.max_bytes:
                raise HTTPRefusal(429, "too many request bytes are arriving at once", {"Retry-After": "1"})
            chunks.append(chunk)
    except ClientDisconnect:
        raise HTTPRefusal(400, "the client disconnected while sending the body") from None
    finally:
        state.reading -= size
    return b"".join(chunks)


def _admit(state: _State, key_id: str, codes: Sequence[str]) -> Ticket:
    size = sum(len(code) for code in codes)
    decision = state.admission.admit(key_id, len(codes), size)
    if isinstance(decision, Refusal):
        headers = {"Retry-After": str(decision.retry_after)} if decision.retry_after is not None else {}
        raise HTTPRefusal(decision.status, decision.detail, headers)
    return decision


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        raise HTTPRefusal(422, [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}])
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise json_invalid(exc) from None
    except UnicodeDecodeError:
        raise HTTPRefusal(400, "the request body is not UTF-8") from None


async def _collect(state: _State, request: Request, ticket: Ticket, codes: Sequence[str],
                   ids: Sequence[Any], options: CheckOptions, access: _Access) -> list[ItemResult]:
    """Every item's result in request order; stops (and withdraws the items) if the client goes away."""
    service = state.service
    assert service is not None
    results: list[ItemResult | None] = [None] * len(codes)

    async def gather() -> None:
        async for result in service.check(list(zip(ids, codes)), options):
            results[result.position] = result
            access.item(result.row, result.cached)
            state.admission.item_done(ticket, len(codes[result.position]))

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    gathering = asyncio.ensure_future(gather())
    watching = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({gathering, watching}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the server is stopping this request: stop its items, stay cancelled
        gathering.cancel()
        watching.cancel()
        await asyncio.gather(gathering, watching, return_exceptions=True)
        raise
    watching.cancel()
    if not gathering.done():  # the client went away: its items are withdrawn (as the Kimina server does)
        gathering.cancel()
        await asyncio.gather(gathering, return_exceptions=True)
        raise HTTPRefusal(499, "Client disconnected")
    gathering.result()
    return [r for r in results if r is not None]


def _refuse_if_stopped(results: list[ItemResult]) -> None:
    """A request the drain stopped before all its items had a verdict is answered 503 (typed), not 200 with holes."""
    left = sum(1 for r in results if stopped(r.row))
    if left:
        raise HTTPRefusal(503, f"the service is stopping: {left} of {len(results)} items were not checked; send the "
                               "request again later", {"Retry-After": "1", "Connection": "close"})


def _timeout(requested: float, config: ServeConfig) -> float:
    return min(float(requested), config.max_timeout)


async def api_check(request: Request) -> Response:
    """Kimina's ``POST /api/check``."""
    state = _state(request)
    access = _Access(request, state.metrics)
    try:
        access.key_id = _authorize(state, request)
        payload = _parse_json(await _read_body(state, request))
        body = kimina.parse_check(payload)
        codes = [s.code for s in body.snippets]
        access.items = len(codes)
        ticket = _admit(state, access.key_id, codes)
        try:
            timeout = _timeout(body.timeout, state.config)
            options = CheckOptions(timeout, state.cache is not None,
                                   (("infotree", body.infotree.value),) if body.infotree else ())
            results = await _collect(state, request, ticket, codes, [s.id for s in body.snippets], options, access)
            _refuse_if_stopped(results)
        finally:
            state.admission.release(ticket)
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
    access = _Access(request, state.metrics)
    try:
        access.key_id = _authorize(state, request)
        payload = _parse_json(await _read_body(state, request))
        body = kimina.parse_verify(payload)
        if not body.codes:
            access.log(200)
            return JSONResponse({"results": []})
        codes = [c.content for c in body.codes]
        access.items = len(codes)
        ticket = _admit(state, access.key_id, codes)
        try:
            timeout = _timeout(body.timeout, state.config)
            options = CheckOptions(timeout, state.cache is not None and not body.disable_cache,
                                   (("infotree", body.infotree_type.value),) if body.infotree_type else ())
            ids = [str(c.custom_id) for c in body.codes]
            results = await _collect(state, request, ticket, codes, ids, options, access)
            _refuse_if_stopped(results)
        finally:
            state.admission.release(ticket)
    except HTTPRefusal as refusal:
        return _refused(refusal, access)
    out = [kimina.verify_result(ids[r.position], r.row, codes[r.position], timeout) for r in results]
    access.log(200)
    return JSONResponse({"results": out})


async def native_check(request: Request) -> Response:
    """``POST /v1/check``: JSON lines of results, each as soon as it is known."""
    state = _state(request)
    access = _Access(request, state.metrics)
    try:
        access.key_id = _authorize(state, request)
        timeout = native.parse_timeout(request.query_params.get("timeout"), state.config.timeout,
                                       state.config.max_timeout)
        raw = await _read_body(state, request)
        items = native.parse_items(raw, request.headers.get("content-type", ""))
        del raw
        codes = [item.code for item in items]
        ids = [item.id for item in items]
        access.items = len(codes)
        ticket = _admit(state, access.key_id, codes)
    except HTTPRefusal as refusal:
        return _refused(refusal, access)
    service = state.service
    assert service is not None
    simulated = state.checker.simulated

    async def lines() -> AsyncIterator[bytes]:
        try:
            async for result in service.check(list(zip(ids, codes)), CheckOptions(timeout, state.cache is not None)):
                access.item(result.row, result.cached)
                state.admission.item_done(ticket, len(codes[result.position]))
                yield native.result_line(ids[result.position], result.row, cached=result.cached,
                                         simulated=simulated)
        finally:
            state.admission.release(ticket)
            access.log(200)

    return StreamingResponse(lines(), media_type=native.NDJSON)


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
        _authorize(state, request)
    except HTTPRefusal as refusal:
        return JSONResponse({"detail": refusal.detail}, refusal.status, headers=refusal.headers)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


async def drain(app: Starlette, grace: float) -> None:
    """End the service gracefully: refuse new requests (503), let those in flight finish for ``grace`` seconds,
    then answer what is left as stopped (503) and return; the lifespan's shutdown stops the workers after."""
    state: _State = app.state.serve
    service = state.service

    async def stop() -> None:
        if service is not None:
            await service.aclose()

    await state.lifecycle.drain(grace, stop)


async def _http_error(request: Request, exc: Exception) -> Response:
    """404, 405 and the like as ``{"detail": ...}``, as FastAPI (and so the Kimina server) writes them."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)


def create_app(config: ServeConfig, checker: Checker, keys: KeyRing | None = None,
               on_ready: Callable[[], Awaitable[None] | None] | None = None, *,
               tracer_provider: Any | None = None) -> Starlette:
    """The service as an ASGI app over ``checker`` (started and closed by the app's lifespan).

    ``tracer_provider`` (OpenTelemetry): a span per HTTP request; give the checker's pool an ``OpenTelemetryTracer``
    of the same provider so that the pool's spans are their children. When the checker has a ``pool`` once started
    (an ``AsyncWorkerPool``), ``/metrics`` shows the pool's figures too (``leanworker.metrics.PoolCollector``)."""
    cache = ResultCache(config.cache_path, config.cache_max_mib * 2**20) if config.cache else None
    lifecycle = Lifecycle()
    state = _State(config, checker, keys or KeyRing(()),
                   Admission(config.max_queue, config.max_queue_mib * 2**20, config.max_in_flight_per_key), cache,
                   lifecycle, ServeMetrics())
    state.metrics.register_state(state.gauges)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await checker.start()
        pool = getattr(checker, "pool", None)
        if pool is not None:
            from leanworker.metrics import PoolCollector

            state.metrics.register(PoolCollector(pool))
        state.service = CheckService(checker, cache=cache, max_item_bytes=config.max_item_bytes,
                                     max_batch=config.max_batch)
        try:
            if on_ready is not None:
                ready = on_ready()
                if ready is not None:
                    await ready
            yield
        finally:
            await state.service.aclose()
            await checker.aclose()
            if cache is not None:
                cache.close()

    routes = [
        Route("/api/check", api_check, methods=["POST"]),
        Route("/api/check/", api_check, methods=["POST"]),
        Route("/verify", verify, methods=["POST"]),
        Route("/one_pass_verify_batch", verify, methods=["POST"]),
        Route("/v1/check", native_check, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/health/", health, methods=["GET"]),
        Route("/", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    middleware = [Middleware(ServiceMiddleware, lifecycle=lifecycle, metrics=state.metrics,
                             tracer_provider=tracer_provider)]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                    exception_handlers={HTTPException: _http_error})
    app.state.serve = state
    return app
