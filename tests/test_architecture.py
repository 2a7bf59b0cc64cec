"""The layout rules of docs/architecture.md, checked on the source: imports point down, wings are entered through
their faces, and the worker side loads no runtime wing.

Every import counts: at module level, under ``TYPE_CHECKING`` and inside functions.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import leanworker

ROOT = Path(leanworker.__file__).resolve().parent
SKIP_DIRS = {"tests", "bench", "build", "docs", ".venv", ".ci"}  # fixtures/ counts: it is package code
WINGS = ("core", "slot", "pool", "run")
LOWER_LAYERS = ("protocol", "host", "planner", "lean")

# Cycles that may stand for a while, each with its reason (none today); this list only shrinks.
KNOWN_CYCLES: set[frozenset[str]] = set()


def module_name(path: Path) -> str:
    parts = ["leanworker", *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@lru_cache(maxsize=None)
def checkout_files(suffix: str) -> tuple[Path, ...]:
    """The checkout's files ending in ``suffix``, but for those under ``.venv``, ``build`` and top-level dot folders.

    Walked with those folders left out, not found with ``rglob`` and filtered: ``.venv`` alone holds thousands of
    files (Ray's among them), and several tests of this module read the list."""
    found = []
    for folder, subfolders, names in os.walk(ROOT):
        if folder == str(ROOT):
            subfolders[:] = [name for name in subfolders if name not in {".venv", "build"} and not name.startswith(".")]
        subfolders.sort()
        found += [Path(folder, name) for name in sorted(names) if name.endswith(suffix)]
    return tuple(found)


@lru_cache(maxsize=None)
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def package_files() -> Iterator[Path]:
    for path in sorted(checkout_files(".py")):
        if path.relative_to(ROOT).parts[0] not in SKIP_DIRS:
            yield path


def imported_modules(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> set[str]:
    """Every leanworker module ``name`` imports, wherever the import stands."""
    found: set[str] = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # "from pkg import mod" imports the module pkg.mod when it is one
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t == "leanworker" or t.startswith("leanworker."))
    found.discard(name)
    return found


@lru_cache(maxsize=1)
def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in package_files()}
    known = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        graph[name] = {target for target in imported_modules(parsed(path), name, path.name == "__init__.py", known)
                       if target in known}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iteratively; components of more than one module (a module never imports itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return components


# Reaches into another module's private names that may stand for a while, each with its reason (none today).
KNOWN_REACH_INS: set[tuple[str, str]] = set()
# Documented names of the standard library, and the lock protocol threading.Condition uses (core/locks.py wraps it).
STDLIB_PRIVATE = {"os._exit", "sys._getframe", "self._inner._is_owned", "self._inner._release_save",
                  "self._inner._acquire_restore"}


def wing_of(name: str) -> str | None:
    parts = name.split(".")
    if len(parts) >= 3 and parts[1] == "actors" and parts[2] in WINGS:
        return parts[2]
    return None


def edges() -> Iterator[tuple[str, str]]:
    for source, targets in import_graph().items():
        for target in sorted(targets):
            yield source, target


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert "leanworker.actors.slot.supervisor" in graph
    assert "leanworker.actors.core.config" in graph["leanworker.actors.slot.supervisor"]
    assert "leanworker.host.serve" in graph
    assert "leanworker.fixtures.faults" in graph and "leanworker.serve.app" in graph


def test_no_import_cycles_counting_type_checking_and_function_level_imports() -> None:
    cycles = [frozenset(component) for component in strongly_connected(import_graph())]
    new = [sorted(cycle) for cycle in cycles if cycle not in KNOWN_CYCLES]
    assert not new, f"import cycles: {new}"


def test_protocol_host_planner_and_lean_import_no_runtime_wing() -> None:
    bad = [(source, target) for source, target in edges()
           if (source + ".").split(".")[1] in LOWER_LAYERS and target.startswith("leanworker.actors")
           and not (target.startswith("leanworker.actors.core.") or target in ("leanworker.actors",
                                                                                   "leanworker.actors.core"))]
    assert not bad, f"a lower layer imports the runtime: {bad}"


def test_the_core_imports_no_wing_and_the_run_imports_only_the_core() -> None:
    bad = []
    for source, target in edges():
        source_wing, target_wing = wing_of(source), wing_of(target)
        if source_wing == "core" and target_wing not in (None, "core"):
            bad.append((source, target))
        if source_wing == "run" and target_wing not in (None, "core", "run"):
            bad.append((source, target))
        if source_wing == "slot" and target_wing in ("pool", "run"):
            bad.append((source, target))
    assert not bad, f"imports against the wings' order (core < slot, run < pool): {bad}"


def test_another_wing_is_imported_through_its_face() -> None:
    bad = []
    for source, target in edges():
        target_wing = wing_of(target)
        if target_wing in (None, "core") or wing_of(source) == target_wing:
            continue
        if target != f"leanworker.actors.{target_wing}":
            bad.append((source, target))
    assert not bad, f"imports of a wing's internal module from outside it: {bad}"


def test_the_worker_host_loads_no_runtime_wing() -> None:
    code = ("import sys, leanworker.host.serve, leanworker.lean.capability; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('leanworker.actors'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            timeout=30).stdout.split()
    assert loaded, "the probe saw no module of leanworker.actors at all: it measures nothing"
    assert all(m == "leanworker.actors" or m.startswith("leanworker.actors.core") for m in loaded), loaded
    assert "pykka" not in subprocess.run(
        [sys.executable, "-c", "import sys, leanworker.host.serve; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True, timeout=30).stdout.split()


# What a worker process must not load to start: the host imports each only where it is used (a failed command's
# traceback, a spawn's subprocess), or does without it (the host's records are no dataclasses, hello's Python version
# is read from sys.version). Each costs a worker from 2 to 10 ms of CPU at every start; a worker is started for every
# generation of every slot.
HEAVY_AT_START = ("dataclasses", "inspect", "ast", "dis", "tokenize", "subprocess", "selectors", "platform",
                  "traceback", "textwrap", "pathlib", "fnmatch", "urllib.parse", "ipaddress", "ctypes", "hashlib",
                  "json", "logging", "tempfile", "shutil", "asyncio", "pykka", "psutil")


def test_importing_the_worker_host_entry_loads_no_heavy_module(tmp_path: Path) -> None:
    # Without site (-S): an editable install's import finder (setuptools) loads pathlib and fnmatch before any code of
    # ours runs, which would hide the host's own imports of them. leanworker is reached through a link named after it,
    # its dependencies through this interpreter's site directories.
    (tmp_path / "leanworker").symlink_to(ROOT, target_is_directory=True)
    import site

    path = os.pathsep.join([str(tmp_path), *site.getsitepackages(), site.getusersitepackages()])
    code = "import sys, leanworker.host.__main__; print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                                timeout=30, env={**os.environ, "PYTHONPATH": path}).stdout.split())
    assert {"leanworker.host.serve", "cbor2", "threading"} <= loaded, "the probe did not load the host"
    assert not loaded & set(HEAVY_AT_START), sorted(loaded & set(HEAVY_AT_START))


# What a worker serving the Lean REPL (``"leanworker.lean:repl"``) must not load to start: the file capability, the
# planner's discovery (tomllib) and planning, and modules only some calls need. Together ~30 ms of CPU a worker.
HEAVY_FOR_THE_REPL = ("leanworker.lean.file_check", "leanworker.planner.discovery", "leanworker.planner.plan",
                      "leanworker.planner.headers", "tomllib", "psutil", "secrets", "hmac", "random", "hashlib")


def test_a_worker_serving_the_lean_repl_loads_only_what_the_repl_needs(tmp_path: Path) -> None:
    (tmp_path / "leanworker").symlink_to(ROOT, target_is_directory=True)
    import site

    path = os.pathsep.join([str(tmp_path), *site.getsitepackages(), site.getusersitepackages()])
    code = ("import sys, importlib, leanworker.host.__main__; getattr(importlib.import_module('leanworker.lean'), "
            "'repl'); print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                                timeout=30, env={**os.environ, "PYTHONPATH": path}).stdout.split())
    assert {"leanworker.lean.capability", "leanworker.lean.session", "json"} <= loaded, "the probe loaded no REPL"
    assert not loaded & set(HEAVY_FOR_THE_REPL), sorted(loaded & set(HEAVY_FOR_THE_REPL))


def private_reaches(path: Path, name: str, known: set[str]) -> Iterator[str]:
    """``x._y`` on anything but ``self`` or ``cls``, and ``from m import _y`` of a name that is not a module."""
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            text = ast.unparse(node)
            if text not in STDLIB_PRIVATE:
                yield f"{name}:{node.lineno}: {text}"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("leanworker"):
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and f"{node.module}.{alias.name}" not in known and (name, alias.name) not in KNOWN_REACH_INS:
                    yield f"{name}:{node.lineno}: from {node.module} import {alias.name}"


def test_no_object_reaches_into_another_objects_private_attributes() -> None:
    known = set(import_graph())
    found = [reach for path in package_files() for reach in private_reaches(path, module_name(path), known)]
    assert not found, "private names used from outside their object or module:\n" + "\n".join(found)


def test_the_reach_in_check_sees_a_reach_in(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text("from leanworker.cli import _hidden\n\ndef f(port):\n    return port._ask(self._ok)\n")
    found = list(private_reaches(source, "sample", set()))
    assert len(found) == 2 and "port._ask" in found[0] + found[1]


def test_every_markdown_file_the_code_and_docs_cite_is_in_the_repository() -> None:
    cited, checked = [], 0
    for path in [*checkout_files(".py"), *checkout_files(".md"), ROOT / "pyproject.toml", ROOT / "Makefile"]:
        relative = path.relative_to(ROOT)
        for name in re.findall(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.md)\b", path.read_text(encoding="utf-8")):
            checked += 1
            if not any((base / name).exists() for base in (ROOT, ROOT / "docs", path.parent)):
                cited.append(f"{relative}: {name}")
    assert checked > 20, f"only {checked} citations seen: the pattern reads nothing"
    assert not cited, "files cited that the repository does not hold:\n" + "\n".join(sorted(set(cited)))


def test_no_document_is_cited_from_outside_the_repository() -> None:
    # The check above resolves names inside the checkout; a path that climbs out of it (a sibling folder's notes)
    # names a document a clean clone, or an installed package, does not have: the repository keeps its own in docs/.
    outside = []
    for path in [*checkout_files(".py"), *checkout_files(".md"), ROOT / "pyproject.toml", ROOT / "Makefile"]:
        relative = path.relative_to(ROOT)
        text = path.read_text(encoding="utf-8")
        outside += [f"{relative}: {name}" for name in re.findall(r"\.\./[\w./-]+\.md\b", text)]
    assert not outside, "documents cited from outside the repository:\n" + "\n".join(sorted(set(outside)))


def test_every_source_file_the_code_and_docs_cite_by_path_is_in_the_repository() -> None:
    cited, checked = [], 0
    for path in [*checkout_files(".py"), *checkout_files(".md")]:
        relative = path.relative_to(ROOT)
        for name in re.findall(r"(?<![\w/.-])((?:[\w-]+/)+[\w-]+\.py)\b", path.read_text(encoding="utf-8")):
            checked += 1
            inside = name.removeprefix("leanworker/")
            bases = (ROOT, ROOT / "docs", ROOT / "actors", path.parent)
            if not any((base / inside).exists() for base in bases):
                cited.append(f"{relative}: {name}")
    assert checked > 50, f"only {checked} citations seen: the pattern reads nothing"
    assert not cited, "source files cited that the repository does not hold:\n" + "\n".join(sorted(set(cited)))
