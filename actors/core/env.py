"""The environment variables through which the parent tells a worker process how to run (read by ``host/``).

They are part of the contract between the runtime and the worker host, as the frames are; both sides take the
names from here, so neither spells them on its own.
"""

from __future__ import annotations

PARENT_PID_ENV = "LEANWORKER_PARENT_PID"  # the parent's pid, to catch a parent that died before prctl took effect
SPIN_ENV = "LEANWORKER_SPIN_WAIT"  # WorkerConfig.spin_wait: how long the idle host spins before it sleeps
SYS_PATH_ENV = "LEANWORKER_SYS_PATH"  # where the parent found the capability's module, for the worker's sys.path
CGROUP_ENV = "LEANWORKER_CGROUP"  # the cgroup v2 the worker joins at start-up (core/containment.py)
SANDBOX_ENV = "LEANWORKER_SANDBOX"  # set inside a sandbox (core/sandbox.py): the parent's pid means nothing there
AGENT_PID_ENV = "LEANWORKER_AGENT_PID"  # set by a Ray node agent (scaleout/) in its own environment: its pid
