"""The order of the collection under ``make test`` (xdist, ``--dist worksteal``): the files that hold the longest
tests are shared out among the workers and go first in each worker's part, so that the run does not end waiting on a
long test that one worker held last.

worksteal splits the collection into equal contiguous parts, one per worker, and a worker that runs dry takes tests
from the end of another's part: the front of a part runs early on its worker, its end runs last (or is taken over).
Files stay whole and keep their order (module fixtures are set up once, as before); the other tests keep theirs. A
scheduling hint only: a file missing here runs in its place, a name that no longer exists is ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

# files with a test of five seconds or more, and their seconds on the 2-core machine under the suite (roughly)
LONG_FILES = {"test_scaleout.py": 60, "test_real_lean.py": 32, "test_cli_interrupts.py": 20,
              "test_serve_end_to_end.py": 19, "test_serve_pool.py": 18, "test_plan_run.py": 18,
              "test_probe_and_trace.py": 16, "test_worker_faults.py": 15, "test_pytest_plugin.py": 14,
              "test_soak.py": 12, "test_memory_bounds.py": 10, "test_lean_repl_mixed.py": 8, "test_chaos_runs.py": 7,
              "test_pool_stateful.py": 7, "test_dispatch_fuzz.py": 6}


def worksteal_parts(count: int, workers: int) -> list[int]:
    """The sizes of the parts worksteal first sends to ``workers`` idle workers (xdist's own arithmetic)."""
    sizes, left = [], count
    for sent in range(workers):
        size = left // (workers - sent)
        sizes.append(size)
        left -= size
    return sizes


def long_files_first(items: Sequence[T], workers: int, file_of: Callable[[T], str]) -> list[T]:
    """``items`` in ``workers`` parts of worksteal's sizes, each starting with its share of ``LONG_FILES`` (the
    longest file to the part with the fewest seconds so far), then filled up with the rest in collection order."""
    sizes = worksteal_parts(len(items), workers)
    files: dict[str, list[T]] = {}
    rest: list[T] = []
    for item in items:
        (files.setdefault(file_of(item), []) if file_of(item) in LONG_FILES else rest).append(item)
    parts: list[list[T]] = [[] for _ in sizes]
    seconds = [0] * len(sizes)
    for name in sorted(files, key=lambda name: -LONG_FILES[name]):
        room = [p for p in range(len(sizes)) if len(parts[p]) + len(files[name]) <= sizes[p]] or range(len(sizes))
        least = min(room, key=lambda p: seconds[p])
        parts[least] += files[name]
        seconds[least] += LONG_FILES[name]
    ordered: list[T] = []
    for part, size in zip(parts, sizes):
        fill = max(0, size - len(part))
        ordered += part + rest[:fill]
        rest = rest[fill:]
    return ordered + rest
