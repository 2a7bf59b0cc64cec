"""``python -m leanworker.serve``: the same as ``leanworker serve``."""

import sys

from leanworker.serve.command import main

sys.exit(main())
