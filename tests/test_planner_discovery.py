"""Lake discovery against the small projects in fixtures/lake/, one per rule."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

import leanworker as lw
import leanworker.fixtures
from leanworker.planner import parse_import_header

LAKE = Path(leanworker.fixtures.__file__).parent / "lake"


def names(project: lw.LakeProject) -> list[str]:
    return [m.name for m in project.modules]


def codes(project: lw.LakeProject) -> list[str]:
    return [d.code for d in project.diagnostics]


def test_the_root_is_the_nearest_ancestor_with_a_lakefile() -> None:
    project = lw.discover_lake_project(LAKE / "toml_multi" / "Alpha" / "Sub")
    assert project.root == (LAKE / "toml_multi").resolve()
    assert project.lakefile.name == "lakefile.toml" and project.package == "toml-multi"


def test_no_lakefile_anywhere_is_a_lake_discovery_error(tmp_path: Path) -> None:
    with pytest.raises(lw.LakeDiscoveryError, match="no lakefile"):
        lw.discover_lake_project(tmp_path)
    with pytest.raises(lw.LakeDiscoveryError, match="no such file"):
        lw.discover_lake_project(tmp_path / "missing")


def test_toml_default_targets_select_libraries_and_roots_default_to_the_name() -> None:
    project = lw.discover_lake_project(LAKE / "toml_multi")
    assert [lib.name for lib in project.libs] == ["Alpha"]
    alpha = project.libs[0]
    assert alpha.roots == ("Alpha",) and [str(g) for g in alpha.globs] == ["Alpha"] and alpha.default
    assert names(project) == ["Alpha", "Alpha.Basic", "Alpha.Sub.Deep"], "AlphaExtra is not under Alpha"


def test_toml_string_globs_and_per_library_src_dirs() -> None:
    project = lw.discover_lake_project(LAKE / "toml_multi", libs=["Beta", "Gamma"])
    by_lib = {lib.name: lib for lib in project.libs}
    assert by_lib["Beta"].src_dir == "beta_src" and [str(g) for g in by_lib["Beta"].globs] == ["Beta.+"]
    assert [m.name for m in project.modules if m.lib == "Beta"] == ["Beta.One", "Beta.Two"], \
        "Beta.+ selects submodules only"
    assert [m.name for m in project.modules if m.lib == "Gamma"] == ["Gamma", "Gamma.G1", "Loose"], \
        "a glob reaches Loose, outside the root directory; nothing reaches Unlisted"
    beta_one = project.module("Beta.One")
    assert beta_one.source_root == (LAKE / "toml_multi" / "beta_src").resolve()
    assert beta_one.path == (LAKE / "toml_multi" / "beta_src" / "Beta" / "One.lean").resolve()
    assert beta_one.imports == ("Beta.Two",)


def test_an_unknown_library_is_a_lake_discovery_error() -> None:
    with pytest.raises(lw.LakeDiscoveryError, match="no lean_lib named 'Nope'.*Alpha, Beta, Gamma"):
        lw.discover_lake_project(LAKE / "toml_multi", libs=["Nope"])


def test_lean_lakefile_globs_of_every_kind_and_escaped_names() -> None:
    project = lw.discover_lake_project(LAKE / "lean_globs")
    assert project.package == "lean-globs"
    assert [lib.name for lib in project.libs] == ["Core", "IndexMap"]
    core = project.libs[0]
    assert [str(g) for g in core.globs] == ["Core.*", "Outside", "Tools.+"] and core.src_dir == "src"
    assert [m.name for m in project.modules if m.lib == "Core"] == \
        ["Core", "Core.«125»", "Core.A", "Core.«v4_0_0-m1»", "Outside", "Tools.T1"]
    assert "Core.Vendored.V" not in names(project), "a nested Lake project is another project"
    assert "Ghost" not in str(project.libs), "libraries in comments are not libraries"


def test_prefixes_are_component_wise() -> None:
    project = lw.discover_lake_project(LAKE / "lean_globs", libs=["IndexMap"])
    assert names(project) == ["IndexMap", "IndexMap.Basic"]


def test_a_brace_bodied_library_with_its_own_src_dir() -> None:
    project = lw.discover_lake_project(LAKE / "lean_globs", libs=["Extra"])
    assert project.libs[0].src_dir == "src/extra" and names(project) == ["Extra"]


def test_when_only_an_executable_is_a_default_target_every_library_is_selected() -> None:
    project = lw.discover_lake_project(LAKE / "exe_default")
    assert [lib.name for lib in project.libs] == ["A", "B"]
    assert names(project) == ["A", "B", "B.Inner"]


def test_lakefile_lean_wins_when_both_lakefiles_exist() -> None:
    project = lw.discover_lake_project(LAKE / "both_lakefiles")
    assert project.lakefile.name == "lakefile.lean" and names(project) == ["FromLean"]
    assert "lakefile.both" in codes(project)


def test_what_the_reader_cannot_follow_becomes_diagnostics_not_guesses() -> None:
    project = lw.discover_lake_project(LAKE / "unreadable")
    assert names(project) == ["Fine", "Fine.Part"]
    errors = [d for d in project.diagnostics if d.severity == "error"]
    assert [d.code for d in errors] == ["lakefile.unreadable", "lakefile.unreadable", "lakefile.conditional_lib"]
    assert "Computed" in errors[0].message and errors[0].line == 9
    assert "Appended" in errors[1].message and "Conditional" not in names(project)


def test_hidden_and_dot_lake_directories_are_skipped_and_symlink_loops_end(tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(LAKE / "toml_multi", root)
    (root / ".lake" / "packages" / "dep" / "Alpha").mkdir(parents=True)
    (root / ".lake" / "packages" / "dep" / "Alpha" / "Dep.lean").write_text("")
    (root / "Alpha" / ".hidden").mkdir()
    (root / "Alpha" / ".hidden" / "H.lean").write_text("")
    os.symlink(root / "Alpha", root / "Alpha" / "Sub" / "loop")
    project = lw.discover_lake_project(root)
    assert names(project) == ["Alpha", "Alpha.Basic", "Alpha.Sub.Deep"]


def test_headers_of_every_form() -> None:
    project = lw.discover_lake_project(LAKE / "headers")
    module = project.module("Headers.Module")
    assert module.imports == ("Headers.Prelude", "Headers.Escaped.«v4_0_0-m1»", "Headers.Plain", "Headers.«125»")
    decls = module.header.imports
    assert module.header.is_module and not module.header.prelude
    assert (decls[0].public, decls[1].public, decls[1].meta, decls[3].all) == (True, True, True, True)
    assert project.module("Headers.Plain").imports == ("Init.Data.List", "Init.Data.Array", "Headers.Module"), \
        "several imports on one line; the header ends at the first command"
    assert project.module("Headers.Prelude").header.prelude
    assert project.module("Headers.Doc").imports == ()


@pytest.mark.parametrize("text, expected", [
    ("import A\nimport B", ("A", "B")),
    ("import A import B.C", ("A", "B.C")),
    ("/- c /- nested -/ still -/ import A", ("A",)),
    ("--x\nimport A --y\n-- z\nimport B", ("A", "B")),
    ("import A\n/-- doc -/\nimport B", ("A",)),
    ("import A\n#check 1\nimport B", ("A",)),
    ("public meta import all A", ("A",)),
    ("", ()),
    ("theorem t : True := trivial", ()),
])
def test_header_parsing_cases(text: str, expected: tuple[str, ...]) -> None:
    assert parse_import_header(text).modules == expected


def test_the_fingerprint_records_the_source_set() -> None:
    root = LAKE / "toml_multi"
    project = lw.discover_lake_project(root)
    fingerprint = project.fingerprint
    assert fingerprint.toolchain == "leanprover/lean4:v4.30.0"
    assert fingerprint.lakefile_sha256 == hashlib.sha256((root / "lakefile.toml").read_bytes()).hexdigest()
    assert fingerprint.manifest_sha256 == hashlib.sha256((root / "lake-manifest.json").read_bytes()).hexdigest()
    assert fingerprint.source_count == 3
    assert fingerprint.max_mtime_ns == max(m.path.stat().st_mtime_ns for m in project.modules)
    assert lw.discover_lake_project(LAKE / "exe_default").fingerprint.manifest_sha256 is None


def test_the_fingerprint_changes_when_a_source_is_added(tmp_path: Path) -> None:
    root = tmp_path / "p"
    shutil.copytree(LAKE / "exe_default", root)
    before = lw.discover_lake_project(root).fingerprint
    (root / "B" / "New.lean").write_text("")
    after = lw.discover_lake_project(root).fingerprint
    assert after.source_count == before.source_count + 1 and after.digest != before.digest


def test_discovery_is_deterministic() -> None:
    first = lw.discover_lake_project(LAKE / "lean_globs")
    second = lw.discover_lake_project(LAKE / "lean_globs")
    assert first == second


def test_project_ok_says_whether_every_part_of_the_lakefile_was_read() -> None:
    import leanworker.fixtures

    lake = Path(leanworker.fixtures.__file__).parent / "lake"
    assert lw.discover_lake_project(lake / "lean_globs").ok
    unbalanced = lw.discover_lake_project(lake / "unbalanced")
    assert not unbalanced.ok and len(unbalanced.libs) == 14
    assert {m.name for m in unbalanced.modules} >= {"Alpha", "Beta", "Nu"} and "Verso" not in {
        m.name for m in unbalanced.modules}
    broken = lw.discover_lake_project(lake / "toml_broken")
    assert not broken.ok and broken.diagnostics[0].line == 4
