"""``python -m leanworker``: the command-line interface."""

from leanworker.cli import main

raise SystemExit(main())
