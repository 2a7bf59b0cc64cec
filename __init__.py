"""leanworker: run Lean work at mathlib scale on a supervised, actor-based pool of worker processes.

Public names are loaded lazily, so that a worker process (which imports this package first) stays cheap to start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # configuration
    "RestartPolicy": "leanworker.actors.config",
    "WorkerConfig": "leanworker.actors.config",
    "PoolConfig": "leanworker.actors.config",
    "SessionKey": "leanworker.actors.config",
    # runtime
    "Worker": "leanworker.actors.worker",
    "RowStream": "leanworker.actors.stream",
    "Tracer": "leanworker.actors.tracing",
    "TraceEvent": "leanworker.actors.tracing",
    # results
    "Row": "leanworker.actors.results",
    "StreamSummary": "leanworker.actors.results",
    "Diagnostic": "leanworker.actors.results",
    "Progress": "leanworker.actors.results",
    "ShutdownReport": "leanworker.actors.results",
    "CapabilityMetadata": "leanworker.actors.results",
    "DoctorCheck": "leanworker.actors.results",
    "DoctorReport": "leanworker.actors.results",
    "WorkerSnapshot": "leanworker.actors.results",
    # errors
    "LeanWorkerError": "leanworker.errors",
    "StartupTimeout": "leanworker.errors",
    "HandshakeError": "leanworker.errors",
    "RequestTimeout": "leanworker.errors",
    "Cancelled": "leanworker.errors",
    "WorkerCrashed": "leanworker.errors",
    "MemoryLimitExceeded": "leanworker.errors",
    "ProtocolError": "leanworker.errors",
    "RestartLimitExceeded": "leanworker.errors",
    "CommandError": "leanworker.errors",
    "StaleLease": "leanworker.errors",
    "QueueTimeout": "leanworker.errors",
    "MemoryBudgetExceeded": "leanworker.errors",
    "PoolClosed": "leanworker.errors",
    "InvalidModuleName": "leanworker.errors",
    "LakeDiscoveryError": "leanworker.errors",
    "WorkerBusy": "leanworker.errors",
    "WorkerClosed": "leanworker.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'leanworker' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from leanworker.actors.config import PoolConfig, RestartPolicy, SessionKey, WorkerConfig
    from leanworker.actors.results import (
        CapabilityMetadata,
        Diagnostic,
        DoctorCheck,
        DoctorReport,
        Progress,
        Row,
        ShutdownReport,
        StreamSummary,
        WorkerSnapshot,
    )
    from leanworker.actors.stream import RowStream
    from leanworker.actors.tracing import TraceEvent, Tracer
    from leanworker.actors.worker import Worker
    from leanworker.errors import (
        Cancelled,
        CommandError,
        HandshakeError,
        InvalidModuleName,
        LakeDiscoveryError,
        LeanWorkerError,
        MemoryBudgetExceeded,
        MemoryLimitExceeded,
        PoolClosed,
        ProtocolError,
        QueueTimeout,
        RequestTimeout,
        RestartLimitExceeded,
        StaleLease,
        StartupTimeout,
        WorkerBusy,
        WorkerClosed,
        WorkerCrashed,
    )
