"""Memory sampling of worker process trees with psutil.

One sampler thread serves many workers. A sample is the sum over the worker and all its descendants of RSS
(``memory_info``, ~17 us a process) or PSS (``memory_full_info``, ~2.7 ms a process; shared pages counted once).
Where a value cannot be read the sample is ``None``: "unavailable", and nobody decides anything on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import psutil

MIB = 1024 * 1024

SampleCallback = Callable[[float | None], None]


def sample_tree_mib(pid: int, metric: str = "rss") -> float | None:
    """Memory of ``pid`` and its descendants in MiB, or None when it cannot be read."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except (psutil.Error, OSError):
        return None
    total = 0
    for process in processes:
        try:
            if metric == "pss":
                total += process.memory_full_info().pss
            else:
                total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue  # a grandchild that just ended
        except (psutil.Error, OSError, AttributeError):
            return None
    return total / MIB


class MemorySampler:
    """Samples every watched pid every ``interval`` seconds on one daemon thread and reports to a callback."""

    def __init__(self, interval: float = 0.25, metric: str = "rss") -> None:
        self.interval = interval
        self.metric = metric
        self._targets: dict[object, tuple[int, SampleCallback]] = {}
        self._lock = threading.Lock()
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
