"""Lake configuration: the model of a lakefile (``LakefileConfig``, ``LibConfig``, ``Glob``, ``LakeDiagnostic``)
and the ``lakefile.toml`` reader (tomllib). The ``lakefile.lean`` reader is in lakefile_lean.py.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from leanworker.errors import InvalidModuleName
from leanworker.planner.names import split_module_name

GLOB_KINDS = ("one", "submodules", "andSubmodules")


@dataclass(frozen=True)
class LakeDiagnostic:
    """Something discovery could not read or had to decide. ``severity``: info, warning or error."""

    severity: str
    code: str
    message: str
    path: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Glob:
    """A Lake module glob: ``one`` (the module), ``submodules`` (strictly below it), ``andSubmodules`` (both)."""

    kind: str
    module: str

    @property
    def components(self) -> tuple[str, ...]:
        return split_module_name(self.module)

    def matches(self, components: tuple[str, ...]) -> bool:
        own = self.components
        if self.kind == "one":
            return components == own
        below = len(components) > len(own) and components[:len(own)] == own
        if self.kind == "submodules":
            return below
        return below or components == own

    @classmethod
    def parse(cls, text: str) -> Glob:
        """The TOML string form: ``A.B`` (one), ``A.B.+`` (submodules), ``A.B.*`` (andSubmodules)."""
        if text.endswith(".+"):
            glob = cls("submodules", text[:-2])
        elif text.endswith(".*"):
            glob = cls("andSubmodules", text[:-2])
        else:
            glob = cls("one", text)
        split_module_name(glob.module)
        return glob

    def __str__(self) -> str:
        return self.module + {"one": "", "submodules": ".+", "andSubmodules": ".*"}[self.kind]


@dataclass
class LibConfig:
    """A ``lean_lib`` as written: ``None`` roots or globs mean Lake's defaults."""

    name: str
    roots: tuple[str, ...] | None = None
    globs: tuple[Glob, ...] | None = None
    src_dir: str = "."
    default: bool = False
    readable: bool = True


@dataclass
class LakefileConfig:
    package: str | None = None
    src_dir: str = "."
    libs: list[LibConfig] = field(default_factory=list)
    exes: list[str] = field(default_factory=list)
    default_targets: list[str] = field(default_factory=list)
    diagnostics: list[LakeDiagnostic] = field(default_factory=list)


# -- TOML ------------------------------------------------------------------------------------------------------------


def read_toml_lakefile(text: str, path: str) -> LakefileConfig:
    """Read a ``lakefile.toml``; an unparseable file is one error diagnostic and an empty config."""
    config = LakefileConfig()

    def problem(message: str, severity: str = "error", code: str = "lakefile.unreadable",
                line: int | None = None) -> None:
        config.diagnostics.append(LakeDiagnostic(severity, code, message, path, line))

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"at line (\d+)", str(exc))
        line = int(where.group(1)) if where else text.count("\n") + 1  # "at end of document"
        problem(f"not valid TOML: {exc}; no library could be read", line=line)
        return config
    config.package = _toml_str(data.get("name"), "name", problem)
    config.src_dir = _toml_str(data.get("srcDir"), "srcDir", problem) or "."
    targets = data.get("defaultTargets", [])
    if isinstance(targets, list) and all(isinstance(t, str) for t in targets):
        config.default_targets = list(targets)
    else:
        problem(f"defaultTargets must be a list of names, got {targets!r}")
    for index, entry in enumerate(_toml_tables(data.get("lean_exe"), "lean_exe", problem)):
        name = _toml_str(entry.get("name"), f"lean_exe[{index}].name", problem)
        if name:
            config.exes.append(name)
    for index, entry in enumerate(_toml_tables(data.get("lean_lib"), "lean_lib", problem)):
        name = _toml_str(entry.get("name"), f"lean_lib[{index}].name", problem)
        if not name:
            problem(f"lean_lib[{index}] has no name; skipped")
            continue
        lib = LibConfig(name)
        lib.src_dir = _toml_str(entry.get("srcDir"), f"lean_lib {name}: srcDir", problem) or "."
        roots = entry.get("roots")
        if roots is not None:
            if isinstance(roots, str):
                roots = [roots]
            if isinstance(roots, list) and all(isinstance(r, str) for r in roots):
                lib.roots = tuple(roots)
            else:
                problem(f"lean_lib {name}: roots must be a list of module names, got {roots!r}")
                lib.readable = False
        globs = entry.get("globs")
        if globs is not None:
            if isinstance(globs, str):
                globs = [globs]
            try:
                if not (isinstance(globs, list) and all(isinstance(g, str) for g in globs)):
                    raise InvalidModuleName(f"globs must be a string or a list of strings, got {globs!r}")
                lib.globs = tuple(Glob.parse(g) for g in globs)
            except InvalidModuleName as exc:
                problem(f"lean_lib {name}: {exc}")
                lib.readable = False
        config.libs.append(lib)
    return config


def _toml_str(value: Any, what: str, problem: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    problem(f"{what} must be a string, got {value!r}")
    return None


def _toml_tables(value: Any, what: str, problem: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    problem(f"{what} must be an array of tables ([[{what}]])")
    return []
