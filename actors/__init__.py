"""The parent-side runtime, in wings by concept (docs/architecture.md draws them):

- ``actors.core``: the vocabulary everyone may import (configs, session keys, results, tracing, env names) and the
  process helpers shared with the worker side and ``lean/`` (stderr tail, containment, process trees);
- ``actors.slot``: one supervised worker (child, supervisor, gate, read side, channel, pipe, stream, ``Worker``);
- ``actors.pool``: the pool (pool actor, lease, admission, affinity, budget, ``WorkerPool``);
- ``actors.run``: running a plan (executor, places, schedule, journal).

Importing this package loads nothing: ``protocol/``, ``host/``, ``planner/`` and ``lean/`` import ``actors.core``
at most, and a worker process loads no runtime wing.
"""
