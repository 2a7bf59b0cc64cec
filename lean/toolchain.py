"""Lean toolchain discovery: what a workspace asks for, and what this machine has."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LEAN_ENV = "LEANWORKER_LEAN"
LAKEFILES = ("lakefile.lean", "lakefile.toml")


@dataclass(frozen=True)
class LeanToolchain:
    """``requested``: the workspace's ``lean-toolchain`` line (None without one); ``lean``/``lake``: the programs
    found (None when not found); ``version``: ``lean --version`` (None when lean was not found or did not answer)."""

    requested: str | None
    lean: str | None
    lake: str | None
    version: str | None

    @property
    def fingerprint(self) -> str:
        """What the planner puts in ``SessionKey.toolchain``: the request and the version found."""
        import hashlib  # here, not at the top: a worker loads this module at start and rarely asks

        text = json.dumps({"requested": self.requested, "version": self.version}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        """One line a person can act on, saying plainly what was not found."""
        parts = [f"requested {self.requested}" if self.requested else "no lean-toolchain file"]
        parts.append(f"lean {self.version or self.lean}" if self.lean else "lean not found")
        parts.append(f"lake {self.lake}" if self.lake else "lake not found")
        return "; ".join(parts)


def _search_dirs() -> list[str]:
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    elan_home = os.environ.get("ELAN_HOME")
    if elan_home:
        dirs.append(os.path.join(elan_home, "bin"))
    dirs.append(os.path.join(os.path.expanduser("~"), ".elan", "bin"))
    return dirs


def _find(program: str) -> str | None:
    return shutil.which(program, path=os.pathsep.join(_search_dirs()))


def find_toolchain(workspace: str | os.PathLike[str] | None = None) -> LeanToolchain:
    """Read ``<workspace>/lean-toolchain``; look for ``lean`` and ``lake`` on PATH, in ``$ELAN_HOME/bin`` and in
    ``~/.elan/bin``; run ``lean --version`` when lean is found."""
    requested = None
    if workspace is not None:
        path = Path(workspace) / "lean-toolchain"
        if path.is_file():
            requested = path.read_text(encoding="utf-8").strip() or None
    lean, lake = _find("lean"), _find("lake")
    version = None
    if lean is not None:
        try:
            done = subprocess.run([lean, "--version"], capture_output=True, text=True, timeout=30,
                                  cwd=os.fspath(workspace) if workspace is not None else None)
            version = done.stdout.strip() or None if done.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            version = None
    return LeanToolchain(requested, lean, lake, version)


def find_lean(option: object, workspace: str | os.PathLike[str] | None) -> list[str] | None:
    """The ``lean`` command line for checking files: the session option ``lean`` (a command line), else
    ``$LEANWORKER_LEAN``, else ``lake env lean`` when the workspace has a lakefile and ``lake`` is found, else
    ``lean`` found on PATH, in ``$ELAN_HOME/bin`` or in ``~/.elan/bin``. None when none of these exists."""
    if isinstance(option, str) and option.strip():
        return shlex.split(option)
    from_env = os.environ.get(LEAN_ENV, "").strip()
    if from_env:
        return shlex.split(from_env)
    lake = _find("lake")
    if workspace is not None and lake is not None and any((Path(workspace) / name).is_file() for name in LAKEFILES):
        return [lake, "env", "lean"]
    lean = _find("lean")
    return [lean] if lean is not None else None
