"""How a fault decided in the parent reaches the worker: the names both sides use, and the request envelope.

- A key a plan owns carries the session option ``leanworker.wrap`` (host/capability.py) naming :data:`WRAPPER`, so
  its worker opens the wrapper capability (inworker.py), which serves the key's own capability; and
  :data:`PLAN_OPTION`, the owning plan's token (a plan in another process, or none, leaves it alone).
- A session open that must fail carries :data:`OPEN_OPTION` (the directive, as JSON text) in its ``open`` frame.
- A request that must fail is sent as ``{ENVELOPE: directive, "request": the caller's request}``; every other
  request is sent as the caller wrote it. ``leanworker.*`` names are reserved, so no request of a capability's own
  has the envelope's field.

A directive is plain data: ``{"kind", "after_rows", "params", "nth", "record"}`` (``record``: the parent's index
of the decision in ``plan.fired()``, so the parent can add the worker's pid when it learns it).
"""

from __future__ import annotations

from typing import Any

WRAPPER = "leanworker.testing.inworker:capability"
PLAN_OPTION = "leanworker.faults.plan"  # the token of the plan that owns a key
RUN_OPTION = "leanworker.faults.run"  # a key of a plan run: its requests' faults are decided by the run
OPEN_OPTION = "leanworker.faults.open"  # a session open's fault directive (JSON text)
OPTION_PREFIX = "leanworker.faults."
ENVELOPE = "leanworker.fault"

Directive = dict[str, Any]


def envelope(directive: Directive, request: Any) -> dict[str, Any]:
    """The request to send for ``request`` with a fault: the directive beside the caller's request, unchanged."""
    return {ENVELOPE: directive, "request": request}


def unwrap(request: Any) -> tuple[Directive | None, Any]:
    """The fault directive a request carries (None when it carries none) and the caller's request."""
    if type(request) is dict and ENVELOPE in request and set(request) == {ENVELOPE, "request"}:
        directive = request[ENVELOPE]
        if type(directive) is dict:
            return directive, request["request"]
    return None, request
