"""Running a plan on Ray: ``RayRunner`` (docs/distributed.md). Needs the extra: ``pip install 'leanworker[ray]'``.

Importing :mod:`leanworker` never imports Ray; importing this package does.
"""

from __future__ import annotations

try:
    import ray as _ray  # noqa: F401
except ImportError as exc:  # pragma: no cover - only without the extra
    raise ImportError("leanworker.scaleout needs Ray: pip install 'leanworker[ray]'") from exc

from leanworker.scaleout.runner import NotConnected, RayRunner

__all__ = ["NotConnected", "RayRunner"]
