"""One sampler thread that samples many workers' process trees (core/process_tree.py) and reports each sample.

Where a value cannot be read the sample is ``None``: "unavailable", and nobody decides anything on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from leanworker.actors.core import locks
from leanworker.actors.core.process_tree import sample_tree_mib

SampleCallback = Callable[[float | None], object]


class MemorySampler:
    """Samples every watched pid every ``interval`` seconds on one daemon thread and reports to a callback."""

    def __init__(self, interval: float = 0.25, metric: str = "rss") -> None:
        self.interval = interval
        self.metric = metric
        self._targets: dict[object, tuple[int, SampleCallback]] = {}
        self._lock = locks.lock("sampler")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leanworker-memory", daemon=True)
        self._thread.start()

    def watch(self, token: object, pid: int, callback: SampleCallback) -> None:
        with self._lock:
            self._targets[token] = (pid, callback)

    def unwatch(self, token: object) -> None:
        with self._lock:
            self._targets.pop(token, None)

    def stop(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                targets = list(self._targets.values())
            for pid, callback in targets:
                value = sample_tree_mib(pid, self.metric)
                try:
                    callback(value)
                except Exception:  # the watcher is gone
                    pass
