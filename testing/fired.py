"""``FiredFault``: the parent's record of one fault it decided and sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from leanworker.actors.core.config import SessionKey
from leanworker.testing.fault import key_as_dict


@dataclass(frozen=True)
class FiredFault:
    """One fault the parent decided and sent: its ``kind``, the ``command`` (None for a session open), the session
    ``key`` (the key as the caller wrote it), ``nth`` (the key's request number, or its session open's number), the
    worker's ``pid`` (None when the parent did not know it: a Ray node's worker), the index of the ``rule`` that
    fired, and the ``params`` the worker got."""

    kind: str
    command: str | None
    key: SessionKey
    nth: int
    pid: int | None
    rule: int = 0
    params: dict[str, Any] = field(default_factory=dict, hash=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data (the CLI's ``--json`` summary lists these)."""
        return {"kind": self.kind, "command": self.command, "key": key_as_dict(self.key), "nth": self.nth,
                "pid": self.pid, "rule": self.rule, "params": dict(self.params)}

    def __str__(self) -> str:
        params = ", ".join(f"{name}={value!r}" for name, value in self.params.items())
        where = f"{self.command!r} request {self.nth}" if self.command is not None else f"session open {self.nth}"
        pid = f"pid {self.pid}" if self.pid is not None else "pid unknown"
        return f"{self.kind}({params}) at {where} of {self.key.capability} ({pid}, rule {self.rule})"
