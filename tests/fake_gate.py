"""A slot's gate as the pool's pure policies read it (admission, the snapshot), for their tests without processes:
the real gate belongs to a supervisor with a live worker (actors/slot/gate.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any


@dataclass
class Gate:
    """Open or not, on which generation, and the counters the snapshot sums."""

    is_open: bool = True
    latest_generation: int = 1
    requests_ok: int = 0
    requests_failed: int = 0
    counters: Any = field(default_factory=lambda: SimpleNamespace(rows_delivered=0, backpressure_waits=0,
                                                                  stale_frames_dropped=0))

    def open_on(self, generation: int) -> bool:
        return self.is_open and self.latest_generation == generation
