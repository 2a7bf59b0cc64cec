"""Lake project discovery and import planning into batches that reuse warm sessions."""

from leanworker.planner.discovery import (
    LakeProject,
    LeanLib,
    ModuleDescriptor,
    ModuleSetFingerprint,
    discover_lake_project,
    find_lake_root,
)
from leanworker.planner.headers import ImportDecl, ImportHeader, parse_import_header
from leanworker.planner.lakefile import Glob, LakeDiagnostic
from leanworker.planner.names import escape_component, join_components, split_module_name, validate_module_name
from leanworker.planner.plan import ImportPlan, ImportPlanner, PlannedBatch, WorkItem

__all__ = [
    "Glob", "ImportDecl", "ImportHeader", "ImportPlan", "ImportPlanner", "LakeDiagnostic", "LakeProject", "LeanLib",
    "ModuleDescriptor", "ModuleSetFingerprint", "PlannedBatch", "WorkItem", "discover_lake_project",
    "escape_component", "find_lake_root", "join_components", "parse_import_header", "split_module_name",
    "validate_module_name",
]
