"""``python -m leanworker.host``: serve one capability over the leanworker protocol on stdin/stdout."""

import os
import sys

from leanworker.host.serve import main

if __name__ == "__main__":
    code = main(sys.argv[1:])
    # Skip interpreter teardown: daemon threads may still hold the protocol pipe.
    os._exit(code)
