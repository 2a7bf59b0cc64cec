"""The run: a plan's batches executed on places (local leases, or Ray node agents), retried, bisected and
committed exactly once (the executor, the place protocol, the schedule, the output journal).

What other wings use is named here; every other module of the run is internal to it. The run imports no other
wing but the core: the pool and ``leanworker.scaleout`` each bring their own places.
"""

from leanworker.actors.run.executor import RequestSpec
from leanworker.actors.run.faults import FaultedAttempt, FaultSource, ambient_faults
from leanworker.actors.run.journal import ResumeMismatch, committed_modules
from leanworker.actors.run.places import (
    Attempt,
    Place,
    PlaceGone,
    Requeue,
    RunBackend,
)
from leanworker.actors.run.plan_run import PlanRun
from leanworker.actors.run.results import BatchResult, RunProgress, RunSummary

__all__ = ["Attempt", "BatchResult", "FaultSource", "FaultedAttempt", "Place", "PlaceGone", "PlanRun", "RequestSpec",
           "Requeue", "ResumeMismatch", "RunBackend", "RunProgress", "RunSummary", "ambient_faults",
           "committed_modules"]
