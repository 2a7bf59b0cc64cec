"""The service's settings (``leanworker serve``'s options), validated when built."""

from __future__ import annotations

import ipaddress
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

SIMULATOR_MODULE = "leanworker.fixtures.repl_sim"
SIMULATED_REPLS = (SIMULATOR_MODULE, "leanworker.fixtures.repl_fake")  # the simulator, and its misbehaving fake


def is_simulator(command: str) -> bool:
    """The REPL command runs leanworker's REPL simulator (or its fake): its verdicts are not Lean's."""
    return any(module in command for module in SIMULATED_REPLS)


def simulator_command() -> tuple[str, ...]:
    """The bundled REPL simulator, on the interpreter leanworker runs on."""
    return (sys.executable, "-m", SIMULATOR_MODULE)


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "leanworker" / "serve-results.sqlite3"


def default_memory_ceiling_mib() -> int:
    """90% of this machine's memory: no worker may take the whole machine, and no Lean that fits is stopped."""
    import psutil

    return max(1, int(psutil.virtual_memory().total * 0.9) // 2**20)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``leanworker serve`` is told. Durations in seconds, sizes in bytes unless named ``_mib``."""

    host: str = "127.0.0.1"
    port: int = 8000
    workspace: str | None = None
    repl: tuple[str, ...] | None = None  # the REPL's command line; None: found as docs/lean.md says
    simulator: bool = False
    workers: int = 2
    timeout: float = 60.0  # per item, when a native request names none
    max_timeout: float = 300.0  # the most any request may ask for
    api_keys_file: str | None = None
    cache: bool = True
    cache_path: Path = field(default_factory=default_cache_path)
    cache_max_mib: int = 256
    max_queue: int = 100_000  # items admitted and not yet answered
    max_queue_mib: int = 512  # bytes of code admitted and not yet answered
    max_in_flight_per_key: int | None = None
    max_body_mib: int = 64
    max_item_bytes: int = 1 << 20
    max_batch: int = 16
    insecure: bool = False
    grace: float = 10.0  # on SIGTERM: how long requests in flight may finish
    client_timeout: float = 60.0  # for a request's head, then its body, then each line of a stream (slow clients)
    sandbox: str | None = "auto"  # WorkerConfig.sandbox of every worker
    sandbox_paths: tuple[str, ...] = ()  # more read-only binds (a REPL's toolchain outside what is found)
    recycle_after: int | None = None  # calls before a worker is replaced (RestartPolicy.max_requests)
    worker_memory_mib: int | None = None  # a worker past this RSS is replaced between calls (rss_soft_limit_mib)
    max_worker_memory_mib: int = field(default_factory=default_memory_ceiling_mib)  # a worker's hard ceiling

    def __post_init__(self) -> None:
        if self.simulator and self.repl is not None:
            raise ValueError("--repl and --simulator exclude each other")
        for name in ("workers", "max_queue", "max_queue_mib", "max_body_mib", "max_item_bytes", "max_batch",
                     "cache_max_mib", "max_worker_memory_mib"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        for name in ("max_in_flight_per_key", "recycle_after", "worker_memory_mib"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if not math.isfinite(self.max_timeout):  # a timeout past a float's range is capped at it (endpoints.py)
            raise ValueError("--max-timeout must be a finite number of seconds")
        if not 0 < self.timeout <= self.max_timeout:
            raise ValueError("--timeout must be > 0 and at most --max-timeout")
        if not 0 <= self.port <= 65535:
            raise ValueError("--port must be in [0, 65535]")
        if self.grace < 0:
            raise ValueError("--grace must be >= 0")
        if not self.client_timeout > 0:
            raise ValueError("--client-timeout must be > 0")
        if self.sandbox not in (None, "auto", "bwrap"):
            raise ValueError("--sandbox must be auto, bwrap or none")

    @property
    def hidden_paths(self) -> tuple[str, ...]:
        """What no worker may see: the key file and the results cache (with SQLite's -wal and -shm files)."""
        hidden = [self.api_keys_file] if self.api_keys_file else []
        if self.cache:
            hidden += [str(self.cache_path), f"{self.cache_path}-wal", f"{self.cache_path}-shm"]
        return tuple(os.path.abspath(path) for path in hidden)

    @property
    def repl_command(self) -> tuple[str, ...] | None:
        return simulator_command() if self.simulator else self.repl

    @property
    def simulated(self) -> bool:
        """True when the REPL is leanworker's simulator or its fake (whichever way it was named)."""
        command = self.repl_command
        return command is not None and is_simulator(" ".join(command))

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_mib * 2**20
