"""The Lean layer: toolchain discovery and the ``"leanworker.lean:repl"`` capability (docs/lean.md).

Nothing else in leanworker imports this package. Built to the REPL's documented protocol and tested against a
simulator; no Lean toolchain was available to test against.
"""

from leanworker.lean.capability import repl
from leanworker.lean.toolchain import LeanToolchain, find_toolchain

__all__ = ["LeanToolchain", "find_toolchain", "repl"]
