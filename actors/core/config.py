"""Configuration: frozen dataclasses with defaults. Durations are seconds (float); sizes in MiB are ints."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from leanworker.actors.core.tracing import TraceSink, as_sink
from leanworker.protocol.frames import DEFAULT_MAX_FRAME_BYTES, check_frame_cap

OptionValue = str | int | float | bool | None


@dataclass(frozen=True)
class RestartPolicy:
    """When a worker is cycled (replaced on purpose) and how many unplanned restarts are tolerated."""

    max_requests: int | None = None
    max_imports: int | None = None
    idle_cycle_after: float | None = None
    rss_soft_limit_mib: int | None = None
    rss_hard_limit_mib: int | None = None
    max_restarts: int = 16
    restart_window: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_requests", "max_imports", "rss_soft_limit_mib", "rss_hard_limit_mib"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"RestartPolicy.{name} must be >= 1 or None, got {value}")
        if self.idle_cycle_after is not None and self.idle_cycle_after <= 0:
            raise ValueError("RestartPolicy.idle_cycle_after must be > 0 or None")
        if self.max_restarts < 0 or self.restart_window <= 0:
            raise ValueError("RestartPolicy needs max_restarts >= 0 and restart_window > 0")

    @property
    def watches_memory(self) -> bool:
        return self.rss_soft_limit_mib is not None or self.rss_hard_limit_mib is not None


@dataclass(frozen=True)
class WorkerConfig:
    """Timeouts and bounds of one worker process.

    ``buffer_rows`` and ``buffer_bytes`` bound the rows buffered for a caller (whichever fills first; the buffer
    takes one frame more at most). ``containment``: "auto" puts each worker in a cgroup v2 of its own when the
    machine allows it (so descendants that leave the process group die with it), else the process group alone;
    "cgroup" requires the cgroup; "group" never uses one (docs/semantics.md, Containment).

    ``sandbox``: None runs the worker as it is; "bwrap" runs it (and what it starts) under bubblewrap, failing the
    start when bubblewrap is not installed; "auto" does so where bubblewrap is installed (docs/semantics.md,
    Sandbox). The sandbox binds read-only what the worker needs plus ``sandbox_paths`` (a REPL's toolchain, say),
    masks ``sandbox_hidden`` (files, or directories when ending with "/") even inside those, and bounds the
    processes (threads included) to ``sandbox_max_processes`` and, where a cgroup allows, memory to
    ``sandbox_memory_mib``.
    """

    startup_timeout: float = 10.0
    request_timeout: float | None = 30.0
    cancel_grace: float = 1.0
    shutdown_timeout: float = 2.0
    kill_wait: float = 5.0
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    buffer_rows: int = 4096
    env: Mapping[str, str] | None = None
    buffer_bytes: int = 64 * 1024 * 1024
    containment: str = "auto"
    spin_wait: float = 50e-6
    sandbox: str | None = None
    sandbox_paths: tuple[str, ...] = ()
    sandbox_hidden: tuple[str, ...] = ()
    sandbox_max_processes: int | None = 512
    sandbox_memory_mib: int | None = None

    def __post_init__(self) -> None:
        check_frame_cap(self.max_frame_bytes)
        if self.sandbox not in (None, "auto", "bwrap"):
            raise ValueError("WorkerConfig.sandbox must be None, 'auto' or 'bwrap'")
        object.__setattr__(self, "sandbox_paths", tuple(self.sandbox_paths))
        object.__setattr__(self, "sandbox_hidden", tuple(self.sandbox_hidden))
        for name in ("sandbox_max_processes", "sandbox_memory_mib"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"WorkerConfig.{name} must be >= 1 or None")
        if not 0 <= self.spin_wait <= 0.01:
            raise ValueError("WorkerConfig.spin_wait must be in [0, 0.01] seconds")
        if self.buffer_rows < 1:
            raise ValueError("WorkerConfig.buffer_rows must be >= 1")
        if self.buffer_bytes < 64 * 1024:
            raise ValueError("WorkerConfig.buffer_bytes must be >= 65536")
        if self.containment not in ("auto", "cgroup", "group"):
            raise ValueError("WorkerConfig.containment must be 'auto', 'cgroup' or 'group'")
        for name in ("startup_timeout", "cancel_grace", "shutdown_timeout", "kill_wait"):
            if getattr(self, name) <= 0:
                raise ValueError(f"WorkerConfig.{name} must be > 0")


@dataclass(frozen=True)
class PoolConfig:
    """The pool: capacity, memory budget, admission queue, and the config of each worker it starts.

    With ``max_total_rss_mib`` set, a worker that is starting reserves what a worker of its key is expected to hold
    (the most seen for that key, else for any key, else ``worker_rss_estimate_mib``) until its session is open, so
    concurrent cold starts cannot overrun the budget.
    """

    max_workers: int = 2
    max_total_rss_mib: int | None = None
    worker_rss_estimate_mib: int = 256
    queue_wait_timeout: float = 30.0
    memory_sample_interval: float = 0.25
    memory_metric: str = "rss"
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    trace: TraceSink | Sequence[TraceSink] | None = None  # one tracer, several (each gets every event), or None

    def __post_init__(self) -> None:
        object.__setattr__(self, "trace", as_sink(self.trace))  # a sequence becomes one TracerGroup
        if self.max_workers < 1:
            raise ValueError("PoolConfig.max_workers must be >= 1")
        if self.worker_rss_estimate_mib < 0:
            raise ValueError("PoolConfig.worker_rss_estimate_mib must be >= 0")
        if self.memory_metric not in ("rss", "pss"):
            raise ValueError("PoolConfig.memory_metric must be 'rss' or 'pss'")

    @property
    def tracer(self) -> TraceSink | None:
        """The one sink the runtime records to (``trace``, with a sequence grouped)."""
        return as_sink(self.trace)


@dataclass(frozen=True)
class SessionKey:
    """The facts that decide whether a warm worker can serve a request. Frozen and hashable.

    ``capability`` is ``"module:attribute"`` naming a :class:`leanworker.host.Capability`; ``command`` is the worker
    argv (``None``: the default Python host); ``options`` is a tuple of ``(name, value)`` pairs.
    """

    capability: str
    workspace: str | None = None
    imports: tuple[str, ...] = ()
    command: tuple[str, ...] | None = None
    toolchain: str | None = None
    options: tuple[tuple[str, OptionValue], ...] = ()

    def __post_init__(self) -> None:
        # Accept lists where tuples are meant, so a key built from JSON is still hashable.
        object.__setattr__(self, "imports", tuple(self.imports))
        if self.command is not None:
            object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "options", tuple((str(k), v) for k, v in self.options))
        if ":" not in self.capability:
            raise ValueError(f"SessionKey.capability must be 'module:attribute', got {self.capability!r}")

    def argv(self) -> list[str]:
        """The worker process command line."""
        if self.command is not None:
            return list(self.command)
        return [sys.executable, "-m", "leanworker.host"]

    def options_dict(self) -> dict[str, Any]:
        return dict(self.options)
