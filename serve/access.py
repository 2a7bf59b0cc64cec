"""The access log: one line per request (logger ``leanworker.serve.access``, level INFO) saying who asked (client
address, key id), what (method, path, items), how it went (status, items by status) and how long it took; never
the code it carried. The request's span (serve/middleware.py) carries the same facts."""

from __future__ import annotations

import logging
import time
from collections import Counter

from starlette.requests import Request

from leanworker.serve.checker import Row
from leanworker.serve.metrics import ServeMetrics
from leanworker.serve.middleware import ACCESS

access_log = logging.getLogger("leanworker.serve.access")


class AccessLog:
    """What the access log line of one request says; :meth:`item` counts each answered item (also in
    ``/metrics``), :meth:`log` writes the line once the status is known."""

    def __init__(self, request: Request, metrics: ServeMetrics) -> None:
        request.scope[ACCESS] = self  # the request's span says what this says
        self.metrics = metrics
        self.started = time.perf_counter()
        self.method = request.method
        self.path = request.scope["path"]  # (request.url would build a whole URL for each request)
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
