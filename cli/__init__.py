"""The ``leanworker`` command line: probe, discover, plan, run, check, doctor, trace render.

Every command takes ``--json`` and ends with one of four exit statuses (README, Exit statuses): 0 done, 1 some work
could not be done, 2 bad usage or a set-up that cannot work (one line, before any work), 130 interrupted.
"""

from leanworker.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
