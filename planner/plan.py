"""Import planning: group module work into batches that can share one warm session.

Two modes. ``shared``: every module's session imports the configured ``base_imports`` (one warm session serves a
whole library). ``per_header``: each module's session imports ``base_imports`` plus its own header's imports, so
modules with the same header share a session. Work is grouped by session key and source root; ``max_batch_modules``
splits a group into chunks that can run on different workers. Batches carry a fingerprint built from the source-set
fingerprint, the key and the modules. Plans are deterministic and hold no worker identity: the pool decides where
a batch runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leanworker.actors.core.config import OptionValue, SessionKey
from leanworker.planner.discovery import LakeProject, ModuleDescriptor
from leanworker.planner.names import split_module_name, validate_module_name

MODES = ("shared", "per_header")


@dataclass(frozen=True)
class WorkItem:
    """One module of work: its name, and what is known of its source and imports."""

    module: str
    path: Path | None = None
    source_root: Path | None = None
    imports: tuple[str, ...] = ()

    @classmethod
    def from_descriptor(cls, module: ModuleDescriptor) -> WorkItem:
        return cls(module.name, module.path, module.source_root, module.imports)


@dataclass(frozen=True)
class PlannedBatch:
    """Modules that can run against the same session. ``modules`` are names, in order."""

    key: SessionKey
    modules: tuple[str, ...]
    fingerprint: str
    source_root: Path | None = None
    items: tuple[WorkItem, ...] = ()

    def request(self) -> dict[str, Any]:
        """The request body fixture capabilities take: ``{"modules": [...]}``."""
        return {"modules": list(self.modules)}


@dataclass(frozen=True)
class ImportPlan:
    batches: tuple[PlannedBatch, ...]
    fingerprint: str
    mode: str
    source_fingerprint: str | None

    @property
    def module_count(self) -> int:
        return sum(len(batch.modules) for batch in self.batches)

    @property
    def keys(self) -> tuple[SessionKey, ...]:
        """Distinct session keys, in batch order."""
        return tuple(dict.fromkeys(batch.key for batch in self.batches))


class ImportPlanner:
    """Turns a discovered project (or explicit work items) into an :class:`ImportPlan`."""

    def __init__(self, capability: str, base_imports: Iterable[str] = (), max_batch_modules: int | None = None,
                 *, mode: str = "shared", command: Iterable[str] | None = None, toolchain: str | None = None,
                 options: Iterable[tuple[str, OptionValue]] = (), workspace: str | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if max_batch_modules is not None and max_batch_modules < 1:
            raise ValueError("max_batch_modules must be >= 1 or None")
        self.capability = capability
        self.base_imports = tuple(validate_module_name(m) for m in base_imports)
        self.max_batch_modules = max_batch_modules
        self.mode = mode
        self.command = tuple(command) if command is not None else None
        self.toolchain = toolchain
        self.options = tuple(options)
        self.workspace = workspace

    def plan(self, work: LakeProject | Iterable[WorkItem | ModuleDescriptor]) -> ImportPlan:
        if isinstance(work, LakeProject):
            items = [WorkItem.from_descriptor(m) for m in work.modules]
            source_fingerprint: str | None = work.fingerprint.digest
            workspace: str | None = self.workspace or str(work.root)
            toolchain = self.toolchain or work.fingerprint.toolchain
        else:
            items = [w if isinstance(w, WorkItem) else WorkItem.from_descriptor(w) for w in work]
            source_fingerprint, workspace, toolchain = None, self.workspace, self.toolchain
        for item in items:
            validate_module_name(item.module)
        groups: dict[tuple[SessionKey, str], list[WorkItem]] = {}
        for item in items:
            imports = self.base_imports
            if self.mode == "per_header":
                imports = tuple(dict.fromkeys((*self.base_imports, *item.imports)))
            key = SessionKey(self.capability, workspace, imports, self.command, toolchain, self.options)
            source = str(item.source_root) if item.source_root is not None else ""
            groups.setdefault((key, source), []).append(item)
        batches: list[PlannedBatch] = []
        for (key, source), members in groups.items():
            members.sort(key=lambda w: split_module_name(w.module))
            size = self.max_batch_modules or len(members)
            for start in range(0, len(members), size):
                chunk = tuple(members[start:start + size])
                names = tuple(w.module for w in chunk)
                batches.append(PlannedBatch(key, names, _batch_fingerprint(source_fingerprint, key, names),
                                            Path(source) if source else None, chunk))
        batches.sort(key=lambda b: (b.key.imports, str(b.source_root or ""), split_module_name(b.modules[0])))
        digest = hashlib.sha256("\n".join(b.fingerprint for b in batches).encode()).hexdigest()
        return ImportPlan(tuple(batches), digest, self.mode, source_fingerprint)


def key_to_json(key: SessionKey) -> dict[str, Any]:
    return {"capability": key.capability, "workspace": key.workspace, "imports": list(key.imports),
            "command": list(key.command) if key.command is not None else None, "toolchain": key.toolchain,
            "options": [list(pair) for pair in key.options]}


def _batch_fingerprint(source: str | None, key: SessionKey, modules: tuple[str, ...]) -> str:
    text = json.dumps({"source": source, "key": key_to_json(key), "modules": list(modules)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
