"""Lake project discovery: the root, the lakefile, the libraries, their modules, headers and a fingerprint.

Lake's rules, as this module applies them:

- The Lake root is the given directory or its nearest ancestor holding ``lakefile.lean`` or ``lakefile.toml``;
  when both exist Lake uses ``lakefile.lean`` (and says so), and so do we (an ``info`` diagnostic).
- A library's ``roots`` default to its name; its ``globs`` default to one ``.one`` glob per root; its ``srcDir``
  is relative to the package's ``srcDir``.
- A library's modules are the source files that exist and that Lake would build as part of it: every glob match,
  plus every module under a root whose own name a glob matches. With the defaults that is the root file plus every
  ``.lean`` file below the root-named directory. Prefixes are component-wise: ``IndexMapGrind`` is not under
  ``IndexMap``.
- ``.lake/``, hidden directories and nested Lake projects (a directory with its own lakefile) are skipped; a
  symlinked directory already visited is not entered again.
- ``libs=None`` selects the libraries among the default targets, or every library when none is.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from leanworker.errors import InvalidModuleName, LakeDiscoveryError
from leanworker.planner.headers import ImportHeader, parse_import_header
from leanworker.planner.lakefile import (
    Glob,
    LakeDiagnostic,
    LakefileConfig,
    LibConfig,
    read_toml_lakefile,
)
from leanworker.planner.lakefile_lean import read_lean_lakefile, target_name
from leanworker.planner.names import join_components, split_module_name

LAKEFILES = ("lakefile.lean", "lakefile.toml")  # in Lake's order of preference
SKIPPED_DIRS = frozenset({"lake-packages"})  # the pre-.lake package directory, at the root


@dataclass(frozen=True)
class LeanLib:
    """A library as discovery resolved it. ``src_dir`` is relative to the Lake root (posix form)."""

    name: str
    roots: tuple[str, ...]
    globs: tuple[Glob, ...]
    src_dir: str
    default: bool
    readable: bool = True  # False: the lakefile's roots, globs or srcDir could not be read (see diagnostics)


@dataclass(frozen=True)
class ModuleDescriptor:
    """One module: its name, source file, library, source root and imported modules (in header order)."""

    name: str
    path: Path
    lib: str
    source_root: Path
    imports: tuple[str, ...]
    header: ImportHeader = field(compare=False, repr=False, default=ImportHeader(()))


@dataclass(frozen=True)
class ModuleSetFingerprint:
    """Facts that change when the source set changes; it does not decide whether a downstream cache is fresh."""

    toolchain: str | None
    lakefile_sha256: str
    manifest_sha256: str | None
    source_count: int
    max_mtime_ns: int

    @property
    def digest(self) -> str:
        """One SHA-256 over every field."""
        text = "\0".join(str(v) for v in (self.toolchain, self.lakefile_sha256, self.manifest_sha256,
                                          self.source_count, self.max_mtime_ns))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class LakeProject:
    root: Path
    lakefile: Path
    package: str | None
    libs: tuple[LeanLib, ...]
    modules: tuple[ModuleDescriptor, ...]
    fingerprint: ModuleSetFingerprint
    diagnostics: tuple[LakeDiagnostic, ...]

    @property
    def ok(self) -> bool:
        """True when discovery has no error diagnostic: every part of the lakefile was read."""
        return not any(d.severity == "error" for d in self.diagnostics)

    def module(self, name: str) -> ModuleDescriptor:
        for module in self.modules:
            if module.name == name:
                return module
        raise KeyError(name)


def find_lake_root(path: str | os.PathLike[str]) -> Path:
    """The directory itself or its nearest ancestor with a lakefile."""
    start = Path(path).resolve()
    if not start.exists():
        raise LakeDiscoveryError(f"{path}: no such file or directory")
    here = start if start.is_dir() else start.parent
    for candidate in (here, *here.parents):
        if any((candidate / name).is_file() for name in LAKEFILES):
            return candidate
    raise LakeDiscoveryError(f"no lakefile.lean or lakefile.toml in {here} or any directory above it")


def discover_lake_project(path: str | os.PathLike[str], libs: Iterable[str] | None = None) -> LakeProject:
    """Discover the Lake project at or above ``path``; see the module docstring for the rules."""
    root = find_lake_root(path)
    diagnostics: list[LakeDiagnostic] = []
    present = [name for name in LAKEFILES if (root / name).is_file()]
    lakefile = root / present[0]
    if len(present) == 2:
        diagnostics.append(LakeDiagnostic("info", "lakefile.both", "lakefile.lean and lakefile.toml are both "
                                          "present; using lakefile.lean, as Lake does", str(lakefile)))
    try:
        lakefile_bytes = lakefile.read_bytes()
        text = lakefile_bytes.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LakeDiscoveryError(f"cannot read {lakefile}: {exc}") from None
    reader = read_lean_lakefile if lakefile.suffix == ".lean" else read_toml_lakefile
    config = reader(text, str(lakefile))
    diagnostics += config.diagnostics
    selected = _select_libs(config, libs)
    package_src = Path(config.src_dir)
    resolved: list[LeanLib] = []
    modules: dict[str, ModuleDescriptor] = {}
    walker = _Walker(root, diagnostics)
    for lib_config in selected:
        lib = _resolve_lib(lib_config, package_src, diagnostics)
        resolved.append(lib)
        if not lib_config.readable:
            continue
        source_root = (root / lib.src_dir).resolve()
        if not source_root.is_dir():
            diagnostics.append(LakeDiagnostic("error", "lib.missing_src_dir",
                                              f"lean_lib {lib.name}: source directory {lib.src_dir} does not exist",
                                              str(lakefile)))
            continue
        for name, file in _library_modules(lib, source_root, walker, diagnostics):
            if name in modules:
                if modules[name].lib != lib.name:
                    diagnostics.append(LakeDiagnostic("warning", "module.duplicate",
                                                      f"{name} belongs to {modules[name].lib} and {lib.name}; "
                                                      f"kept in {modules[name].lib}", str(file)))
                continue
            header = _read_header(file, diagnostics)
            modules[name] = ModuleDescriptor(name, file, lib.name, source_root, header.modules, header)
    ordered = tuple(sorted(modules.values(), key=lambda m: split_module_name(m.name)))
    fingerprint = _fingerprint(root, lakefile_bytes, ordered)
    return LakeProject(root, lakefile, config.package, tuple(resolved), ordered, fingerprint, tuple(diagnostics))


def _select_libs(config: LakefileConfig, libs: Iterable[str] | None) -> list[LibConfig]:
    by_name = {lib.name: lib for lib in config.libs}
    if libs is not None:
        chosen = []
        for requested in libs:
            lib = by_name.get(target_name(requested))
            if lib is None:
                known = ", ".join(sorted(by_name)) or "none"
                raise LakeDiscoveryError(f"no lean_lib named {requested!r} (libraries: {known})")
            chosen.append(lib)
        return chosen
    defaults = {target_name(t) for t in config.default_targets}
    for lib in config.libs:
        lib.default = lib.default or lib.name in defaults
    chosen = [lib for lib in config.libs if lib.default]
    return chosen or list(config.libs)


def _resolve_lib(lib: LibConfig, package_src: Path, diagnostics: list[LakeDiagnostic]) -> LeanLib:
    roots = lib.roots if lib.roots is not None else (lib.name,)
    globs = lib.globs if lib.globs is not None else tuple(Glob("one", r) for r in roots)
    src_dir = (package_src / lib.src_dir).as_posix()
    return LeanLib(lib.name, tuple(roots), tuple(globs), os.path.normpath(src_dir), lib.default, lib.readable)


class _Walker:
    """Lists ``.lean`` files below a directory by Lake's skipping rules, once per directory."""

    def __init__(self, lake_root: Path, diagnostics: list[LakeDiagnostic]) -> None:
        self.lake_root = lake_root
        self.diagnostics = diagnostics
        self._cache: dict[Path, list[tuple[tuple[str, ...], Path]]] = {}

    def lean_files(self, directory: Path) -> list[tuple[tuple[str, ...], Path]]:
        """(path components relative to ``directory`` without ``.lean``, file) for every module file below."""
        cached = self._cache.get(directory)
        if cached is None:
            cached = self._cache[directory] = list(self._walk(directory, (), {directory.resolve()}))
        return cached

    def _walk(self, directory: Path, prefix: tuple[str, ...], seen: set[Path]) -> Iterator[
            tuple[tuple[str, ...], Path]]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            self.diagnostics.append(LakeDiagnostic("warning", "walk.unreadable", f"cannot list {directory}: {exc}"))
            return
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                continue
            if is_dir:
                if name in SKIPPED_DIRS and Path(entry.path).parent == self.lake_root:
                    continue
                if name == ".lake":
                    continue
                child = Path(entry.path)
                try:
                    if any((child / lakefile).is_file() for lakefile in LAKEFILES):
                        continue  # a nested Lake project is another project
                    real = child.resolve()
                except OSError as exc:  # a directory that may not be entered: its modules cannot be listed
                    self.diagnostics.append(LakeDiagnostic("warning", "walk.unreadable",
                                                           f"cannot list {child}: {exc.strerror or exc}"))
                    continue
                if real in seen:
                    continue  # a symlink back into the tree
                yield from self._walk(child, (*prefix, name), seen | {real})
            elif name.endswith(".lean") and len(name) > 5:
                yield (*prefix, name[:-5]), Path(entry.path)


