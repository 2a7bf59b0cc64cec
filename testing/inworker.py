"""The worker side of the fault kit: a capability that serves another capability's commands unchanged and fires the
fault a request (or its session open) was sent with, for real, in this worker process (what each fault does, and
the ``ctx`` that fires it after the k-th row: firing.py).

A key a :class:`~leanworker.testing.FaultPlan` owns opens this capability instead of its own (the session option
``leanworker.wrap``); at its session open it loads the key's capability, takes its name, version, commands and
doctor checks, and opens its session with the key's own options. A request without a fault directive runs the
command exactly as it would run unwrapped. A request with one runs it with a ``ctx`` that fires the fault before the
command starts (``after_rows`` 0), just after its k-th row, or as it returns if it emits fewer rows. A session open
with a ``session_fail`` directive fails with ``CommandError("injected_session_fail")``.
"""

from __future__ import annotations

import json
from typing import Any

from leanworker.errors import CommandError
from leanworker.host.capability import (
    Capability,
    CommandFunction,
    CommandInfo,
    Context,
    SessionSpec,
    load_capability,
)
from leanworker.testing.firing import FaultingContext, announce, fire
from leanworker.testing.wire import OPEN_OPTION, OPTION_PREFIX, Directive, unwrap


def serve_with_faults(function: CommandFunction) -> CommandFunction:
    """``function`` as a command of the wrapper: unchanged for a request without a fault directive."""

    def command(ctx: Context, request: Any) -> Any:
        directive, request = unwrap(request)
        if directive is None:
            return function(ctx, request)
        faulting = FaultingContext(ctx, directive)
        if faulting.fired:  # after_rows 0: before the command starts
            fire(directive, ctx)
        result = function(faulting, request)
        if not faulting.fired:  # the command emitted fewer rows than after_rows
            faulting.fire()
        return result

    command.__doc__ = function.__doc__
    return command


class FaultingCapability(Capability):
    """The wrapper capability (see the module docstring). One per worker process: its session open turns it into
    the key's capability."""

    def open(self, spec: SessionSpec) -> Any:
        options = {name: value for name, value in spec.options.items() if not name.startswith(OPTION_PREFIX)}
        text = spec.options.get(OPEN_OPTION)
        if isinstance(text, str):
            directive: Directive = json.loads(text)
            announce(directive, f"at session open {directive.get('nth')}")
            message = str(directive.get("params", {}).get("message", "injected session open failure"))
            raise CommandError("injected_session_fail", message)
        inner = load_capability(spec.capability)
        self.name, self.version, self.description = inner.name, inner.version, inner.description
        self.checks = dict(inner.checks)
        self.commands = {name: CommandInfo(name, serve_with_faults(info.function), info.description, info.streams)
                         for name, info in inner.commands.items()}
        return inner.open(SessionSpec(spec.capability, spec.workspace, spec.imports, options))


capability = FaultingCapability("leanworker.testing", version="0.1.0",
                                description="serves a capability with injected faults (leanworker.testing)")
