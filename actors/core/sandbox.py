"""The sandbox of a worker process: bubblewrap's command line, decided from plain facts (no I/O in the builder).

A sandboxed worker (and everything it starts, its REPL included) sees the file system read-only and only in part:
the interpreter and its libraries, the virtual environment, the directories its capability's modules load from, the
workspace, a few system directories (``/usr``, ``/lib*``, ``/bin``, ``/sbin`` and the parts of ``/etc`` programs
need), plus a private writable ``/tmp`` (a size-bounded tmpfs that vanishes with it, also ``HOME``). Paths given as
*hidden* (the service's key file and results cache, whatever directory holds them) are masked even inside a bound
directory. It has no network (its own empty network namespace), its own PID namespace (so nothing it starts outlives
it: when the worker exits, the namespace's init exits and the kernel kills the rest), its own IPC and UTS
namespaces, an unprivileged user (uid and gid 65534 in a user namespace) with every capability dropped, and it dies
with its parent. The process count and memory are bounded by a cgroup where one is writable
(:mod:`leanworker.actors.core.ceilings`), else the process count by ``RLIMIT_NPROC`` (``prlimit``; it binds only
a user that is not root outside the namespace). Never ``RLIMIT_AS`` (under ~6 GiB it breaks Lean) and never
``RLIMIT_CPU`` (it adds up over a warm REPL's life; deadlines bound the CPU a request uses).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import site
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from leanworker.actors.core.ceilings import Ceilings, joining, prepare_ceilings
from leanworker.actors.core.config import WorkerConfig

SANDBOX_USER = 65534  # "nobody" in the user namespace
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf", "localtime",
               "ssl", "ca-certificates", "alternatives", "os-release", "mime.types")
SCRATCH = "/tmp"


@dataclass(frozen=True)
class SandboxSpec:
    """What one sandboxed worker may see and do. Paths are absolute; each read-only path is bound where it is."""

    bwrap: str
    argv: tuple[str, ...]
    read_only: tuple[str, ...]
    hidden: tuple[str, ...] = ()  # masked where a bound path shows them; a directory ends with "/"
    cwd: str | None = None
    scratch_mib: int = 256
    max_processes: int | None = None  # RLIMIT_NPROC inside (when no cgroup bounds the count)
    prlimit: str | None = None  # the prlimit program, needed for max_processes


def minimal_paths(paths: Iterable[str]) -> list[str]:
    """``paths`` without duplicates and without any path inside another one, in order of depth then name."""
    out: list[str] = []
    for path in sorted({os.path.normpath(p) for p in paths if p}, key=lambda p: (p.count("/"), p)):
        if not any(path == kept or path.startswith(kept.rstrip("/") + "/") for kept in out):
            out.append(path)
    return out


def bwrap_argv(spec: SandboxSpec) -> list[str]:
    """The full command line: ``bwrap`` with its options, then the worker's own argv."""
    argv = [spec.bwrap, "--die-with-parent", "--unshare-user", "--uid", str(SANDBOX_USER), "--gid",
            str(SANDBOX_USER), "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--cap-drop", "ALL", "--hostname", "leanworker-sandbox"]
    # the scratch first, so that a bound path under /tmp (a workspace there, say) is mounted over it, not hidden
    argv += ["--size", str(spec.scratch_mib * 2**20), "--tmpfs", SCRATCH, "--proc", "/proc", "--dev", "/dev"]
    bound = minimal_paths(spec.read_only)
    for path in bound:
        argv += ["--ro-bind", path, path]
    for path in sorted(set(spec.hidden)):  # after the binds, so that a mask covers what a bind showed
        if any(path.rstrip("/") == b or path.startswith(b.rstrip("/") + "/") for b in bound):
            directory = path.rstrip("/")
            argv += (["--size", "4096", "--tmpfs", directory, "--remount-ro", directory] if path.endswith("/")
                     else ["--ro-bind", "/dev/null", path])
    argv += ["--remount-ro", "/"]  # bwrap's own root (a tmpfs) too: the scratch is the only place to write
    argv += ["--setenv", "HOME", SCRATCH, "--setenv", "TMPDIR", SCRATCH]
    if spec.cwd is not None:
        argv += ["--chdir", spec.cwd]
    argv.append("--")
    if spec.max_processes is not None and spec.prlimit is not None:
        argv += [spec.prlimit, f"--nproc={spec.max_processes}:{spec.max_processes}", "--"]
    return argv + list(spec.argv)


