"""The lakefile readers on their own: every declarative form, and the forms they must report instead of guessing."""

from __future__ import annotations

import pytest

from leanworker.planner.lakefile import Glob, read_toml_lakefile
from leanworker.planner.lakefile_lean import read_lean_lakefile, strip_comments


@pytest.mark.parametrize("header, expected", [
    ("package foo", "foo"),
    ("package «foo-bar» where\n  srcDir := \"src\"", "foo-bar"),
    ("package \"quoted\"", "quoted"),
    ("package braces {\n  srcDir := \"src\"\n}", "braces"),
])
def test_package_names_in_every_form(header: str, expected: str) -> None:
    assert read_lean_lakefile(f"import Lake\nopen Lake DSL\n{header}\n", "x").package == expected


def test_package_src_dir_with_a_path_join() -> None:
    config = read_lean_lakefile('package p where\n  srcDir := "a" / "b"\n', "x")
    assert config.src_dir == "a/b" and not config.diagnostics


def test_lean_lib_fields_with_string_globs_and_glob_constructors() -> None:
    text = """
@[default_target] lean_lib Lib where
  roots := #[`Lib, `«Other-Root»]
  globs := #["Lib.*", "Extra", Glob.submodules `Deep, Lake.Glob.one `Single, `Bare]
  srcDir := "lib"

@[default_target]
lean_exe app

lean_lib Plain { roots := #[`Plain], srcDir := "plain" }
"""
    config = read_lean_lakefile(text, "x")
    lib, plain = config.libs
    assert lib.name == "Lib" and lib.default and lib.src_dir == "lib"
    assert lib.roots == ("Lib", "«Other-Root»")
    assert [str(g) for g in lib.globs or ()] == ["Lib.*", "Extra", "Deep.+", "Single", "Bare"]
    assert plain.roots == ("Plain",) and plain.src_dir == "plain" and not plain.default
    assert config.default_targets == ["app", "Lib"] and config.exes == ["app"]


def test_comments_never_declare_anything() -> None:
    text = "-- lean_lib A\n/- lean_lib B /- nested -/ lean_lib C -/\nlean_lib \"D\"\n"
    assert [lib.name for lib in read_lean_lakefile(text, "x").libs] == ["D"]
    assert strip_comments('def s := "-- not a comment"\n') == 'def s := "-- not a comment"\n'


@pytest.mark.parametrize("field", ["roots := someFunction 3", "globs := #[.submodules `A] ++ more",
                                   "srcDir := computeDir", "globs := #[Glob.custom `A]"])
def test_values_computed_by_lean_code_are_errors_and_the_library_is_not_enumerated(field: str) -> None:
    config = read_lean_lakefile(f"lean_lib Lib where\n  {field}\n", "x")
    (lib,) = config.libs
    assert not lib.readable
    assert [d.severity for d in config.diagnostics] == ["error"] and "Lib" in config.diagnostics[0].message


def test_toml_reads_every_field_and_reports_bad_types() -> None:
    config = read_toml_lakefile('name = "t"\nsrcDir = "src"\ndefaultTargets = ["L", "exe"]\n'
                                '[[lean_lib]]\nname = "L"\nroots = "L"\nglobs = "L.+"\nsrcDir = "l"\n'
                                '[[lean_lib]]\nname = "Bad"\nroots = 3\n[[lean_exe]]\nname = "exe"\n', "x")
    good, bad = config.libs
    assert (config.package, config.src_dir, config.default_targets) == ("t", "src", ["L", "exe"])
    assert good.roots == ("L",) and good.globs == (Glob("submodules", "L"),) and good.src_dir == "l"
    assert not bad.readable and config.exes == ["exe"]
    assert any("roots must be a list" in d.message for d in config.diagnostics)


def test_invalid_toml_is_one_diagnostic_not_a_crash() -> None:
    config = read_toml_lakefile("name = [unclosed\n", "x")
    assert config.libs == [] and config.diagnostics[0].severity == "error"


def test_an_unbalanced_declaration_is_an_error_on_its_line_and_does_not_swallow_the_rest() -> None:
    text = "package p\n\nlean_lib A\n\nlean_lib Verso where (((\n\nlean_lib B\n\n@[default_target]\nlean_lib C\n"
    config = read_lean_lakefile(text, "lakefile.lean")
    assert [(lib.name, lib.readable) for lib in config.libs] == [("A", True), ("Verso", False), ("B", True),
                                                                  ("C", True)]
    assert config.default_targets == ["C"]
    errors = [d for d in config.diagnostics if d.severity == "error"]
    assert len(errors) == 1 and errors[0].line == 5 and "left open" in errors[0].message


def test_text_that_is_no_declaration_is_an_error_on_its_line() -> None:
    config = read_lean_lakefile("package p\n)))\nlean_lib A\n", "lakefile.lean")
    assert [lib.name for lib in config.libs] == ["A"]
    assert [(d.severity, d.line) for d in config.diagnostics] == [("error", 2)]
