"""What a plan run hands back: a result per final outcome, where it stands, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leanworker.actors.core.results import Row, StreamSummary
from leanworker.errors import LeanWorkerError
from leanworker.planner.plan import PlannedBatch


@dataclass(frozen=True)
class BatchResult:
    """The final outcome for ``modules`` of ``batch``: committed (with its ``rows``) or failed (with ``error``)."""

    batch: PlannedBatch
    modules: tuple[str, ...]
    committed: bool
    rows: tuple[Row, ...]
    summary: StreamSummary | None
    error: LeanWorkerError | None
    attempts: int
    started_at: float = 0.0  # time.monotonic() of its last attempt's start and end
    finished_at: float = 0.0
    injected: bool = False  # failed by a fault the run's fault plan injected (faults=), not by its modules


@dataclass(frozen=True)
class RunSummary:
    """How a run ended. Batch counts count results (a bisected batch gives several); ``batches_total`` counts the
    plan's batches; ``batches_skipped`` those already committed by an earlier run (``resume=True``); ``elapsed`` is
    in seconds, to the millisecond."""

    batches_total: int
    batches_committed: int
    batches_failed: int
    batches_skipped: int
    rows: int
    sessions_opened: int
    retries: int
    quarantined: tuple[str, ...]
    elapsed: float
    batches_cancelled: int = 0
    cancelled: bool = False
    injected: tuple[str, ...] = ()  # modules lost to injected faults (faults=): not poison, unlike quarantined
    faults: tuple[Any, ...] = ()  # the faults the run's fault plan recorded while it ran, in firing order


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands: results and modules done of their totals, rows committed, and an estimate."""

    batches_done: int
    batches_total: int
    modules_done: int
    modules_total: int
    rows: int
    sessions_opened: int
    failures: int
    elapsed: float
    eta_s: float | None
