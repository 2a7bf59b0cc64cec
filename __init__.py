"""leanworker: run Lean work at mathlib scale on a supervised, actor-based pool of worker processes.

Public names are loaded lazily, so that a worker process (which imports this package first) stays cheap to start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leanworker import _lazy

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # configuration
    "RestartPolicy": "leanworker.actors.core.config",
    "WorkerConfig": "leanworker.actors.core.config",
    "PoolConfig": "leanworker.actors.core.config",
    "SessionKey": "leanworker.actors.core.config",
    # runtime
    "Worker": "leanworker.actors.slot",
    "WorkerPool": "leanworker.actors.pool",
    "Lease": "leanworker.actors.pool",
    "AsyncWorkerPool": "leanworker.aio",
    "AsyncLease": "leanworker.aio",
    "AsyncRowStream": "leanworker.aio",
    "AsyncPlanRun": "leanworker.aio",
    "PoolSnapshot": "leanworker.actors.core.results",
    "RowStream": "leanworker.actors.slot",
    "Tracer": "leanworker.actors.core.trace_ring",
    "TraceEvent": "leanworker.actors.core.trace_ring",
    # results
    "Row": "leanworker.actors.core.results",
    "StreamSummary": "leanworker.actors.core.results",
    "Diagnostic": "leanworker.actors.core.results",
    "Progress": "leanworker.actors.core.results",
    "ShutdownReport": "leanworker.actors.core.results",
    "CapabilityMetadata": "leanworker.actors.core.results",
    "DoctorCheck": "leanworker.actors.core.results",
    "DoctorReport": "leanworker.actors.core.results",
    "WorkerSnapshot": "leanworker.actors.core.results",
    # planning
    "discover_lake_project": "leanworker.planner.discovery",
    "LakeProject": "leanworker.planner.discovery",
    "LeanLib": "leanworker.planner.discovery",
    "ModuleDescriptor": "leanworker.planner.discovery",
    "ModuleSetFingerprint": "leanworker.planner.discovery",
    "LakeDiagnostic": "leanworker.planner.lakefile",
    "Glob": "leanworker.planner.lakefile",
    "validate_module_name": "leanworker.planner.names",
    "ImportPlanner": "leanworker.planner.plan",
    "ImportPlan": "leanworker.planner.plan",
    "PlannedBatch": "leanworker.planner.plan",
    "WorkItem": "leanworker.planner.plan",
    # running a plan
    "PlanRun": "leanworker.actors.run",
    "BatchResult": "leanworker.actors.run",
    "RunSummary": "leanworker.actors.run",
    "RunProgress": "leanworker.actors.run",
    "ResumeMismatch": "leanworker.actors.run",
    # errors (docs/errors.md: the groups, and what a caller does about each)
    "LeanWorkerError": "leanworker.errors",
    "WorkerLost": "leanworker.errors",
    "RequestRefused": "leanworker.errors",
    "UsageError": "leanworker.errors",
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
    "NotPlainData": "leanworker.errors",
    "UnencodableType": "leanworker.errors",
    "UnencodableValue": "leanworker.errors",
    "UsedAfterFork": "leanworker.errors",
    "NodeLost": "leanworker.errors",
}

if not TYPE_CHECKING:  # hidden from type checkers: they read the twin below (a __getattr__ would type any name Any)
    __all__ = sorted(_EXPORTS)
    __getattr__, __dir__ = _lazy.lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:  # the same names for type checkers (tests/test_public_api.py keeps both lists in step)
    from leanworker.actors.core.config import (
        PoolConfig as PoolConfig,
        RestartPolicy as RestartPolicy,
        SessionKey as SessionKey,
        WorkerConfig as WorkerConfig,
    )
    from leanworker.actors.core.results import (
        CapabilityMetadata as CapabilityMetadata,
        Diagnostic as Diagnostic,
        DoctorCheck as DoctorCheck,
        DoctorReport as DoctorReport,
        PoolSnapshot as PoolSnapshot,
        Progress as Progress,
        Row as Row,
        ShutdownReport as ShutdownReport,
        StreamSummary as StreamSummary,
        WorkerSnapshot as WorkerSnapshot,
    )
    from leanworker.actors.core.trace_ring import (
        TraceEvent as TraceEvent,
        Tracer as Tracer,
    )
    from leanworker.actors.pool import (
        Lease as Lease,
        WorkerPool as WorkerPool,
    )
    from leanworker.actors.run import (
        BatchResult as BatchResult,
        PlanRun as PlanRun,
        ResumeMismatch as ResumeMismatch,
        RunProgress as RunProgress,
        RunSummary as RunSummary,
    )
    from leanworker.actors.slot import (
        RowStream as RowStream,
        Worker as Worker,
    )
    from leanworker.aio import (
        AsyncLease as AsyncLease,
        AsyncPlanRun as AsyncPlanRun,
        AsyncRowStream as AsyncRowStream,
        AsyncWorkerPool as AsyncWorkerPool,
    )
    from leanworker.errors import (
        Cancelled as Cancelled,
        CommandError as CommandError,
        HandshakeError as HandshakeError,
        InvalidModuleName as InvalidModuleName,
        LakeDiscoveryError as LakeDiscoveryError,
        LeanWorkerError as LeanWorkerError,
        MemoryBudgetExceeded as MemoryBudgetExceeded,
        MemoryLimitExceeded as MemoryLimitExceeded,
        NodeLost as NodeLost,
        NotPlainData as NotPlainData,
        PoolClosed as PoolClosed,
        ProtocolError as ProtocolError,
        QueueTimeout as QueueTimeout,
        RequestRefused as RequestRefused,
        RequestTimeout as RequestTimeout,
        RestartLimitExceeded as RestartLimitExceeded,
        StaleLease as StaleLease,
        StartupTimeout as StartupTimeout,
        UnencodableType as UnencodableType,
        UnencodableValue as UnencodableValue,
        UsageError as UsageError,
        UsedAfterFork as UsedAfterFork,
        WorkerBusy as WorkerBusy,
        WorkerClosed as WorkerClosed,
        WorkerCrashed as WorkerCrashed,
        WorkerLost as WorkerLost,
    )
    from leanworker.planner.discovery import (
        LakeProject as LakeProject,
        LeanLib as LeanLib,
        ModuleDescriptor as ModuleDescriptor,
        ModuleSetFingerprint as ModuleSetFingerprint,
        discover_lake_project as discover_lake_project,
    )
    from leanworker.planner.lakefile import (
        Glob as Glob,
        LakeDiagnostic as LakeDiagnostic,
    )
    from leanworker.planner.names import (
        validate_module_name as validate_module_name,
    )
    from leanworker.planner.plan import (
        ImportPlan as ImportPlan,
        ImportPlanner as ImportPlanner,
        PlannedBatch as PlannedBatch,
        WorkItem as WorkItem,
    )
