"""Lake project discovery and import planning into batches that reuse warm sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from leanworker import _lazy

# Loaded on first use: the Lean capability needs only ``names`` in a worker, not discovery (tomllib) or planning.
_EXPORTS = {
    "LakeProject": "leanworker.planner.discovery",
    "LeanLib": "leanworker.planner.discovery",
    "ModuleDescriptor": "leanworker.planner.discovery",
    "ModuleSetFingerprint": "leanworker.planner.discovery",
    "discover_lake_project": "leanworker.planner.discovery",
    "find_lake_root": "leanworker.planner.discovery",
    "ImportDecl": "leanworker.planner.headers",
    "ImportHeader": "leanworker.planner.headers",
    "parse_import_header": "leanworker.planner.headers",
    "Glob": "leanworker.planner.lakefile",
    "LakeDiagnostic": "leanworker.planner.lakefile",
    "escape_component": "leanworker.planner.names",
    "join_components": "leanworker.planner.names",
    "split_module_name": "leanworker.planner.names",
    "validate_module_name": "leanworker.planner.names",
    "ImportPlan": "leanworker.planner.plan",
    "ImportPlanner": "leanworker.planner.plan",
    "PlannedBatch": "leanworker.planner.plan",
    "WorkItem": "leanworker.planner.plan",
}

if not TYPE_CHECKING:  # hidden from type checkers: they read the twin below (a __getattr__ would type any name Any)
    __all__ = sorted(_EXPORTS)
    __getattr__, __dir__ = _lazy.lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:  # the same names for type checkers (tests/test_public_api.py keeps both lists in step)
    from leanworker.planner.discovery import (
        LakeProject as LakeProject,
        LeanLib as LeanLib,
        ModuleDescriptor as ModuleDescriptor,
        ModuleSetFingerprint as ModuleSetFingerprint,
        discover_lake_project as discover_lake_project,
        find_lake_root as find_lake_root,
    )
    from leanworker.planner.headers import (
        ImportDecl as ImportDecl,
        ImportHeader as ImportHeader,
        parse_import_header as parse_import_header,
    )
    from leanworker.planner.lakefile import Glob as Glob
    from leanworker.planner.lakefile import LakeDiagnostic as LakeDiagnostic
    from leanworker.planner.names import (
        escape_component as escape_component,
        join_components as join_components,
        split_module_name as split_module_name,
        validate_module_name as validate_module_name,
    )
    from leanworker.planner.plan import (
        ImportPlan as ImportPlan,
        ImportPlanner as ImportPlanner,
        PlannedBatch as PlannedBatch,
        WorkItem as WorkItem,
    )
