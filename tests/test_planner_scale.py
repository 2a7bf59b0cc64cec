"""Mathlib scale: a tree of 7,039 stub Mathlib modules from shared/data is discovered whole and planned."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import leanworker as lw
from leanworker.fixtures.mathlib_tree import build_mathlib_tree, find_module_list, read_module_list

MODULE_LIST = find_module_list()


@pytest.fixture
def tree_home(tmp_path: Path) -> Iterator[Path]:
    """Where the tree goes: in memory (/dev/shm) where the machine has one, removed afterwards; else ``tmp_path``.
    Writing 7,040 small files to a journaled disk costs seconds of system time, and pytest deletes them again at the
    end of a later run."""
    memory = Path("/dev/shm")
    if not (memory.is_dir() and os.access(memory, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="leanworker-mathlib-", dir=memory))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(MODULE_LIST is None, reason="shared/data/mathlib_modules.txt is not beside this checkout")
def test_every_mathlib_module_of_the_real_list_is_discovered(tree_home: Path) -> None:
    assert MODULE_LIST is not None
    listed = read_module_list(MODULE_LIST)
    written = build_mathlib_tree(tree_home / "mathlib", listed)
    assert len(written) == 7039
    project = lw.discover_lake_project(tree_home / "mathlib")
    found = {m.name for m in project.modules}
    assert found == {"Mathlib", *written}
    assert project.fingerprint.source_count == 7040 and not project.diagnostics
    plan = lw.ImportPlanner("leanworker.fixtures.mathlib_scale:capability", ("Mathlib",),
                            max_batch_modules=1024).plan(project)
    assert plan.module_count == 7040 and len(plan.batches) == 7
