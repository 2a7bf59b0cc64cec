"""``leanworker serve``: a proof-checking service over warm Lean REPLs (extra ``leanworker[serve]``; docs/serve.md).

Kimina-compatible endpoints (``POST /api/check``, ``POST /verify``, ``GET /health``) so that the Kimina Lean Server's
clients work unchanged, and a native streaming one (``POST /v1/check``). The app is written against
:class:`Checker` (check items of one import header, results as they complete); :func:`create_app` builds it. Names
are loaded lazily, so that ``leanworker serve --help`` works without the extra installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leanworker import _lazy

_EXPORTS = {"Checker": "leanworker.serve.checker", "ServeConfig": "leanworker.serve.config",
            "create_app": "leanworker.serve.app"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = _lazy.lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from leanworker.serve.app import create_app as create_app
    from leanworker.serve.checker import Checker as Checker
    from leanworker.serve.config import ServeConfig as ServeConfig