def _library_modules(lib: LeanLib, source_root: Path, walker: _Walker,
                     diagnostics: list[LakeDiagnostic]) -> Iterator[tuple[str, Path]]:
    """(module name, file) of every module of ``lib``, by the rules in the module docstring."""
    globs = lib.globs
    prefixes: set[tuple[str, ...]] = set()  # modules whose submodules belong to the library
    exact: set[tuple[str, ...]] = set()
    for glob in globs:
        components = glob.components
        if glob.kind in ("one", "andSubmodules"):
            exact.add(components)
        if glob.kind in ("submodules", "andSubmodules"):
            prefixes.add(components)
    for root in lib.roots:
        components = split_module_name(root)
        if any(glob.matches(components) for glob in globs):
            exact.add(components)
            prefixes.add(components)
    found: dict[tuple[str, ...], Path] = {}
    for components in exact:
        file = source_root.joinpath(*components[:-1], components[-1] + ".lean")
        if file.is_file():
            found[components] = file
    for prefix in prefixes:
        directory = source_root.joinpath(*prefix)
        if directory.is_dir() and not any((directory / lakefile).is_file() for lakefile in LAKEFILES):
            for relative, file in walker.lean_files(directory):
                found.setdefault((*prefix, *relative), file)
    for components, file in found.items():
        try:
            yield join_components(components), file
        except InvalidModuleName as exc:
            diagnostics.append(LakeDiagnostic("warning", "module.invalid_name", str(exc), str(file)))


def _read_header(file: Path, diagnostics: list[LakeDiagnostic]) -> ImportHeader:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        diagnostics.append(LakeDiagnostic("warning", "module.unreadable", f"cannot read: {exc}", str(file)))
        return ImportHeader(())
    header = parse_import_header(text)
    for problem in header.problems:
        diagnostics.append(LakeDiagnostic("warning", "header.unreadable", problem, str(file)))
    return header


def _sha256_or_none(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _fingerprint(root: Path, lakefile_bytes: bytes, modules: tuple[ModuleDescriptor, ...]) -> ModuleSetFingerprint:
    try:
        toolchain: str | None = (root / "lean-toolchain").read_text(encoding="utf-8").strip()
    except OSError:
        toolchain = None
    max_mtime = 0
    for module in modules:
        try:
            max_mtime = max(max_mtime, module.path.stat().st_mtime_ns)
        except OSError:
            pass
    return ModuleSetFingerprint(toolchain, hashlib.sha256(lakefile_bytes).hexdigest(),
                                _sha256_or_none(root / "lake-manifest.json"), len(modules), max_mtime)
