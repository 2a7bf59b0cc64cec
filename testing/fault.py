"""``Fault``: one rule of a fault plan, as plain data: what it matches, and what it does."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from leanworker.actors.core.config import SessionKey
from leanworker.host.capability import WRAP_OPTION
from leanworker.testing.wire import OPTION_PREFIX

# kind -> {param: default}. A rule's params are checked against these; the defaults are applied in the worker.
KINDS: dict[str, dict[str, Any]] = {
    "crash": {"how": "exit", "code": 3},
    "hang": {"ignore_cancel": False},
    "memory": {"mib": 256, "hold": None, "keep_free_mib": None},
    "garbage": {},
    "slow": {"seconds": 1.0},
    "session_fail": {"message": "injected session open failure"},
    "node_lost": {},
}
REQUEST_KINDS = frozenset({"crash", "hang", "memory", "garbage", "slow"})  # fired while a command runs
OPEN_KINDS = frozenset({"session_fail"})  # fired at a session open
REMOTE_KINDS = frozenset({"node_lost"})  # fired only in a Ray run (it kills the node's agent)
CRASH_HOWS = ("exit", "signal", "abort")


def _check_count(name: str, value: Any) -> None:
    if value is not None and (type(value) is not int or value < 1):
        raise ValueError(f"Fault {name} must be an integer >= 1 or None, got {value!r}")


def _check_params(kind: str, params: Mapping[str, Any]) -> None:
    known = KINDS[kind]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"Fault({kind!r}) takes no parameter {', '.join(unknown)} (it takes: "
                         f"{', '.join(known) or 'none'})")
    if kind == "crash":
        if params.get("how", "exit") not in CRASH_HOWS:
            raise ValueError(f"Fault('crash') how must be one of {CRASH_HOWS}, got {params['how']!r}")
        if type(params.get("code", 3)) is not int or not 0 <= params.get("code", 3) <= 255:
            raise ValueError("Fault('crash') code must be an exit status in [0, 255]")
    elif kind == "hang" and type(params.get("ignore_cancel", False)) is not bool:
        raise ValueError("Fault('hang') ignore_cancel must be a bool")
    elif kind == "memory":
        if type(params.get("mib", 256)) is not int or params.get("mib", 256) < 1:
            raise ValueError("Fault('memory') mib must be an integer >= 1")
        hold = params.get("hold")
        if hold is not None and (not isinstance(hold, (int, float)) or isinstance(hold, bool) or not math.isfinite(hold)
                                 or hold < 0):
            raise ValueError("Fault('memory') hold must be seconds >= 0, or None (until the request ends)")
        keep = params.get("keep_free_mib")
        if keep is not None and (type(keep) is not int or keep < 0):
            raise ValueError("Fault('memory') keep_free_mib must be an integer >= 0, or None (the default floor)")
    elif kind == "slow":
        seconds = params.get("seconds", 1.0)
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds < math.inf:
            raise ValueError("Fault('slow') seconds must be a finite number >= 0")
    elif kind == "session_fail" and type(params.get("message", "")) is not str:
        raise ValueError("Fault('session_fail') message must be text")


class Fault:
    """One rule: ``Fault(kind, *, command=None, key=None, nth=None, every=None, probability=None, after_rows=0,
    **params)``.

    It matches a request when every filter given holds: ``command`` (the command's name), ``key`` (a
    :class:`~leanworker.SessionKey`, or a capability ``"module:attribute"`` matching every key of it), ``nth`` (the
    key's n-th request, counted from 1 in the order the parent admits them), ``every`` (every n-th), ``probability``
    (a draw from the plan's seed, the key and the request's number: the same request gets the same draw in every
    run). A ``session_fail`` rule matches session opens instead (``nth``/``every`` count the key's opens).
    ``after_rows``: the fault fires after the command's k-th row (when it returns, if it emits fewer).

    Kinds and their params: ``crash`` (``how``: "exit" | "signal" | "abort", ``code`` for exit), ``hang``
    (``ignore_cancel``), ``memory`` (``mib`` grown, ``hold`` seconds, None: until the request ends; it stops growing
    where the machine would keep less than ``keep_free_mib`` available), ``garbage``,
    ``slow`` (``seconds``), ``session_fail`` (``message``), ``node_lost`` (Ray runs only).
    """

    __slots__ = ("kind", "command", "key", "nth", "every", "probability", "after_rows", "params")

    def __init__(self, kind: str, *, command: str | None = None, key: SessionKey | str | None = None,
                 nth: int | None = None, every: int | None = None, probability: float | None = None,
                 after_rows: int = 0, **params: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}: one of {', '.join(KINDS)}")
        _check_count("nth", nth)
        _check_count("every", every)
        if probability is not None and (isinstance(probability, bool) or not isinstance(probability, (int, float))
                                        or not 0 <= probability <= 1):
            raise ValueError(f"Fault probability must be in [0, 1] or None, got {probability!r}")
        if type(after_rows) is not int or after_rows < 0:
            raise ValueError(f"Fault after_rows must be an integer >= 0, got {after_rows!r}")
        if kind in OPEN_KINDS and after_rows:
            raise ValueError(f"Fault({kind!r}) does not fire inside a command: after_rows does not apply")
        if kind == "session_fail" and command is not None:
            raise ValueError("Fault('session_fail') fires at the session open, which has no command")
        if command is not None and not isinstance(command, str):
            raise TypeError(f"Fault command must be a command's name (a string) or None, got {command!r}")
        if key is not None and not isinstance(key, (SessionKey, str)):
            raise TypeError(f"Fault key must be a SessionKey or a capability 'module:attribute', got {key!r}")
        _check_params(kind, params)
        self.kind = kind
        self.command = command
        self.key = base_key(key) if isinstance(key, SessionKey) else key  # a wrapped key matches as its caller's
        self.nth = nth
        self.every = every
        self.probability = None if probability is None else float(probability)
        self.after_rows = after_rows
        self.params: dict[str, Any] = dict(params)

    def matches(self, key: SessionKey, command: str | None, number: int) -> bool:
        """Whether the filters other than ``probability`` hold for request (or open) ``number`` of ``key``."""
        if self.command is not None and command != self.command:
            return False
        if isinstance(self.key, SessionKey) and key != self.key:
            return False
        if isinstance(self.key, str) and key.capability != self.key:
            return False
        if self.nth is not None and number != self.nth:
            return False
        return self.every is None or number % self.every == 0

    def directive(self) -> dict[str, Any]:
        """What the worker is told to do: the kind, its params with their defaults, and ``after_rows``."""
        return {"kind": self.kind, "after_rows": self.after_rows, "params": {**KINDS[self.kind], **self.params}}

    # -- plain data ------------------------------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """The rule as JSON-ready data (only what was given); :meth:`from_dict` reads it back."""
        data: dict[str, Any] = {"kind": self.kind}
        if self.command is not None:
            data["command"] = self.command
        if isinstance(self.key, SessionKey):
            data["key"] = key_as_dict(self.key)
        elif self.key is not None:
            data["key"] = self.key
        for name in ("nth", "every", "probability"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        if self.after_rows:
            data["after_rows"] = self.after_rows
        if self.params:
            data["params"] = dict(self.params)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """The rule :meth:`as_dict` wrote. Raises ValueError for data that is not one."""
        if not isinstance(data, Mapping) or "kind" not in data:
            raise ValueError(f"a fault rule is an object with a 'kind', got {data!r:.80}")
        unknown = sorted(set(data) - {"kind", "command", "key", "nth", "every", "probability", "after_rows",
                                      "params"})
        if unknown:
            raise ValueError(f"a fault rule has no field {', '.join(unknown)}")
        if not isinstance(data.get("params", {}), Mapping):
            raise ValueError(f"a fault rule's params are an object, got {data['params']!r:.80}")
        key = data.get("key")
        return cls(data["kind"], command=data.get("command"),
                   key=key_from_dict(key) if isinstance(key, Mapping) else key,
                   nth=data.get("nth"), every=data.get("every"), probability=data.get("probability"),
                   after_rows=data.get("after_rows", 0), **dict(data.get("params", {})))

    def __repr__(self) -> str:
        parts = [repr(self.kind)]
        for name in ("command", "key", "nth", "every", "probability"):
            if getattr(self, name) is not None:
                parts.append(f"{name}={getattr(self, name)!r}")
        if self.after_rows:
            parts.append(f"after_rows={self.after_rows!r}")
        parts.extend(f"{name}={value!r}" for name, value in self.params.items())
        return f"Fault({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fault) and self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash(repr(self))


def base_key(key: SessionKey) -> SessionKey:
    """``key`` as its caller wrote it: without the options a plan adds when it wraps it."""
    options = tuple((name, value) for name, value in key.options
                    if name != WRAP_OPTION and not name.startswith(OPTION_PREFIX))
    return key if len(options) == len(key.options) else dataclasses.replace(key, options=options)


def key_as_dict(key: SessionKey) -> dict[str, Any]:
    """A session key as JSON-ready data."""
    return {"capability": key.capability, "workspace": key.workspace, "imports": list(key.imports),
            "command": None if key.command is None else list(key.command), "toolchain": key.toolchain,
            "options": [[name, value] for name, value in key.options]}


def key_from_dict(data: Mapping[str, Any]) -> SessionKey:
    return SessionKey(data["capability"], data.get("workspace"), tuple(data.get("imports", ())),
                      None if data.get("command") is None else tuple(data["command"]), data.get("toolchain"),
                      tuple((str(name), value) for name, value in data.get("options", ())))
