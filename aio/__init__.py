"""asyncio: ``AsyncWorkerPool`` and what it hands out (``AsyncLease``, ``AsyncRowStream``, ``AsyncPlanRun``), over the
pool's public surface; nothing here ever blocks the event loop (docs/semantics.md, asyncio)."""

from leanworker.aio.acquire import LeaseAcquisition
from leanworker.aio.lease import AsyncLease
from leanworker.aio.pool import AsyncWorkerPool
from leanworker.aio.run import AsyncPlanRun
from leanworker.aio.stream import AsyncRowStream

__all__ = ["AsyncLease", "AsyncPlanRun", "AsyncRowStream", "AsyncWorkerPool", "LeaseAcquisition"]
