"""The service's Prometheus figures (``GET /metrics``): its HTTP requests and items beside its pool's.

A registry of its own per app (never the process-wide default): HTTP requests by endpoint, method and status with
a latency histogram by endpoint, items answered by status (and whether the cache answered), the service's queue and
drain state read at scrape time, and the pool's ``leanworker_`` metrics (``leanworker.metrics.PoolCollector``,
docs/metrics.md). Labels are bounded: ``endpoint`` is a route's path (``other`` for any path that is not a route),
``status`` an HTTP status code, ``method`` one of a few.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from leanworker.serve.checker import STATUSES, UNCHECKED

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METHODS = frozenset({"GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                   float("inf"))


class _Gauges(Collector):
    """The service's state, read at scrape time: ``read()`` gives name -> (documentation, value, kind)."""

    def __init__(self, read: Callable[[], dict[str, tuple[str, float, str]]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        for name, (documentation, value, kind) in self._read().items():
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(name, documentation, value=value)


class ServeMetrics:
    """The figures of one service; :meth:`render` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._requests = Counter("leanworker_http_requests", "HTTP requests answered, by endpoint (the route's "
                                 "path; other for none), method and status code.", ["endpoint", "method", "status"],
                                 registry=self.registry)
        self._latency = Histogram("leanworker_http_request_duration_seconds", "Seconds from a request's arrival to "
                                  "the end of its answer (the last line of a stream), by endpoint.", ["endpoint"],
                                  buckets=LATENCY_BUCKETS, registry=self.registry)
        self._items = Counter("leanworker_serve_items", "Items answered, by status (ok, sorry, error, timeout, "
                              "crashed, unchecked) and whether the results cache answered.", ["status", "cached"],
                              registry=self.registry)
        self._children: dict[tuple[str, ...], Any] = {}  # labelled series, found once (a scrape never waits on us)
        for status in (*STATUSES, UNCHECKED):  # every series from the start, so rates need no first sighting
            for cached in ("false", "true") if status in ("ok", "sorry", "error") else ("false",):
                self._items.labels(status, cached)

    def register_state(self, read: Callable[[], dict[str, tuple[str, float, str]]]) -> None:
        """Figures read at scrape time: ``read()`` gives name -> (documentation, value, "gauge" or "counter")."""
        self.registry.register(_Gauges(read))

    def register(self, collector: Collector) -> None:
        """Add a collector (the pool's) to this service's figures."""
        self.registry.register(collector)

    def request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        key = ("request", endpoint, method if method in METHODS else "other", str(status))  # bounded, each
        series = self._children.get(key)
        if series is None:
            series = self._children[key] = (self._requests.labels(*key[1:]), self._latency.labels(endpoint))
        series[0].inc()
        series[1].observe(seconds)

    def item(self, status: str, cached: bool) -> None:
        key = ("item", status if status in STATUSES else UNCHECKED, "true" if cached else "false")
        series = self._children.get(key)
        if series is None:
            series = self._children[key] = self._items.labels(*key[1:])
        series.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
