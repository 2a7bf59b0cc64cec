"""A session of the ``leanworker.lean:repl`` capability: one REPL, its header imported once, restarted on death."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path
from typing import Any

from leanworker.errors import CommandError
from leanworker.lean.driver import ReplCrashed, ReplProcess, ReplTimeout

REPL_ENV = "LEANWORKER_REPL"


def find_repl(option: object, workspace: str | None) -> list[str]:
    """The REPL's command line: the ``repl`` session option, else ``$LEANWORKER_REPL``, else the project's built
    REPL under ``lake env``, else ``repl`` on PATH. Raises ``CommandError("repl_not_found")`` naming what was
    searched."""
    if isinstance(option, str) and option.strip():
        return shlex.split(option)
    from_env = os.environ.get(REPL_ENV, "").strip()
    if from_env:
        return shlex.split(from_env)
    built = Path(workspace or ".") / ".lake" / "packages" / "REPL" / ".lake" / "build" / "bin" / "repl"
    lake = shutil.which("lake")
    if built.is_file() and lake:
        return [lake, "env", str(built)]
    on_path = shutil.which("repl")
    if on_path:
        return [on_path]
    raise CommandError("repl_not_found", f"no Lean REPL found: searched the session option 'repl', ${REPL_ENV}, "
                                        f"{built} (with lake {'found' if lake else 'not found'}), and 'repl' on "
                                        "PATH. Build the REPL for the project's toolchain and set SessionKey(options="
                                        "(('repl', 'lake env /path/to/repl'),)) or LEANWORKER_REPL (docs/lean.md)")


def header(imports: tuple[str, ...]) -> str:
    """Exactly one ``import`` line per module, in order."""
    return "\n".join(f"import {module}" for module in imports)


class ReplSession:
    """One REPL process with the session's imports loaded once (its env is the base env of every item)."""

    def __init__(self, argv: list[str], workspace: str | None, imports: tuple[str, ...],
                 import_timeout: float | None) -> None:
        self.argv = argv
        self.workspace = workspace
        self.imports = imports
        self.import_timeout = import_timeout
        self.restarts = 0
        self.headers_imported = 0
        self.base_env: int | None = None
        self.process: ReplProcess | None = None
        self.start()

    def start(self) -> None:
        self.process = ReplProcess(self.argv, cwd=self.workspace)
        self.base_env = None
        if not self.imports:
            return
        try:
            response = self.process.request({"cmd": header(self.imports)}, self.import_timeout)
        except (ReplCrashed, ReplTimeout) as exc:
            raise CommandError("repl_crashed", f"importing {', '.join(self.imports)}: {exc}") from None
        self.headers_imported += 1
        errors = [m for m in response.get("messages", []) if isinstance(m, dict) and m.get("severity") == "error"]
        if "env" not in response or errors:
            detail = response.get("message") or "; ".join(str(m.get("data")) for m in errors)
            raise CommandError("import_failed", f"importing {', '.join(self.imports)} failed: {detail}")
        self.base_env = int(response["env"])

    def ensure_alive(self) -> None:
        """Start a fresh REPL (header re-imported) if the last one died or was killed."""
        if self.process is None or self.process.process.poll() is not None:
            self.restarts += 1
            self.start()

    def request(self, body: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        self.ensure_alive()
        assert self.process is not None
        return self.process.request(body, timeout)

    def close(self) -> None:
        if self.process is not None:
            self.process.close()
