"""Import planning: batches by session key, modes, chunking, fingerprints, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest

import leanworker as lw
import leanworker.fixtures

LAKE = Path(leanworker.fixtures.__file__).parent / "lake"
CAP = "leanworker.fixtures.mathlib_scale:capability"


def test_shared_mode_puts_a_library_in_one_batch_on_the_base_imports() -> None:
    project = lw.discover_lake_project(LAKE / "toml_multi", libs=["Alpha"])
    plan = lw.ImportPlanner(CAP, base_imports=("Mathlib",)).plan(project)
    assert len(plan.batches) == 1
    batch = plan.batches[0]
    assert batch.modules == ("Alpha", "Alpha.Basic", "Alpha.Sub.Deep")
    assert batch.key == lw.SessionKey(CAP, str(project.root), ("Mathlib",), None, "leanprover/lean4:v4.30.0")
    assert batch.request() == {"modules": ["Alpha", "Alpha.Basic", "Alpha.Sub.Deep"]}
    assert plan.source_fingerprint == project.fingerprint.digest and plan.module_count == 3


def test_per_header_mode_shares_a_session_between_modules_with_the_same_header() -> None:
    project = lw.discover_lake_project(LAKE / "toml_multi", libs=["Alpha"])
    plan = lw.ImportPlanner(CAP, base_imports=("Init",), mode="per_header").plan(project)
    by_imports = {batch.key.imports: batch.modules for batch in plan.batches}
    assert by_imports == {("Init", "Alpha.Basic"): ("Alpha", "Alpha.Sub.Deep"), ("Init",): ("Alpha.Basic",)}


def test_libraries_with_different_source_roots_get_different_batches() -> None:
    project = lw.discover_lake_project(LAKE / "toml_multi", libs=["Beta", "Gamma"])
    plan = lw.ImportPlanner(CAP).plan(project)
    assert [b.modules for b in plan.batches] == [("Beta.One", "Beta.Two"), ("Gamma", "Gamma.G1", "Loose")]
    assert len(plan.keys) == 1, "one session key serves both: a warm worker can run either batch"


def test_max_batch_modules_splits_groups_into_ordered_chunks() -> None:
    items = [lw.WorkItem(f"M.N{i:02d}") for i in range(10)]
    plan = lw.ImportPlanner(CAP, max_batch_modules=4).plan(items)
    assert [len(b.modules) for b in plan.batches] == [4, 4, 2]
    assert [m for b in plan.batches for m in b.modules] == [f"M.N{i:02d}" for i in range(10)]
    assert len({b.fingerprint for b in plan.batches}) == 3


def test_plans_are_deterministic_and_fingerprints_follow_the_content() -> None:
    items = [lw.WorkItem(f"M.X{i}", imports=("A",) if i % 2 else ("B",)) for i in range(6)]
    planner = lw.ImportPlanner(CAP, mode="per_header")
    first, second = planner.plan(items), planner.plan(list(reversed(items)))
    assert first == second
    changed = planner.plan(items[:-1])
    assert changed.fingerprint != first.fingerprint


def test_a_plan_holds_no_worker_identity() -> None:
    plan = lw.ImportPlanner(CAP).plan([lw.WorkItem("A")])
    fields = set(vars(plan.batches[0]))
    assert fields == {"key", "modules", "fingerprint", "source_root", "items"}


def test_bad_planner_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="mode"):
        lw.ImportPlanner(CAP, mode="clever")
    with pytest.raises(ValueError, match="max_batch_modules"):
        lw.ImportPlanner(CAP, max_batch_modules=0)
    with pytest.raises(lw.InvalidModuleName):
        lw.ImportPlanner(CAP).plan([lw.WorkItem("not a name")])
