"""The ``leanworker`` command line: probe, discover, plan, run, check, doctor, trace render.

Every command takes ``--json`` and ends with one of four exit statuses (README, Exit statuses): 0 done, 1 some work
could not be done, 2 bad usage or a set-up that cannot work (one line, before any work), 130 interrupted.
"""

import os
import signal
import sys

from leanworker.cli._interrupt import interrupted_while_starting


def _started_as_the_command() -> bool:
    """True in the ``leanworker`` console script and ``python -m leanworker``; False when a program imports us."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return os.path.basename(sys.argv[0] if sys.argv else "") == "leanworker" or (
        spec is not None and spec.name == "leanworker.__main__")


if _started_as_the_command() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, interrupted_while_starting)

from leanworker.cli._main import build_parser, main  # noqa: E402 - after the handler: loading takes a while

__all__ = ["build_parser", "main"]
