"""The worker host's serve loop: hello, then one request at a time; a watchdog reads stdin while one runs."""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from collections import deque
from typing import Any

from leanworker.actors.core import locks
from leanworker.actors.core.env import SPIN_ENV, SYS_PATH_ENV
from leanworker.errors import CommandError, NotPlainData, ProtocolError
from leanworker.host.cancel_flag import CancelFlag
from leanworker.host.capability import (
    WRAP_OPTION,
    Capability,
    CapabilityLoadError,
    RequestCancelled,
    SessionSpec,
    load_capability,
)
from leanworker.host import containment
from leanworker.host.containment import end_process_group, join_cgroup, set_parent_death_signal, start_guardian
from leanworker.host.context import RequestContext
from leanworker.host.output import ProtocolWriter
from leanworker.protocol import messages
from leanworker.protocol.frames import FrameReader, Message, check_frame_cap

HOST_VERSION = "leanworker-host/0.1.0"
PYTHON_VERSION = sys.version.split()[0]  # what platform.python_version() says, without loading platform at each start
EOF_GRACE = 0.5
WATCH_INTERVAL = 0.002
ERROR_TEXT_LIMIT = 16 * 1024


class Host:
    """One worker process's state: the writer, the capability, the session and the request in flight.

    The main thread reads parent frames itself while idle (no thread handoff per request): it spins on
    non-blocking reads for ``spin_wait`` seconds (``WorkerConfig.spin_wait``, passed in ``LEANWORKER_SPIN_WAIT``),
    then sleeps in ``poll()``. While a command runs that has used its ctx (the only way it can see a cancel), a
    watchdog thread reads instead, every ``WATCH_INTERVAL``: ``cancel`` sets the command's flag (seen at its next
    row or ``check_cancelled``), ``ping`` is answered at once, ``stop`` cancels, and end of input ends the process
    group. Both threads read through one ``FrameReader`` under ``read_lock``; frames the watchdog reads that are
    for the main loop wait in ``_stash``, in order.
    """

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self.reader = FrameReader(in_fd)
        self.writer = ProtocolWriter(out_fd)
        self.read_lock = locks.lock("host_read")
        os.set_blocking(in_fd, False)  # reads spin, then sleep in poll() (FrameReader.read_waiting)
        self.spin_wait = spin_wait_from_env()
        self._stash: deque[Message | None] = deque()
        self.capability: Capability | None = None
        self.session: Any = None
        self.session_open = False
        self._current: RequestContext | None = None
        self._current_cancel = CancelFlag()  # the running command's cancel flag (its ctx sees it)
        self._current_watched = False  # the running command has used its ctx: the watchdog reads for it
        self._current_lock = locks.lock("host_running")
        self._running = locks.condition("host_running", self._current_lock)
        # A cancel can be read before its own call starts: remember it until then. Request ids rise, so a cancel
        # for an id at or below the last started one is late and dropped.
        self._early_cancels: set[int] = set()
        self._last_started = 0

    # -- reading ---------------------------------------------------------------------------------------------------

    def _next_message(self) -> Message | None:
        """The next frame for the serve loop (blocking), or None when the parent is gone."""
        if self._stash:
            return self._stash.popleft()
        with self.read_lock:
            if self._stash:
                return self._stash.popleft()
            while True:
                message = self.reader.read_waiting(self.spin_wait)
                if message is None:
                    return None
                if self._route(message):
                    return message

    def _route(self, message: Message) -> bool:
        """Handle ping and cancel in place; return True for frames the serve loop must run."""
        kind = messages.validate_to_worker(message)
        if kind == messages.CANCEL:
            self._cancel(message["id"])
            return False
        if kind == messages.PING:
            self.writer.send(messages.pong(message["id"]))
            return False
        if kind == messages.STOP:
            self._cancel(None)
        return True

    def watch(self) -> None:
        """The watchdog thread: read the parent's frames while a command runs."""
        while True:
            with self._running:
                self._running.wait_for(self._busy)
            time.sleep(WATCH_INTERVAL)
            with self.read_lock:
                if not self._busy():
                    continue
                try:
                    polled = self.reader.poll()
                except (ProtocolError, OSError) as exc:
                    print(f"leanworker host: bad input from parent: {exc}", file=sys.stderr, flush=True)
                    polled = None
                if polled is None:
                    self._parent_gone()
                    return
                for message in polled:
                    if self._route(message):
                        self._stash.append(message)

    def _busy(self) -> bool:
        return self._current is not None and self._current_watched

    def _wake_watchdog(self, request_id: int) -> None:
        """The running command used its ctx: from now on the watchdog reads the parent's frames."""
        with self._running:
            if self._current is not None and self._current.request_id == request_id:
                self._current_watched = True
                self._running.notify()

    def _cancel(self, request_id: int | None) -> None:
        with self._current_lock:
            current = self._current
            if current is not None and (request_id is None or current.request_id == request_id):
                self._current_cancel.set()
            elif request_id is not None and request_id > self._last_started:
                self._early_cancels.add(request_id)

    def _parent_gone(self) -> None:
        """stdin closed: the parent is gone or done with us. End the whole process group (grandchildren too)."""
        self._cancel(None)
        time.sleep(EOF_GRACE)
        end_process_group(0)

    # -- serve loop ----------------------------------------------------------------------------------------------

    def serve(self) -> int:
        global _serving
        _serving = self
        self.writer.send(messages.hello(HOST_VERSION, os.getpid(), PYTHON_VERSION, None))
        threading.Thread(target=self.watch, name="leanworker-watchdog", daemon=True).start()
        while True:
            try:
                message = self._next_message()
            except ProtocolError as exc:
                print(f"leanworker host: bad frame from parent: {exc}", file=sys.stderr, flush=True)
                message = None
            if message is None:
                end_process_group(0)
                return 0
            kind = message["type"]
            request_id = message["id"]
            if kind == messages.STOP:
                self.writer.send(messages.bye(request_id))
                return 0
            started = time.perf_counter()
            if kind == messages.CONFIGURE:
                self._configure(message, started)
            elif kind == messages.OPEN:
                self._open(message, started)
            elif kind == messages.CALL:
                self._call(message, started)

    def _configure(self, message: Message, started: float) -> None:
        try:
            cap = check_frame_cap(message["max_frame_bytes"])
        except ValueError as exc:
            self._finish_error(message["id"], "bad_configure", str(exc), started)
            return
        self.writer.max_frame_bytes = cap
        self.reader.max_bytes = cap
        self.writer.send(messages.done(message["id"], messages.OUTCOME_OK, result={"max_frame_bytes": cap},
                                       elapsed=time.perf_counter() - started))

    def _open(self, message: Message, started: float) -> None:
        request_id = message["id"]
        try:
            options = dict(message["options"])
            wrapper = options.pop(WRAP_OPTION, None)  # a capability that serves the key's own (host/capability.py)
            capability = load_capability(wrapper if isinstance(wrapper, str) else message["capability"])
            spec = SessionSpec(
                capability=message["capability"],
                workspace=message["workspace"],
                imports=tuple(message["imports"]),
                options=options,
            )
            session = capability.open(spec)
        except CapabilityLoadError as exc:
            self._finish_error(request_id, "capability_load", str(exc), started)
            return
        except CommandError as exc:
            self._finish_error(request_id, exc.code, exc.message, started)
            return
        except Exception as exc:
            import traceback  # here, not at the top: only a failed open or command needs it

            traceback.print_exc(file=sys.stderr)
            self._finish_error(request_id, "session_open", f"{type(exc).__name__}: {exc}", started)
            return
        self.capability, self.session, self.session_open = capability, session, True
        result = {"capability": capability.name, "version": capability.version}
        self.writer.send(messages.done(request_id, messages.OUTCOME_OK, result=result,
                                       elapsed=time.perf_counter() - started))

    def _call(self, message: Message, started: float) -> None:
        request_id = message["id"]
        command = message["command"]
        cancel = CancelFlag()
        ctx = RequestContext(self.session, request_id, self.writer, message["stream"],
                             lambda: self._wake_watchdog(request_id), cancel)
        self.writer.begin(request_id)
        with self._current_lock:
            self._current, self._current_cancel, self._current_watched = ctx, cancel, False
            self._last_started = max(self._last_started, request_id)
            if request_id in self._early_cancels:
                self._early_cancels.discard(request_id)
                cancel.set()
        try:
            function = self._resolve(command)
            result = function(ctx, message["request"])
            self.writer.flush()  # raises BadOutput when a row of this request could not be sent
            reply = messages.done(request_id, messages.OUTCOME_OK, result=result, counts=self.writer.counts(),
                                  elapsed=time.perf_counter() - started)
            try:
                self.writer.send(reply)
            except (NotPlainData, ProtocolError) as exc:
                self._finish_error(request_id, "unencodable_result", f"the result cannot be sent: {exc}", started)
        except RequestCancelled:
            self.writer.discard_pending()
            self.writer.send(messages.done(request_id, messages.OUTCOME_CANCELLED, counts=self.writer.counts(),
                                           elapsed=time.perf_counter() - started))
        except CommandError as exc:  # BadOutput too: bad_row, bad_diagnostic, bad_progress
            self._finish_error(request_id, exc.code, exc.message, started)
        except Exception as exc:
            import traceback

            text = traceback.format_exc()
            print(text, file=sys.stderr, end="")
            self._finish_error(request_id, "exception", f"{type(exc).__name__}: {exc}", started, text)
        finally:
            with self._current_lock:
                self._current = None

    def _resolve(self, command: str) -> Any:
        if command == messages.METADATA_COMMAND:
            return self._metadata
        if command == messages.DOCTOR_COMMAND:
            return self._doctor
        if not self.session_open or self.capability is None:
            raise CommandError("no_session", "no session is open on this worker")
        info = self.capability.commands.get(command)
        if info is None:
            own = ", ".join(sorted(self.capability.commands)) or "none"
            raise CommandError("unknown_command", f"{self.capability.name!r} has no command {command!r} (its "
                                                  f"commands: {own})")
        return info.function

    def _finish_error(self, request_id: int, code: object, text: object, started: float,
                      trace: str | None = None) -> None:
        self.writer.discard_pending()
        error = {"code": _wire_text(code, 256), "message": _wire_text(text, ERROR_TEXT_LIMIT)}
        if trace is not None:
            error["traceback"] = _wire_text(trace, ERROR_TEXT_LIMIT)
        self.writer.send(messages.done(request_id, messages.OUTCOME_ERROR, error=error,
                                       counts=self.writer.counts(), elapsed=time.perf_counter() - started))

    # -- built-in commands ---------------------------------------------------------------------------------------

    def _metadata(self, ctx: Any, request: Any) -> dict[str, Any]:
        capability = self.capability
        return {
            "name": capability.name if capability else None,
            "version": capability.version if capability else None,
            "commands": sorted(capability.commands) if capability else [],
            "protocol": messages.PROTOCOL_VERSION,
            "host": HOST_VERSION,
            "python": PYTHON_VERSION,
            "lean": None,
        }

    def _doctor(self, ctx: Any, request: Any) -> dict[str, Any]:
        checks: list[dict[str, str]] = [
            {"name": "python", "status": "pass" if sys.version_info >= (3, 11) else "error",
             "message": f"Python {PYTHON_VERSION}"},
            {"name": "protocol", "status": "pass", "message": f"protocol version {messages.PROTOCOL_VERSION}"},
            *containment.doctor_checks(),
            {"name": "session", "status": "pass" if self.session_open else "error",
             "message": "session open" if self.session_open else "no session is open"},
        ]
        if self.capability is not None:
            for name, check in sorted(self.capability.checks.items()):
                try:
                    status, text = check(self.session)
                except Exception as exc:
                    status, text = "error", f"check raised {type(exc).__name__}: {exc}"
                checks.append({"name": name, "status": status, "message": text})
        return {"checks": checks}


