"""Typed results the runtime hands back: rows, summaries, snapshots, reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Row(NamedTuple):
    """One row of a named stream. Tentative until its request ends in success."""

    stream: str
    seq: int
    payload: Any


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    code: str
    message: str
    data: Any = None


@dataclass(frozen=True)
class Progress:
    phase: str
    current: float
    total: float | None


@dataclass(frozen=True)
class StreamSummary:
    """How a stream ended well: rows in total and per stream, the worker's elapsed time, terminal metadata."""

    total_rows: int
    per_stream: dict[str, int]
    elapsed: float
    metadata: Any


@dataclass(frozen=True)
class ShutdownReport:
    """How a worker process ended. ``how``: already_exited, graceful, terminated or killed."""

    how: str
    generation: int
    exit_code: int | None
    signal: int | None
    elapsed: float


@dataclass(frozen=True)
class CapabilityMetadata:
    name: str | None
    version: str | None
    commands: tuple[str, ...]
    protocol: int
    host: str
    python: str | None
    lean: str | None


@dataclass(frozen=True)
class DoctorCheck:
    name: str
    status: str  # pass, warning or error
    message: str


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[DoctorCheck, ...]

    @property
    def ok(self) -> bool:
        """True when no check is an error."""
        return all(check.status != "error" for check in self.checks)


@dataclass(frozen=True)
class WorkerSnapshot:
    """A consistent view of one worker slot."""

    state: str
    generation: int
    pid: int | None
    requests_ok: int
    requests_failed: int
    requests_this_generation: int
    rows_delivered: int
    restarts: dict[str, int] = field(default_factory=dict)
    rss_mib: float | None = None
    stale_frames_dropped: int = 0
    backpressure_waits: int = 0
    sessions_opened: int = 0
    events_dropped: int = 0  # diagnostics (and progress past coalescing) dropped by full request buffers
    answers_read_by_caller: int = 0  # call answers the calling thread read from the pipe itself (actors/slot/readside.py)


@dataclass(frozen=True)
class PoolSnapshot:
    """A consistent view of a pool: ``workers == idle + busy``, ``leases == busy <= workers <= max_workers``.

    ``workers`` are slots that hold a worker for use (idle: not leased; busy: leased, even while its worker
    restarts); ``starting`` slots are being started for a waiter; ``stopping`` slots are being cycled or evicted.
    Their processes count toward ``max_workers`` too: ``workers + starting + stopping <= max_workers``.
    """

    max_workers: int
    workers: int
    idle: int
    busy: int
    leases: int
    starting: int
    stopping: int
    queue_depth: int
    requests_ok: int
    requests_failed: int
    rows_delivered: int
    restarts: dict[str, int]
    worker_rss_mib: list[float] | None
    total_rss_mib: float | None
    backpressure_waits: int
    stale_frames_dropped: int
    sessions_opened: int
    cooldowns: dict[str, float]  # capability|imports -> seconds until the key may be tried again
