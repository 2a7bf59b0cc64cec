"""The core: the vocabulary every part of leanworker may import, and nothing that starts a thread on import.

- ``config``: ``SessionKey``, ``WorkerConfig``, ``PoolConfig``, ``RestartPolicy``;
- ``results``: rows, summaries, snapshots and reports the runtime hands back;
- ``tracing``, ``trace_ring``: what the runtime records trace events to (a ``TraceSink``, several as one) and the
  trace files; ``Tracer``, the built-in ring of ``TraceEvent`` records;
- ``env``: the environment variables the parent sets for a worker process (read by ``host/``);
- ``stderr``, ``containment``, ``process_tree``: a child process's stderr tail, its cgroup, its process tree
  (memory and signals), shared by the runtime and by ``lean/`` inside a worker;
- ``lifecycle``, ``timers``, ``mailbox``: interpreter exit and ``os.fork()``, the timer thread, telling an actor.
- ``waits``, ``interruptible``: how long a wait may take, and how a caller's thread waits (so that Ctrl-C is seen).

This package's ``__init__`` imports nothing, so that ``from leanworker.actors.core.env import ...`` in a worker
process loads only what it names. Every module here imports only the standard library, ``protocol/``, ``errors``
and its siblings.
"""
