"""The capability API: what downstream code writes to be served by a worker process."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from leanworker.errors import UsageError
from leanworker.host.frozen_record import FRESH_DICT, FrozenRecord
from leanworker.protocol import messages


WRAP_OPTION = "leanworker.wrap"
"""A session option naming (``"module:attribute"``) a capability to open *instead of* the key's own, which it
wraps: it receives the same :class:`SessionSpec` (``spec.capability`` is still the key's capability) and serves
that capability's commands its own way. The host takes the option out of the spec. ``leanworker.testing`` uses it
to fire faults inside a real worker process."""


class RequestCancelled(BaseException):
    """Raised inside a command when its request was cancelled.

    A ``BaseException`` (like ``trio.Cancelled``) so that ``except Exception`` in capability code does not swallow
    it. Let it propagate: the host turns it into outcome ``cancelled`` and the worker stays warm.
    """


class SessionSpec(FrozenRecord):
    """What a session open receives: the workspace, the ordered imports and the session options."""

    __match_args__ = ("capability", "workspace", "imports", "options")
    capability: str
    workspace: str | None
    imports: tuple[str, ...]
    options: dict[str, Any]

    def __init__(self, capability: str, workspace: str | None = None, imports: tuple[str, ...] = (),
                 options: dict[str, Any] = FRESH_DICT) -> None:
        self._fill(capability, workspace, imports, {} if options is FRESH_DICT else options)


class Context(Protocol):
    """What a command receives as ``ctx``."""

    @property
    def session(self) -> Any:
        """What the capability's session function returned."""

    @property
    def request_id(self) -> int: ...

    @property
    def max_frame_bytes(self) -> int:
        """The negotiated frame cap: one row (or the result) must encode within it."""

    @property
    def cancelled(self) -> bool:
        """True once the parent asked to cancel this request."""

    def check_cancelled(self) -> None:
        """Raise :class:`RequestCancelled` if the parent asked to cancel this request."""

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake and raise :class:`RequestCancelled` as soon as the request is cancelled."""

    def row(self, stream: str, payload: Any) -> None:
        """Emit one row on ``stream`` (also a cancellation point)."""

    def rows(self, stream: str, payloads: Iterable[Any]) -> None:
        """Emit several rows on ``stream`` (a cancellation point per row)."""

    def diagnostic(self, severity: str, code: str, message: str, data: Any = None) -> None:
        """Emit a diagnostic (severity: "info", "warning" or "error") on the diagnostics channel."""

    def progress(self, phase: str, current: float, total: float | None = None) -> None:
        """Report progress of ``phase`` on the progress channel."""


CommandFunction = Callable[[Context, Any], Any]
SessionFunction = Callable[[SessionSpec], Any]
CheckFunction = Callable[[Any], tuple[str, str]]
F = TypeVar("F", bound=Callable[..., Any])


class CommandInfo(FrozenRecord):
    """A registered command and what its author said about it."""

    __match_args__ = ("name", "function", "description", "streams")
    name: str
    function: CommandFunction
    description: str
    streams: tuple[str, ...]

    def __init__(self, name: str, function: CommandFunction, description: str = "",
                 streams: tuple[str, ...] = ()) -> None:
        self._fill(name, function, description, streams)


class Capability:
    """A named set of commands a worker process serves, plus the session open that precedes them.

    ``capability = Capability("my-tool", version="1.0.0")``, then ``@capability.session`` and
    ``@capability.command("name")``. A worker is pointed at it by ``"module:attribute"``.
    """

    def __init__(self, name: str, version: str = "0.0.0", description: str = "") -> None:
        self.name = name
        self.version = version
        self.description = description
        self.commands: dict[str, CommandInfo] = {}
        self.checks: dict[str, CheckFunction] = {}
        self._session: SessionFunction = _no_session

    def session(self, function: SessionFunction) -> SessionFunction:
        """Register the session open: called once per worker process with a :class:`SessionSpec`."""
        self._session = function
        return function

    def command(self, name: str, *, description: str = "", streams: Iterable[str] = ()) -> Callable[[F], F]:
        """Register a command ``function(ctx, request) -> result``."""
        if name.startswith(messages.BUILTIN_PREFIX):
            raise ValueError(f"command names starting with {messages.BUILTIN_PREFIX!r} are reserved for built-ins")

        def register(function: F) -> F:
            if name in self.commands:
                raise ValueError(f"command {name!r} is already registered on {self.name!r}")
            self.commands[name] = CommandInfo(name, function, description or (function.__doc__ or "").strip(),
                                              tuple(streams))
            return function

        return register

    def check(self, name: str) -> Callable[[F], F]:
        """Register a doctor check ``function(session) -> (status, message)``; status is pass, warning or error."""

        def register(function: F) -> F:
            self.checks[name] = function
            return function

        return register

    def open(self, spec: SessionSpec) -> Any:
        """Open a session (the expensive step). Called by the host, not by users."""
        return self._session(spec)


def _no_session(spec: SessionSpec) -> None:
    return None


class CapabilityLoadError(UsageError):
    """A ``"module:attribute"`` reference does not name a :class:`Capability`."""


def load_capability(reference: str) -> Capability:
    """Import ``"package.module:attribute"`` and return the :class:`Capability` it names."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise CapabilityLoadError(f"capability reference {reference!r} is not of the form 'module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise CapabilityLoadError(_import_failure(module_name, exc)) from None
    try:
        value = getattr(module, attribute)
    except AttributeError:
        raise CapabilityLoadError(f"module {module_name!r} has no attribute {attribute!r} (looked in "
                                  f"{getattr(module, '__file__', None) or module_name}){_held(module)}") from None
    except Exception as exc:  # a package that loads its names on first use (PEP 562, as leanworker.lean does)
        raise CapabilityLoadError(_import_failure(f"{module_name}:{attribute}", exc)) from None
    if not isinstance(value, Capability):
        raise CapabilityLoadError(f"{reference!r} is {type(value).__name__}, not a leanworker.host.Capability")
    return value


def _held(module: Any) -> str:
    """The capabilities ``module`` holds at its top level, as references to use instead ("" when none does: a
    package that loads its names on first use shows none)."""
    names = sorted(name for name, value in vars(module).items() if isinstance(value, Capability))
    if not names:
        return ""
    return "; its capabilities: " + ", ".join(f"{module.__name__}:{name}" for name in names)


def _import_failure(module_name: str, exc: Exception) -> str:
    """Why ``module_name`` did not import: not found (where the worker looked, what to do), or found but raised
    (where, and what it raised)."""
    import os
    import sys
    import traceback

    missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    if missing is not None and (module_name == missing or module_name.startswith(missing + ".")):
        looked = [entry or os.getcwd() for entry in sys.path]
        shown = [entry for entry in dict.fromkeys(looked) if os.path.exists(entry)]
        return (f"cannot import {module_name!r}: no module named {missing!r}. The worker (working directory "
                f"{os.getcwd()}) looked in: {', '.join(shown[:8])}{' ...' if len(shown) > 8 else ''}. Put it in the "
                "directory leanworker (or your script) runs from, which leanworker passes on to its workers, install "
                "it into the environment, or set PYTHONPATH")
    if isinstance(exc, SyntaxError):  # raised by the compiler: no frame of the user's file, the place is in exc
        return (f"{module_name!r} was found but does not compile: {type(exc).__name__}: {exc.msg} "
                f"({exc.filename}, line {exc.lineno})")
    frames = traceback.extract_tb(exc.__traceback__)
    where = next((f for f in reversed(frames) if "importlib" not in f.filename and f.filename != __file__), None)
    at = f" ({where.filename}, line {where.lineno})" if where is not None else ""
    return f"{module_name!r} was found but raised while importing: {type(exc).__name__}: {exc}{at}"

