"""Configuration: frozen dataclasses with defaults. Durations are seconds (float); sizes in MiB are ints."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from leanworker.actors.core.tracing import TraceSink, as_sink, runtime_sink
from leanworker.protocol.frames import DEFAULT_MAX_FRAME_BYTES, check_frame_cap

OptionValue = str | int | float | bool | None


def _whole(owner: str, name: str, value: object, minimum: int, optional: bool = False) -> None:
    """``owner.name`` is a whole number (not a bool) of at least ``minimum`` (or None when ``optional``)."""
    if value is None and optional:
        return
    alternative = " or None" if optional else ""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{owner}.{name} must be a whole number{alternative}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{owner}.{name} must be >= {minimum}{alternative}, got {value}")


def _seconds(owner: str, name: str, value: object, *, optional: bool = False, zero: bool = False,
             most: float | None = None) -> None:
    """``owner.name`` is a finite number of seconds: > 0 (>= 0 with ``zero``), at most ``most``, or None."""
    if value is None and optional:
        return
    alternative = " or None" if optional else ""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise TypeError(f"{owner}.{name} must be a finite number of seconds{alternative}, got {value!r} "
                        f"({type(value).__name__})")
    if (value < 0 if zero else value <= 0) or (most is not None and value > most):
        bound = f"in [0, {most:g}]" if most is not None else (">= 0" if zero else "> 0")
        raise ValueError(f"{owner}.{name} must be {bound} seconds{alternative}, got {value!r}")


def _one_of(owner: str, name: str, value: object, choices: tuple[object, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{owner}.{name} must be {' or '.join(repr(c) for c in choices)}, got {value!r}")


def _texts(owner: str, name: str, value: object) -> tuple[str, ...]:
    """``owner.name`` as a tuple of strings (a list is accepted; a lone string is not a sequence of paths)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) or \
            not all(isinstance(item, str) for item in value):
        raise TypeError(f"{owner}.{name} must be a sequence of strings, got {value!r}")
    return tuple(value)


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
            _whole("RestartPolicy", name, getattr(self, name), 1, optional=True)
        _seconds("RestartPolicy", "idle_cycle_after", self.idle_cycle_after, optional=True)
        _whole("RestartPolicy", "max_restarts", self.max_restarts, 0)
        _seconds("RestartPolicy", "restart_window", self.restart_window)

    @property
    def watches_memory(self) -> bool:
        return self.rss_soft_limit_mib is not None or self.rss_hard_limit_mib is not None


@dataclass(frozen=True)
class WorkerConfig:
    """Timeouts and bounds of one worker process.

    ``startup_timeout`` bounds the worker's ``hello`` and ``configure``; ``open_timeout`` bounds the session open
    (for Lean: the imports, which can take minutes), and when it is None, ``request_timeout`` bounds the open as it
    bounds a request (None: no bound).

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
    open_timeout: float | None = None

    @property
    def session_open_timeout(self) -> float | None:
        """What bounds the session open: ``open_timeout``, else ``request_timeout`` (None: nothing)."""
        return self.open_timeout if self.open_timeout is not None else self.request_timeout

    def __post_init__(self) -> None:
        owner = "WorkerConfig"
        for name in ("startup_timeout", "cancel_grace", "shutdown_timeout", "kill_wait"):
            _seconds(owner, name, getattr(self, name))
        _seconds(owner, "request_timeout", self.request_timeout, optional=True)
        _seconds(owner, "open_timeout", self.open_timeout, optional=True)
        _seconds(owner, "spin_wait", self.spin_wait, zero=True, most=0.01)
        _whole(owner, "max_frame_bytes", self.max_frame_bytes, 1)
        check_frame_cap(self.max_frame_bytes)
        _whole(owner, "buffer_rows", self.buffer_rows, 1)
        _whole(owner, "buffer_bytes", self.buffer_bytes, 64 * 1024)
        if self.env is not None and (not isinstance(self.env, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.env.items())):
            raise TypeError(f"{owner}.env must be a mapping of strings to strings or None, got {self.env!r}")
        _one_of(owner, "containment", self.containment, ("auto", "cgroup", "group"))
        _one_of(owner, "sandbox", self.sandbox, (None, "auto", "bwrap"))
        object.__setattr__(self, "sandbox_paths", _texts(owner, "sandbox_paths", self.sandbox_paths))
        object.__setattr__(self, "sandbox_hidden", _texts(owner, "sandbox_hidden", self.sandbox_hidden))
        for name in ("sandbox_max_processes", "sandbox_memory_mib"):
            _whole(owner, name, getattr(self, name), 1, optional=True)


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
        owner = "PoolConfig"
        _whole(owner, "max_workers", self.max_workers, 1)
        _whole(owner, "max_total_rss_mib", self.max_total_rss_mib, 1, optional=True)
        _whole(owner, "worker_rss_estimate_mib", self.worker_rss_estimate_mib, 0)
        _seconds(owner, "queue_wait_timeout", self.queue_wait_timeout)
        _seconds(owner, "memory_sample_interval", self.memory_sample_interval)
        _one_of(owner, "memory_metric", self.memory_metric, ("rss", "pss"))
        for name, kind in (("worker", WorkerConfig), ("restart", RestartPolicy)):
            if not isinstance(getattr(self, name), kind):
                raise TypeError(f"{owner}.{name} must be a {kind.__name__}, got {getattr(self, name)!r}")

    @property
    def tracer(self) -> TraceSink | None:
        """The one sink the runtime records to (``trace``, with a sequence grouped, and a sink that raises kept
        from the runtime: ``runtime_sink``)."""
        return runtime_sink(self.trace)


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
        if isinstance(self.imports, str):  # type: ignore[unreachable]  # a caller without type checking
            raise TypeError(f"SessionKey.imports must be a sequence of module names, not the string {self.imports!r}")
        object.__setattr__(self, "imports", tuple(self.imports))
        if self.command is not None:
            object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "options", tuple((str(k), v) for k, v in self.options))
        if not isinstance(self.capability, str) or ":" not in self.capability:
            raise ValueError(f"SessionKey.capability must be 'module:attribute', got {self.capability!r}")
        if not all(isinstance(module, str) for module in self.imports):
            raise TypeError(f"SessionKey.imports must be module names (strings), got {self.imports!r}")

    def argv(self) -> list[str]:
        """The worker process command line."""
        if self.command is not None:
            return list(self.command)
        return [sys.executable, "-m", "leanworker.host"]

    def options_dict(self) -> dict[str, Any]:
        return dict(self.options)
