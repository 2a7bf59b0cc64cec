"""The ASGI application (Starlette): its routes, its middleware, its lifespan, and the drain that ends it.

Kimina-compatible: ``POST /api/check``, ``POST /verify`` (and ``/one_pass_verify_batch``), ``GET /health`` (and
``/``). Native: ``POST /v1/check``, streamed JSON lines. ``GET /metrics``: Prometheus text. The handlers are in
serve/endpoints.py, the checking itself is :class:`CheckService` over a :class:`Checker`. Every request passes the
:class:`ServiceMiddleware` first (drain refusals, metrics, spans); :func:`drain` ends the service gracefully.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leanworker.serve import endpoints
from leanworker.serve.admission import Admission
from leanworker.serve.cache import ResultCache
from leanworker.serve.checker import Checker
from leanworker.serve.config import ServeConfig
from leanworker.serve.keys import KeyRing
from leanworker.serve.lifecycle import Lifecycle
from leanworker.serve.metrics import ServeMetrics
from leanworker.serve.middleware import ServiceMiddleware
from leanworker.serve.service import CheckService
from leanworker.serve.state import ServiceState

ROUTES = [
    Route("/api/check", endpoints.api_check, methods=["POST"]),
    Route("/api/check/", endpoints.api_check, methods=["POST"]),
    Route("/verify", endpoints.verify, methods=["POST"]),
    Route("/one_pass_verify_batch", endpoints.verify, methods=["POST"]),
    Route("/v1/check", endpoints.native_check, methods=["POST"]),
    Route("/health", endpoints.health, methods=["GET"]),
    Route("/health/", endpoints.health, methods=["GET"]),
    Route("/", endpoints.health, methods=["GET"]),
    Route("/metrics", endpoints.metrics, methods=["GET"]),
]


async def drain(app: Starlette, grace: float) -> None:
    """End the service gracefully: refuse new requests (503), let those in flight finish for ``grace`` seconds,
    then answer what is left as stopped (503) and return; the lifespan's shutdown stops the workers after."""
    state: ServiceState = app.state.serve
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
    state = ServiceState(config, checker, keys or KeyRing(()),
                         Admission(config.max_queue, config.max_queue_mib * 2**20, config.max_in_flight_per_key),
                         cache, lifecycle, ServeMetrics())
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

    middleware = [Middleware(ServiceMiddleware, lifecycle=lifecycle, metrics=state.metrics,
                             tracer_provider=tracer_provider)]
    app = Starlette(routes=ROUTES, lifespan=lifespan, middleware=middleware,
                    exception_handlers={HTTPException: _http_error})
    app.state.serve = state
    return app
