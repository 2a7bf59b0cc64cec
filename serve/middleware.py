"""The front door: every HTTP request passes here before its endpoint.

- While the service drains (serve/lifecycle.py), a request is refused at once with a typed 503 (``Retry-After``,
  ``Connection: close``); otherwise it is counted in flight until its answer is written (a stream's last line).
- Each answer is counted in ``/metrics`` by endpoint (the route's path), method and status, with its latency.
- With a tracer provider, each request is a span (``POST /api/check``, kind SERVER) current while its endpoint
  runs, so the pool's spans of the Lean work it caused (``leanworker.request``, ...) are its children.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leanworker import __version__
from leanworker.serve.lifecycle import Lifecycle
from leanworker.serve.metrics import ServeMetrics

ACCESS = "leanworker.access"  # the scope key under which an endpoint leaves what its span should say
DRAINING_BODY = json.dumps({"detail": "the service is stopping: send the request again later"}).encode()


def _endpoint(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "other"


class ServiceMiddleware:
    """ASGI middleware: drain refusals, requests in flight, metrics and spans (see the module docstring)."""

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle, metrics: ServeMetrics,
                 tracer_provider: Any | None = None) -> None:
        self.app = app
        self.lifecycle = lifecycle
        self.metrics = metrics
        self.tracer = None
        if tracer_provider is not None:
            self.tracer = tracer_provider.get_tracer("leanworker.serve", __version__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        if self.lifecycle.draining:
            await self._refuse_draining(send)
            self.metrics.request("other", scope["method"], 503, time.perf_counter() - started)
            return
        status = 500  # if the endpoint fails before it answers, the server answers 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.lifecycle.enter()
        try:
            if self.tracer is None:
                await self.app(scope, receive, sending)
            else:
                await self._traced(scope, receive, sending, lambda: status)
        finally:
            self.lifecycle.leave()
            self.metrics.request(_endpoint(scope), scope["method"], status, time.perf_counter() - started)

    async def _traced(self, scope: Scope, receive: Receive, send: Send, status: Any) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        assert self.tracer is not None
        method = scope["method"]
        attributes = {"http.request.method": method, "url.path": scope["path"], "url.scheme": scope["scheme"]}
        with self.tracer.start_as_current_span(f"{method}", kind=SpanKind.SERVER, attributes=attributes) as span:
            try:
                await self.app(scope, receive, send)
            finally:
                endpoint = _endpoint(scope)
                code = status()
                span.update_name(f"{method} {endpoint}")
                span.set_attribute("http.route", endpoint)
                span.set_attribute("http.response.status_code", code)
                access = scope.get(ACCESS)
                if access is not None:
                    span.set_attribute("leanworker.items", access.items)
                    span.set_attribute("leanworker.key_id", access.key_id)
                    for name, count in access.statuses.items():
                        span.set_attribute(f"leanworker.items.{name}", count)
                if code >= 500:
                    span.set_status(Status(StatusCode.ERROR))

    @staticmethod
    async def _refuse_draining(send: Send) -> None:
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                                (b"connection", b"close"), (b"content-length", str(len(DRAINING_BODY)).encode())]})
        await send({"type": "http.response.body", "body": DRAINING_BODY})