def interpreter_paths(executable: str = sys.executable) -> list[str]:
    """What a Python worker needs to start: its prefixes (stdlib, venv) and the real interpreter's directory."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(executable)), os.path.dirname(os.path.abspath(executable))}
    return sorted(p for p in paths if p and os.path.isabs(p))


def module_paths(capability: str | None = None, environ: Mapping[str, str] = os.environ) -> list[str]:
    """Where a worker finds modules: the site directories on ``sys.path``, the ``PYTHONPATH`` it inherits,
    leanworker itself, and the capability's top-level module itself (its package directory or its file: not the
    directory that holds it, which may hold anything).

    Other ``sys.path`` entries are not the worker's (its own ``sys.path`` is the interpreter's, ``PYTHONPATH`` and
    the capability's directory), and may be anything: the working directory of ``python -m``, or the parent of a
    checkout that a test runner put there (``/tmp``, a home directory). They are never shown.
    """
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))  # leanworker itself
    sites = {*site.getsitepackages(), site.getusersitepackages()}
    explicit = {p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    paths = {p for p in sys.path if p in sites or p.endswith(("site-packages", "dist-packages", ".zip"))}
    paths |= {os.path.abspath(p) for p in explicit} | {here}
    paths = {p for p in paths if os.path.isabs(p) and p != "/"}
    top = (capability or "").partition(":")[0].split(".")[0]
    try:
        spec = importlib.util.find_spec(top) if top else None
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        paths.update(p for p in (spec.submodule_search_locations or [spec.origin or ""]) if os.path.isabs(p))
    return sorted(paths)


def system_paths(exists: Iterable[str] | None = None) -> list[str]:
    """The system directories and ``/etc`` entries that exist here."""
    candidates = [*SYSTEM_DIRS, *(f"/etc/{name}" for name in ETC_ENTRIES)]
    present = set(exists) if exists is not None else {p for p in candidates if os.path.lexists(p)}
    return [p for p in candidates if p in present]


def find_bwrap() -> str | None:
    """The bubblewrap program on PATH, or None."""
    return shutil.which("bwrap")


class SandboxUnavailable(Exception):
    """``sandbox="bwrap"`` was asked for and bubblewrap is not installed here."""


@dataclass
class Sandboxed:
    """A worker's command line in its sandbox, and the ceilings to remove once it is reaped."""

    argv: list[str]
    ceilings: Ceilings


def sandboxed(argv: Sequence[str], workspace: str | None, config: WorkerConfig, capability: str,
              cgroup: Path | None) -> Sandboxed | None:
    """The sandbox ``config`` asks for (None when it asks for none, or for "auto" where bubblewrap is absent).

    Raises :class:`SandboxUnavailable` for "bwrap" without bubblewrap. ``cgroup`` is the worker's own cgroup v2, if
    any: the sandboxed worker joins it (and its ceilings' groups) before it starts anything.
    """
    if config.sandbox is None:
        return None
    bwrap = find_bwrap()
    if bwrap is None:
        if config.sandbox == "bwrap":
            raise SandboxUnavailable("sandbox='bwrap' but bubblewrap (bwrap) is not installed here (Debian: apt-get "
                                     "install bubblewrap)")
        return None
    program = shutil.which(argv[0]) if argv and not os.path.isabs(argv[0]) else (argv[0] if argv else None)
    program_dir = [os.path.dirname(os.path.realpath(program))] if program else []
    read_only = [*system_paths(), *interpreter_paths(), *module_paths(capability), *program_dir,
                 *config.sandbox_paths, *([workspace] if workspace else [])]
    ceilings = prepare_ceilings(cgroup, config.sandbox_max_processes, config.sandbox_memory_mib)
    nproc = config.sandbox_max_processes if ceilings.processes is None else None
    prlimit = shutil.which("prlimit") if nproc is not None else None
    if nproc is not None and prlimit is not None:
        ceilings.processes = "RLIMIT_NPROC (binds only a user that is not root outside the sandbox)"
    spec = SandboxSpec(bwrap, tuple(argv), tuple(os.path.abspath(p) for p in read_only if os.path.exists(p)),
                       _existing(config.sandbox_hidden), workspace, max_processes=nproc, prlimit=prlimit)
    groups = ([cgroup] if cgroup is not None else []) + ceilings.groups
    return Sandboxed(joining(groups, bwrap_argv(spec)), ceilings)


def _existing(paths: Iterable[str]) -> tuple[str, ...]:
    """The paths that exist, absolute, directories marked with a trailing "/" (a mask needs something to cover)."""
    out = []
    for path in paths:
        path = os.path.abspath(path)
        if os.path.isdir(path):
            out.append(path.rstrip("/") + "/")
        elif os.path.exists(path):
            out.append(path)
    return tuple(out)
