"""The public surface: ``__all__``, the lazy exports and the type checkers' twin in ``__init__.py`` name the same
things; every ``lw.X`` the README and docs/ use exists; every error is in one group of docs/errors.md, or alone."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import leanworker as lw

ROOT = Path(lw.__file__).resolve().parent
GROUPS = (lw.WorkerLost, lw.RequestRefused, lw.UsageError)
ALONE = {"LeanWorkerError", "CommandError", "Cancelled", "StartupTimeout", "WorkerClosed", "PoolClosed"}


LAZY_PACKAGES = ("leanworker", "leanworker.lean", "leanworker.planner", "leanworker.testing")


def type_checking_twin(package: str) -> dict[str, str]:
    init = importlib.import_module(package).__file__
    assert init is not None
    tree = ast.parse(Path(init).read_text(encoding="utf-8"))
    twin: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.module is not None
                for alias in statement.names:
                    assert alias.asname == alias.name, f"{alias.name} must be re-exported as itself"
                    twin[alias.name] = statement.module
    return twin


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_all_the_lazy_exports_and_the_type_checking_twin_name_the_same_things(package: str) -> None:
    module = importlib.import_module(package)
    exports: dict[str, str] = module._EXPORTS  # noqa: SLF001 - this test guards the package's own table
    assert module.__all__ == sorted(exports)
    assert type_checking_twin(package) == exports
    for name, home in exports.items():  # each name is defined (or re-exported) by the module the table names
        assert hasattr(importlib.import_module(home), name), f"{package}.{name}: not in {home}"


def test_a_type_checker_sees_each_lazy_package_by_its_twin_a_misspelt_name_included(tmp_path: Path) -> None:
    # mypy --strict on a user's code: a star import gives every public name, and a misspelt one is an error (a
    # __getattr__ that mypy could see would type any name Any, and an __all__ it cannot read would export nothing).
    (tmp_path / "typed" / "leanworker").parent.mkdir()
    (tmp_path / "typed" / "leanworker").symlink_to(ROOT, target_is_directory=True)
    users = []
    for number, package in enumerate(LAZY_PACKAGES):
        user = tmp_path / f"user_{number}.py"
        names = importlib.import_module(package).__all__
        user.write_text(f"from {package} import *\nimport {package}\n\nused = ({', '.join(names)},)\n"
                        f"misspelt = {package}.no_such_name\n")
        users.append(str(user))
    done = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                           "--cache-dir", str(tmp_path / "cache"), "--no-error-summary", *users],
                          capture_output=True, text=True, timeout=240,
                          env={**os.environ, "MYPYPATH": str(tmp_path / "typed")}, cwd=tmp_path)
    errors = sorted(line.replace(" error:", "").split("  [")[0] for line in done.stdout.splitlines()
                    if " error: " in line)
    assert errors == [f"user_{number}.py:5: Module has no attribute \"no_such_name\""
                      for number in range(len(LAZY_PACKAGES))], done.stdout + done.stderr


@pytest.mark.parametrize("name", lw.__all__)
def test_every_public_name_resolves_from_its_module(name: str) -> None:
    value = getattr(lw, name)
    assert getattr(value, "__name__", name) == name


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_lw_name_the_readme_and_docs_use_exists() -> None:
    used = {(path.name, name) for path in doc_files()
            for name in re.findall(r"\blw\.([A-Za-z_][A-Za-z0-9_]*)", path.read_text(encoding="utf-8"))}
    assert used, "the docs name no lw.X at all: the check reads nothing"
    missing = sorted((doc, name) for doc, name in used if name not in lw.__all__ and not hasattr(lw, name))
    assert not missing, f"names the docs use that leanworker does not export: {missing}"


def test_every_exported_name_is_documented_in_the_readme_or_docs() -> None:
    text = "\n".join(path.read_text(encoding="utf-8") for path in doc_files())
    undocumented = [name for name in lw.__all__ if not re.search(rf"\b{re.escape(name)}\b", text)]
    assert not undocumented, f"exported names no doc mentions: {undocumented}"


def public_errors() -> list[type[lw.LeanWorkerError]]:
    return [value for name in lw.__all__ if isinstance(value := getattr(lw, name), type)
            and issubclass(value, lw.LeanWorkerError)]


def test_every_error_is_in_exactly_one_group_or_deliberately_alone() -> None:
    for error in public_errors():
        groups = [group.__name__ for group in GROUPS if issubclass(error, group)]
        if error in GROUPS:
            assert groups == [error.__name__]
        elif error.__name__ in ALONE:
            assert not groups, f"{error.__name__} is meant to stand alone but is in {groups}"
        else:
            assert len(groups) == 1, f"{error.__name__} is in groups {groups}"


def test_the_error_table_lists_every_public_error_with_its_group() -> None:
    table = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| (\w+|alone|-) \|", table, re.M))
    for error in public_errors():
        group = next((g.__name__ for g in GROUPS if issubclass(error, g) and error is not g), "alone")
        if error in GROUPS or error is lw.LeanWorkerError:
            group = "-"  # a base
        assert rows.get(error.__name__) == group, f"docs/errors.md: {error.__name__} should say {group}"


def test_the_run_retries_exactly_the_errors_after_which_a_fresh_worker_may_succeed() -> None:
    lost = {e.__name__ for e in public_errors() if issubclass(e, lw.WorkerLost) and e is not lw.WorkerLost}
    assert lost == {"WorkerCrashed", "RequestTimeout", "MemoryLimitExceeded", "ProtocolError", "HandshakeError",
                    "NodeLost"}
    assert not issubclass(lw.CommandError, lw.WorkerLost), "a capability's answer is never retried"
