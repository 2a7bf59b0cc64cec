"""What one running service holds (its settings, checker, keys, admission, cache, lifecycle and figures, and its
check service once started), and the figures of that state that ``/metrics`` reads at scrape time."""

from __future__ import annotations

from dataclasses import dataclass

from leanworker.serve.admission import Admission
from leanworker.serve.cache import ResultCache
from leanworker.serve.checker import Checker
from leanworker.serve.config import ServeConfig
from leanworker.serve.keys import KeyRing
from leanworker.serve.lifecycle import Lifecycle
from leanworker.serve.metrics import ServeMetrics
from leanworker.serve.service import CheckService


@dataclass
class ServiceState:
    """One service's state (``app.state.serve``); one event loop reads and changes it."""

    config: ServeConfig
    checker: Checker
    keys: KeyRing
    admission: Admission
    cache: ResultCache | None
    lifecycle: Lifecycle
    metrics: ServeMetrics
    service: CheckService | None = None  # from the lifespan's start to its end
    reading: int = 0  # bytes of request bodies being read right now, over every request

    def gauges(self) -> dict[str, tuple[str, float, str]]:
        """The service's state for ``/metrics``: name -> (documentation, value, "gauge" or "counter")."""
        batcher = self.service.batcher if self.service is not None else None
        return {
            "leanworker_serve_queue_items": ("Items admitted and not yet answered (bounded by --max-queue).",
                                             self.admission.items, "gauge"),
            "leanworker_serve_queue_bytes": ("Bytes admitted and not yet answered (code, and 2 KiB an item).", self.admission.size,
                                             "gauge"),
            "leanworker_serve_refused": ("Requests refused by admission (429 and 413).", self.admission.refused,
                                         "counter"),
            "leanworker_serve_items_waiting": ("Items waiting for a REPL (admitted, not yet in a call).",
                                               batcher.waiting if batcher else 0, "gauge"),
            "leanworker_serve_calls": ("Check calls started on REPLs (a call takes up to 16 items of one header).",
                                       batcher.calls if batcher else 0, "counter"),
            "leanworker_serve_calls_abandoned": ("Check calls cancelled because every request that asked for their "
                                                 "items had gone.", batcher.abandoned if batcher else 0, "counter"),
            "leanworker_serve_requests_in_flight": ("HTTP requests being answered.", self.lifecycle.in_flight,
                                                    "gauge"),
            "leanworker_serve_bytes_reading": ("Bytes of request bodies being read now (bounded by the queue's byte "
                                               "bound).", self.reading, "gauge"),
            "leanworker_serve_draining": ("1 while the service drains (SIGTERM), else 0.",
                                          float(self.lifecycle.draining), "gauge"),
        }
