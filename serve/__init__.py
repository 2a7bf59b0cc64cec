"""``leanworker serve``: a proof-checking service over warm Lean REPLs (extra ``leanworker[serve]``; docs/serve.md).

Kimina-compatible endpoints (``POST /api/check``, ``POST /verify``, ``GET /health``) so that the Kimina Lean Server's
clients work unchanged, and a native streaming one (``POST /v1/check``). The app is written against
:class:`Checker` (check items of one import header, results as they complete); :func:`create_app` builds it.
"""

from leanworker.serve.app import create_app
from leanworker.serve.checker import Checker
from leanworker.serve.config import ServeConfig

__all__ = ["Checker", "ServeConfig", "create_app"]
