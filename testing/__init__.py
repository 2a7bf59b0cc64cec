"""Fault injection for tools built on leanworker: wrap a capability with a :class:`FaultPlan` and its faults fire
inside real worker processes (they really exit, hang, grow, write garbage, fail their session open, lose their Ray
node), decided in the parent at admission and recorded as sent. docs/testing.md is the guide; the pytest plugin
(``leanworker.testing.plugin``, registered by entry point) adds the fixtures ``lw_pool`` and ``lw_faults`` and the
marker ``lw_chaos``.

``repr(plan)`` is Python that rebuilds the plan from ``Fault``, ``FaultPlan`` and ``SessionKey`` (all named here;
``FaultPlan.from_repr`` reads it back without evaluating it). Names are loaded lazily: a worker process loads the
fault wrapper (``inworker``, ``firing``) without the parent's side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leanworker import _lazy

_EXPORTS = {
    "Fault": "leanworker.testing.fault",
    "KINDS": "leanworker.testing.fault",
    "FaultPlan": "leanworker.testing.plan",
    "FiredFault": "leanworker.testing.fired",
    "SessionKey": "leanworker.actors.core.config",
}

if not TYPE_CHECKING:  # hidden from type checkers: they read the twin below (a __getattr__ would type any name Any)
    __all__ = sorted(_EXPORTS)
    __getattr__, __dir__ = _lazy.lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from leanworker.actors.core.config import SessionKey as SessionKey
    from leanworker.testing.fault import KINDS as KINDS
    from leanworker.testing.fault import Fault as Fault
    from leanworker.testing.fired import FiredFault as FiredFault
    from leanworker.testing.plan import FaultPlan as FaultPlan
