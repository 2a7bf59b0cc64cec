"""docs/semantics.md's index of tests stays honest: every rule of the page is listed, every test it names exists,
and every rule has at least one end-to-end test (over real processes, not a pure policy)."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import leanworker

ROOT = Path(leanworker.__file__).resolve().parent
INDEX = "# Tests of each rule"


def page() -> tuple[str, str]:
    text = (ROOT / "docs" / "semantics.md").read_text(encoding="utf-8")
    rules, _, index = text.partition(INDEX)
    assert index, f"docs/semantics.md has no '{INDEX}' section"
    return rules, index


def rule_names(rules: str) -> list[str]:
    """Every ``##`` rule, prefixed by its part (``The pool: Memory``) outside the first part."""
    names, part = [], ""
    for line in rules.splitlines():
        if line.startswith("# "):
            part = line[2:].strip()
            if part in ("Running a plan", "asyncio"):
                names.append(part)  # its rules are the bullets right under it
        elif line.startswith("## "):
            title = line[3:].strip()
            names.append(title if part in ("Semantics", "Running a plan") else f"{part}: {title}")
    return names


def indexed() -> dict[str, dict[str, list[str]]]:
    _, index = page()
    entries: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in index.splitlines():
        if line.startswith("### "):
            current = entries.setdefault(line[4:].strip(), {})
        elif line.startswith("- unit:") or line.startswith("- end to end:"):
            kind = "unit" if line.startswith("- unit:") else "end to end"
            current[kind] = re.findall(r"`([\w/]+\.py::\w+)`", line)
    return entries


@functools.cache  # the index names many tests of one file: parse each file once
def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    names |= {target.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
              for target in node.targets if isinstance(target, ast.Name)}
    return names


def test_every_rule_of_the_page_is_in_the_index() -> None:
    rules, _ = page()
    names = rule_names(rules)
    assert len(names) > 20, names
    missing = [name for name in names if name not in indexed()]
    assert not missing, f"rules with no entry in the index: {missing}"


def test_every_test_the_index_names_exists() -> None:
    named = [test for entry in indexed().values() for tests in entry.values() for test in tests]
    assert len(named) > 80, "the index names too few tests: is the format still read?"
    missing = []
    for test in named:
        file, _, name = test.partition("::")
        path = ROOT / "tests" / file
        if not path.exists() or name not in defined_tests(path):
            missing.append(test)
    assert not missing, f"tests the index names that do not exist: {missing}"


def test_every_rule_has_an_end_to_end_test_over_real_processes() -> None:
    for rule, entry in indexed().items():
        end_to_end = entry.get("end to end", [])
        assert end_to_end, f"{rule}: no end-to-end test"
        assert not any(t.startswith("test_policy_") for t in end_to_end), f"{rule}: a policy test is not end to end"