_serving: Host | None = None  # the host this process runs (set by Host.serve)


def protocol_output() -> ProtocolWriter | None:
    """The protocol writer of the host serving this worker process, or None outside one.

    For fault injection only (``leanworker.testing`` flushes rows before a crash and writes malformed frames with
    it): capability code never needs it, and bytes written with ``send_raw`` break the protocol on purpose.
    """
    host = _serving
    return host.writer if host is not None else None


def _wire_text(value: object, limit: int) -> str:
    """Text that always encodes: ``str()`` of anything, lone surrogates replaced, at most ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[: limit - 40] + f"... ({len(text) - limit + 40} characters cut)"
    return text.encode("utf-8", "replace").decode("utf-8")


def spin_wait_from_env() -> float:
    """How long the idle host spins for its next frame before it sleeps (``WorkerConfig.spin_wait``, in seconds)."""
    try:
        value = float(os.environ.get(SPIN_ENV, "0"))
    except ValueError:
        return 0.0
    return min(value, 0.01) if math.isfinite(value) and value > 0 else 0.0


def extend_sys_path() -> None:
    """Put the directories the parent found the capability's module in (``LEANWORKER_SYS_PATH``) on ``sys.path``,
    after the worker's own entries: the worker runs in the session's workspace, not where the parent was started."""
    for entry in os.environ.get(SYS_PATH_ENV, "").split(os.pathsep):
        if entry and entry not in sys.path:
            sys.path.append(entry)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m leanworker.host``: speak the protocol on the original stdin/stdout."""
    # Keep the protocol pipe to ourselves: fd 1 becomes stderr, so print() and subprocesses cannot corrupt it,
    # and fd 0 becomes /dev/null, so nothing else reads our frames.
    protocol_out = os.dup(1)
    protocol_in = os.dup(0)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    extend_sys_path()
    locks.fail_fast = locks.checking  # under the test suite's lock check, an inversion ends the worker at once
    join_cgroup()
    start_guardian()  # before any thread exists
    signal.signal(signal.SIGTERM, lambda signum, frame: end_process_group(128 + signum))
    set_parent_death_signal()
    host = Host(protocol_in, protocol_out)
    code = host.serve()
    host.writer.close()
    sys.stdout.flush()
    sys.stderr.flush()
    return code
