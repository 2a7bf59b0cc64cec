"""Mathlib scale: a tree of 7,039 stub Mathlib modules from shared/data is discovered whole and planned."""

from __future__ import annotations

from pathlib import Path

import pytest

import leanworker as lw
from leanworker.fixtures.mathlib_tree import build_mathlib_tree, find_module_list, read_module_list

MODULE_LIST = find_module_list()


@pytest.mark.skipif(MODULE_LIST is None, reason="shared/data/mathlib_modules.txt is not beside this checkout")
def test_every_mathlib_module_of_the_real_list_is_discovered(tmp_path: Path) -> None:
    assert MODULE_LIST is not None
    listed = read_module_list(MODULE_LIST)
    written = build_mathlib_tree(tmp_path / "mathlib", listed)
    assert len(written) == 7039
    project = lw.discover_lake_project(tmp_path / "mathlib")
    found = {m.name for m in project.modules}
    assert found == {"Mathlib", *written}
    assert project.fingerprint.source_count == 7040 and not project.diagnostics
    plan = lw.ImportPlanner("leanworker.fixtures.mathlib_scale:capability", ("Mathlib",),
                            max_batch_modules=1024).plan(project)
    assert plan.module_count == 7040 and len(plan.batches) == 7
