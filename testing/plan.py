"""``FaultPlan``: which requests (and session opens) get which fault, decided in the parent, recorded as sent.

A plan is plain data (rules and a seed: printable, JSON, replayable) plus what it has seen in this process: how many
requests and session opens of each key it has admitted, and the faults it has fired. It takes part at two places,
both in the parent and both at admission:

- as an *interceptor* (``leanworker.actors.core.intercept``): consulted before a session of a key it owns opens (it
  may fail that open: ``session_fail``), and given a hook its generation's admission gate calls for each request
  admitted, in admission order (it may send the request with a fault directive). A plan owns the keys
  :meth:`FaultPlan.wrap` gave out, and, once installed ``everywhere``, every key a worker can be wrapped for.
- as a run's *fault source* (``pool.run(..., faults=plan)``, ``leanworker.actors.run.faults``): the run asks it, at
  each attempt's admission, which fault the attempt carries; that works the same for a Ray run, whose workers are
  in other processes.

Whether a request gets a fault depends only on the rules, the seed, the key and the request's number for that key
(``nth``): never on timing, threads or how many workers run. A probability draw is a hash of those, not a shared
random stream, so one key's requests cannot shift another key's draws. In a run, whose runners admit attempts in
an order that timing decides, a draw depends on the attempt instead (what it asks and how many times it was tried),
so a seed loses the same modules with any number of workers; and a session open fails per attempt too (the attempt
runs on a fresh worker of a key of its own whose open fails), not per open, whose number depends on the workers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import cbor2

from leanworker.actors.core import intercept, locks
from leanworker.actors.core.config import SessionKey
from leanworker.actors.core.intercept import Intercepted
from leanworker.actors.run import FaultedAttempt
from leanworker.errors import (
    Cancelled,
    CommandError,
    MemoryLimitExceeded,
    NodeLost,
    ProtocolError,
    RequestTimeout,
    WorkerCrashed,
)
from leanworker.host.capability import WRAP_OPTION
from leanworker.testing.fault import KINDS, OPEN_KINDS, REMOTE_KINDS, REQUEST_KINDS, Fault, base_key
from leanworker.testing.fired import FiredFault
from leanworker.testing.literal import read_literal
from leanworker.testing.wire import (
    OPEN_OPTION,
    PLAN_OPTION,
    RUN_OPTION,
    WRAPPER,
    Directive,
    envelope,
    unwrap,
)

SESSION_FAIL_CODE = "injected_session_fail"
# What each kind makes a request end with (a run counts such a failure as injected, not as a poison module).
OUTCOMES: dict[str, tuple[type[BaseException], ...]] = {
    "crash": (WorkerCrashed,),
    "hang": (RequestTimeout, Cancelled),
    "memory": (MemoryLimitExceeded, RequestTimeout),
    "garbage": (ProtocolError,),
    "slow": (RequestTimeout,),
    "node_lost": (NodeLost,),
}
# The rules of a chaos plan: every kind, in several shapes; each gets an equal share of the rate.
CHAOS_RULES: tuple[Fault, ...] = (
    Fault("crash", how="exit"),
    Fault("crash", how="signal", after_rows=1),
    Fault("crash", how="abort"),
    Fault("hang"),
    Fault("hang", ignore_cancel=True),
    Fault("memory", mib=128, hold=1.0),
    Fault("garbage"),
    Fault("slow", seconds=0.2),
    Fault("node_lost"),
    Fault("session_fail"),
)


def key_digest(key: SessionKey) -> str:
    """What a key's draws depend on: what it serves (capability, imports, toolchain, the names of its options), not
    where the project or the worker program lies on disk, so a plan replays the same faults in any checkout."""
    facts = {"capability": key.capability, "imports": list(key.imports), "toolchain": key.toolchain,
             "options": sorted(name for name, _ in key.options)}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def draw(seed: int, rule: int, digest: str, number: int | str) -> float:
    """A uniform number in [0, 1) that depends only on its arguments (``number``: a request's number for its key,
    or a run attempt's :func:`attempt_identity` and try)."""
    data = hashlib.sha256(f"{seed}:{rule}:{digest}:{number}".encode()).digest()
    return int.from_bytes(data[:8], "big") / 2**64


def attempt_identity(command: str, request: Any) -> str:
    """What a run's attempt asks, as a digest of its command and request (canonical CBOR, as it is sent; its repr
    where CBOR cannot encode it): the same batch asks the same, whatever runs beside it."""
    try:
        data = cbor2.dumps([command, request], canonical=True)
    except Exception:  # not CBOR: the pool will refuse to send it; any stable digest will do meanwhile
        data = repr((command, request)).encode()
    return hashlib.sha256(data).hexdigest()[:32]


class FaultPlan:
    """``FaultPlan(rules, seed=0)``: a list of :class:`Fault` rules and a seed (see the module docstring).

    ``plan.wrap(key)`` gives the key whose workers fire the plan's faults; ``plan.fired()`` lists the faults sent so
    far. ``repr(plan)`` and ``plan.to_json()`` replay it (``FaultPlan.from_json``); two plans with the same rules and
    seed decide the same faults for the same requests.
    """

    def __init__(self, rules: Iterable[Fault] = (), seed: int = 0) -> None:
        if type(seed) is not int:
            raise TypeError(f"FaultPlan seed must be an int, got {seed!r}")
        self._rules: tuple[Fault, ...] = ()
        self.seed = seed
        self._token = uuid.uuid4().hex[:16]
        self._lock = locks.lock("fault_plan")
        self._requests: Counter[SessionKey] = Counter()
        self._opens: Counter[SessionKey] = Counter()
        self._tries: Counter[tuple[SessionKey, str]] = Counter()  # a run's attempts of one identity, per key
        self._fired: list[FiredFault] = []
        self._everywhere = False
        self.add(*rules)

    # -- the rules -------------------------------------------------------------------------------------------------

    @property
    def rules(self) -> tuple[Fault, ...]:
        return self._rules

    def add(self, *rules: Fault) -> FaultPlan:
        """Append rules (tried in order: the first that matches a request fires). Returns the plan."""
        for rule in rules:
            if not isinstance(rule, Fault):
                raise TypeError(f"a FaultPlan rule must be a Fault, got {rule!r}")
        with self._lock:
            self._rules = (*self._rules, *rules)
        return self

    @classmethod
    def chaos(cls, rate: float, seed: int = 0, kinds: Iterable[str] | None = None) -> FaultPlan:
        """Random faults of every kind (or of ``kinds``), in several shapes: each rule fires with the probability
        that makes ``rate`` the chance that a request gets one of them (a little less off Ray, where ``node_lost``
        never fires); a session open fails with that probability too. Plain rules: it prints and replays like any
        plan."""
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError(f"chaos rate must be a number in [0, 1], got {rate!r}")
        if isinstance(kinds, str):
            raise TypeError(f"chaos kinds is a list of kinds, not the string {kinds!r}: kinds=[{kinds!r}]")
        wanted = set(kinds) if kinds is not None else None
        unknown = sorted((wanted or set()) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}: one of {', '.join(KINDS)}")
        rules = [rule for rule in CHAOS_RULES if wanted is None or rule.kind in wanted]
        count = max(1, len([rule for rule in rules if rule.kind not in OPEN_KINDS]))
        share = round(1 - (1 - rate) ** (1 / count), 6)  # independent draws: 1 - (1 - share)^count == rate
        return cls([Fault.from_dict({**rule.as_dict(), "probability": share}) for rule in rules], seed=seed)

    # -- keys ------------------------------------------------------------------------------------------------------

    def wrap(self, key: SessionKey) -> SessionKey:
        """The same capability with this plan's faults: a worker of the returned key serves ``key``'s capability
        through the fault wrapper, and the plan decides, at admission, which of its requests get which fault. The
        plan is installed (this process's pools and workers consult it) until :meth:`uninstall`."""
        if key.command is not None:
            raise ValueError("only a key served by leanworker's own worker host (SessionKey.command None) can be "
                             f"wrapped: {key.command!r} is a worker program of its own")
        owner = key.options_dict().get(PLAN_OPTION)
        if owner == self._token:
            return key
        if owner is not None:
            raise ValueError("this key is already wrapped by another fault plan")
        self.install(everywhere=self._everywhere)
        return dataclasses.replace(key, options=(*key.options, (WRAP_OPTION, WRAPPER), (PLAN_OPTION, self._token)))

    def install(self, everywhere: bool = False) -> None:
        """Put the plan in this process's line of interceptors. ``everywhere``: also every key a worker can be
        wrapped for (``command`` None) of every pool and worker, and every run started without ``faults=``."""
        self._everywhere = everywhere
        if not self._installed() or everywhere:
            intercept.install(self)

    def _installed(self) -> bool:
        return any(interceptor is self for interceptor in intercept.installed())

    def uninstall(self) -> None:
        """Take the plan out: sessions opened from now on are not intercepted (live workers keep their hooks)."""
        self._everywhere = False
        intercept.uninstall(self)

    @contextmanager
    def everywhere(self) -> Iterator[FaultPlan]:
        """``with plan.everywhere():`` every pool, worker and run of this process gets the plan's faults."""
        self.install(everywhere=True)
        try:
            yield self
        finally:
            self.uninstall()

    # -- what fired ------------------------------------------------------------------------------------------------

    def fired(self) -> list[FiredFault]:
        """The faults sent so far, in the order they were decided (each recorded before its request was sent)."""
        with self._lock:
            return list(self._fired)

    def reset(self) -> None:
        """Forget what was counted and fired: the next requests are numbered from 1 again."""
        with self._lock:
            self._requests.clear()
            self._opens.clear()
            self._tries.clear()
            self._fired.clear()

    # -- deciding ----------------------------------------------------------------------------------------------------

    def _decide(self, kinds: frozenset[str], key: SessionKey, command: str | None, number: int,
                drawn: int | str | None = None) -> tuple[int, Fault] | None:
        """The first rule of ``kinds`` that matches request (or open) ``number`` of ``key``; a probability is drawn
        for ``drawn`` (default: ``number``)."""
        digest: str | None = None
        for index, rule in enumerate(self._rules):
            if rule.kind not in kinds or not rule.matches(key, command, number):
                continue
            if rule.probability is not None:
                digest = digest or key_digest(key)
                if draw(self.seed, index, digest, number if drawn is None else drawn) >= rule.probability:
                    continue
            return index, rule
        return None

    def _fire_locked(self, kinds: frozenset[str], key: SessionKey, command: str | None, number: int,
                     pid: int | None, drawn: int | str | None = None) -> Directive | None:
        decided = self._decide(kinds, key, command, number, drawn)
        if decided is None:
            return None
        index, rule = decided
        directive = rule.directive()
        recorded = None if rule.kind in OPEN_KINDS else command  # a session open has no command
        self._fired.append(FiredFault(rule.kind, recorded, key, number, pid, index, dict(directive["params"])))
        return {**directive, "nth": number, "record": len(self._fired) - 1}

    def _request(self, key: SessionKey, command: str, request: Any, kinds: frozenset[str],
                 pid: int | None) -> tuple[Any, FiredFault | None]:
        with self._lock:
            self._requests[key] += 1
            directive = self._fire_locked(kinds, key, command, self._requests[key], pid)
            if directive is None:
                return request, None
            return envelope(directive, request), self._fired[-1]

    def _note_pid(self, directive: Directive | None, pid: int | None) -> None:
        """A run decided ``directive``: record the pid of the worker it reached (the first one it reached)."""
        record = directive.get("record") if directive is not None else None
        with self._lock:
            if type(record) is int and 0 <= record < len(self._fired) and self._fired[record].pid is None:
                self._fired[record] = dataclasses.replace(self._fired[record], pid=pid)

    def _noted(self, pid: int | None) -> Any:
        def note(command: str, request: Any) -> Any:
            """A run decided this request's fault: record the pid of the worker it is sent to."""
            self._note_pid(unwrap(request)[0], pid)
            return request
        return note

    # -- the interceptor (actors/core/intercept.py) ------------------------------------------------------------------

    def intercept(self, key: SessionKey, pid: int | None) -> Intercepted | None:
        """A generation of ``key`` is about to open its session: claim it if the plan owns the key."""
        options = key.options_dict()
        owner = options.get(PLAN_OPTION)
        if owner != self._token and not (self._everywhere and owner is None and WRAP_OPTION not in options
                                         and key.command is None):
            return None
        base = base_key(key)
        added: dict[str, Any] = {WRAP_OPTION: WRAPPER}
        if RUN_OPTION in options:  # a run's key: the run decided at each attempt, its session opens included
            text = options.get(OPEN_OPTION)
            self._note_pid(json.loads(text) if isinstance(text, str) else None, pid)
            return Intercepted(added, self._noted(pid))
        with self._lock:
            self._opens[base] += 1
            directive = self._fire_locked(OPEN_KINDS, base, None, self._opens[base], pid)
        if directive is not None:
            added[OPEN_OPTION] = json.dumps(directive)

        def requests(command: str, request: Any) -> Any:
            return self._request(base, command, request, REQUEST_KINDS, pid)[0]

        return Intercepted(added, requests)

    # -- the fault source of a run (actors/run/faults.py) ------------------------------------------------------------

    @property
    def ambient(self) -> bool:
        """True while installed ``everywhere``: runs without ``faults=`` take this plan too."""
        return self._everywhere

    def attempt(self, key: SessionKey, command: str, request: Any, *, remote: bool) -> FaultedAttempt:
        """Decide one attempt of a run: the key to run it on and the request to send (with its fault, if any).

        ``nth``/``every`` count the key's attempts in the order the run admits them; a probability is drawn for the
        attempt itself (what it asks, and how many times this plan has seen it asked on this key), so a seed decides
        the same faults for the same batches however many workers run them. A ``session_fail`` gives the attempt a
        key of its own, whose fresh worker fails its session open (not on Ray: its opens happen in the agents)."""
        base = base_key(key)
        if base.command is not None:  # a worker program of its own: nothing to wrap it with
            return FaultedAttempt(key, request)
        if not self._installed():
            self.install(everywhere=self._everywhere)  # the workers' pids
        options = (*base.options, (WRAP_OPTION, WRAPPER), (PLAN_OPTION, self._token), (RUN_OPTION, True))
        kinds = REQUEST_KINDS | REMOTE_KINDS if remote else REQUEST_KINDS | OPEN_KINDS
        identity = attempt_identity(command, request)
        with self._lock:
            self._requests[base] += 1
            self._tries[base, identity] += 1
            directive = self._fire_locked(kinds, base, command, self._requests[base], None,
                                          f"{identity}:{self._tries[base, identity]}")
            fired = self._fired[-1] if directive is not None else None
        if directive is None or fired is None:
            return FaultedAttempt(dataclasses.replace(base, options=options), request)
        if fired.kind in OPEN_KINDS:
            options = (*options, (OPEN_OPTION, json.dumps(directive, sort_keys=True)))
            return FaultedAttempt(dataclasses.replace(base, options=options), request, fired)
        return FaultedAttempt(dataclasses.replace(base, options=options), envelope(directive, request), fired)

    def explains(self, fault: Any, error: BaseException) -> bool:
        """Whether ``error`` is what ``fault`` makes a request end with, or an injected session open failure."""
        if isinstance(error, CommandError) and error.code == SESSION_FAIL_CODE:
            return True
        return isinstance(fault, FiredFault) and isinstance(error, OUTCOMES.get(fault.kind, ()))

    # -- plain data --------------------------------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "rules": [rule.as_dict() for rule in self._rules]}

    def to_json(self) -> str:
        """The plan as JSON: ``FaultPlan.from_json(plan.to_json())`` decides the same faults."""
        return json.dumps(self.as_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FaultPlan:
        """The plan :meth:`to_json` wrote. Raises ValueError for text that is not one."""
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("rules", []), list):
            raise ValueError("a fault plan's JSON is an object with 'rules' (a list) and 'seed'")
        try:
            return cls([Fault.from_dict(rule) for rule in data.get("rules", [])], seed=data.get("seed", 0))
        except TypeError as exc:  # a field of the wrong type
            raise ValueError(f"not a fault plan's JSON: {exc}") from None

    @classmethod
    def from_repr(cls, text: str) -> FaultPlan:
        """Rebuild a plan from its ``repr``: literals and calls of ``Fault``, ``FaultPlan`` and ``SessionKey`` only,
        read, never evaluated (testing/literal.py): a plan's repr, not code. Raises ValueError for anything else."""
        plan = read_literal(text, {"Fault": Fault, "FaultPlan": cls, "SessionKey": SessionKey})
        if not isinstance(plan, cls):
            raise ValueError(f"not the repr of a FaultPlan: {text[:80]!r}")
        return plan

    def __reduce__(self) -> tuple[Any, ...]:
        """A pickled plan is its data, as its JSON: the copy is a plan of its own (it owns no key the original
        wrapped), with nothing counted or fired (``plan.fired()``'s records pickle on their own)."""
        return (type(self), (self._rules, self.seed))

    def __repr__(self) -> str:
        return f"FaultPlan([{', '.join(map(repr, self._rules))}], seed={self.seed!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FaultPlan) and (self._rules, self.seed) == (other.rules, other.seed)
