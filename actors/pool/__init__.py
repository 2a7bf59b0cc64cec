"""The pool: worker slots leased by session key (the pool actor, a lease actor per slot, admission, affinity, the
memory budget, the ``Lease`` handle, ``WorkerPool`` and running a plan on local leases).

What other wings use is named here; every other module of the pool is internal to it.
"""

from leanworker.actors.pool.claim import LeaseClaim
from leanworker.actors.pool.lease import Lease
from leanworker.actors.pool.workerpool import WorkerPool

__all__ = ["Lease", "LeaseClaim", "WorkerPool"]
