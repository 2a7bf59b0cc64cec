"""ChildActor: owns one worker process (one generation). The only place that touches processes.

It starts the process in its own session (so the worker and its grandchildren form one group to kill), from its
own thread (Linux's parent-death signal fires when the *spawning thread* exits), runs a reader thread that decodes
frames into request channels, drains stderr into a bounded tail, kills the whole group, reaps, and tells its
supervisor how the process ended.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pykka

from leanworker.actors.core import lifecycle
from leanworker.actors.core.ceilings import Ceilings
from leanworker.actors.core.config import SessionKey, WorkerConfig
from leanworker.actors.core.containment import add_to_cgroup, kill_cgroup, new_cgroup, remove_cgroup
from leanworker.actors.core.env import CGROUP_ENV, PARENT_PID_ENV, SANDBOX_ENV, SPIN_ENV, SYS_PATH_ENV
from leanworker.actors.core.mailbox import tell_if_alive
from leanworker.actors.core.process_tree import kill_tree
from leanworker.actors.core.results import ShutdownReport
from leanworker.actors.core.sandbox import SandboxUnavailable, sandboxed
from leanworker.actors.core.stderr import StderrTail, drain_into
from leanworker.actors.core.tracing import TraceSink
from leanworker.actors.core.waits import ladder_waits
from leanworker.actors.slot.connection import Connection
from leanworker.actors.slot.dispatch import FrameDispatcher
from leanworker.actors.slot.gate import AdmissionGate
from leanworker.actors.slot.messages import (
    Exited,
    FrameViolation,
    HelloReceived,
    Kill,
    Spawned,
    SpawnFailed,
    Stop,
)
from leanworker.actors.slot.pipe import PipeWriter
from leanworker.actors.slot.readside import ReadSide
from leanworker.errors import LeanWorkerError, ProtocolError, WorkerCrashed
from leanworker.protocol import messages
from leanworker.protocol.frames import FrameReader

log = logging.getLogger("leanworker")


@functools.lru_cache(maxsize=64)
def capability_search_path(reference: str) -> str:
    """Where this (parent) process finds the capability's top-level module, for the worker's ``sys.path``.

    The worker runs in the session's workspace, so a module the parent imports from its script's directory or its
    working directory would not be found there. Empty when the module is not found here (the worker's own error
    then says where it looked).
    """
    top = reference.partition(":")[0].split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return ""
    if spec is None:
        return ""
    locations = list(spec.submodule_search_locations or []) or ([spec.origin] if spec.origin else [])
    entries = []
    for location in locations:
        if not os.path.isabs(location):
            continue
        parent = os.path.dirname(location)
        entries.append(os.path.dirname(parent) if spec.submodule_search_locations else parent)
    return os.pathsep.join(dict.fromkeys(entries))


class ChildActor(pykka.ThreadingActor):
    """One worker process: spawn, read, drain, kill, reap."""

    use_daemon_thread = True

    def __init__(self, supervisor: pykka.ActorRef[Any], generation: int, key: SessionKey, config: WorkerConfig,
                 connection: Connection, gate: AdmissionGate, tracer: TraceSink | None, slot: str) -> None:
        super().__init__()
        self.supervisor = supervisor
        self.generation = generation
        self.key = key
        self.config = config
        self.connection = connection
        self.gate = gate
        self.tracer = tracer
        self.name = f"{slot}/child.{generation}"
        self.process: subprocess.Popen[bytes] | None = None
        self.stderr_tail = StderrTail()
        self.exited = threading.Event()
        self.exit_code: int | None = None
        self.exit_signal: int | None = None
        self._exited_on_its_own = False
        self._stderr_thread: threading.Thread | None = None
        self._kill_sent = False
        self.pipe: PipeWriter | None = None
        self.cgroup: Path | None = None
        self.ceilings: Ceilings | None = None  # a sandboxed worker's process and memory ceilings
        self.reads: ReadSide | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def on_start(self) -> None:
        env = dict(os.environ)
        if self.config.env:
            env.update(self.config.env)
        env[PARENT_PID_ENV] = str(os.getpid())
        env[SPIN_ENV] = repr(self.config.spin_wait)
        env.pop(CGROUP_ENV, None)
        search = capability_search_path(self.key.capability)
        if search:
            env[SYS_PATH_ENV] = search
        if self.config.containment != "group":
            self.cgroup = new_cgroup()
            if self.cgroup is None and self.config.containment == "cgroup":
                self._spawn_failed("containment='cgroup' but no writable cgroup v2 with cgroup.kill is available "
                                   "here (use 'auto' to fall back to the process group)")
                return
            if self.cgroup is not None:
                env[CGROUP_ENV] = str(self.cgroup)
        argv = self.key.argv()
        try:
            sandbox = sandboxed(argv, self.key.workspace, self.config, self.key.capability, self.cgroup)
        except SandboxUnavailable as exc:
            self._spawn_failed(str(exc))
            return
        if sandbox is not None:  # inside, the parent's pid and the cgroup's path mean nothing (core/sandbox.py)
            argv, self.ceilings = sandbox.argv, sandbox.ceilings
            env[SANDBOX_ENV] = "bwrap"
            env.pop(PARENT_PID_ENV)
            env.pop(CGROUP_ENV, None)
        try:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                bufsize=0, start_new_session=True, close_fds=True, env=env, cwd=self.key.workspace,
            )
        except OSError as exc:
            self._spawn_failed(str(exc))
            return
        if self.cgroup is not None:
            add_to_cgroup(self.cgroup, self.process.pid)  # the host joins too; this covers other worker programs
        assert self.process.stdin and self.process.stdout and self.process.stderr
        lifecycle.register_pipe_fds(*self._pipe_fds())
        self.pipe = self.connection.pipe = PipeWriter(self.process.stdin.fileno(), self.config.max_frame_bytes)
        self._trace("spawn", pid=self.process.pid, argv=argv)
        self._tell(Spawned(self.generation, self.process.pid))
        self._stderr_thread = threading.Thread(target=self._drain_stderr, name=f"{self.name}-stderr", daemon=True)
        self._stderr_thread.start()
        threading.Thread(target=self._read, name=f"{self.name}-reader", daemon=True).start()

    def _pipe_fds(self) -> list[int]:
        process = self.process
        assert process is not None
        return [stream.fileno() for stream in (process.stdin, process.stdout, process.stderr)
                if stream is not None and not stream.closed]

    def _spawn_failed(self, reason: str) -> None:
        if self.cgroup is not None:
            remove_cgroup(self.cgroup, wait=0.0)
        if self.ceilings is not None:
            self.ceilings.remove()
        self.exited.set()
        self._tell(SpawnFailed(self.generation, WorkerCrashed(f"cannot start worker: {reason}")))

    def on_receive(self, message: Any) -> Any:
        if self.tracer is not None:
            self.tracer.record("message", self.name, self.generation, message=type(message).__name__)
        try:
            self._handle(message)
        except Exception:  # never let a bug stop the actor that owns a live process
            log.exception("%s: handling %s failed", self.name, type(message).__name__)
        return None

    def _handle(self, message: Any) -> None:
        if isinstance(message, Kill):
            self._kill_group(signal.SIGKILL, message.reason)
        elif isinstance(message, Stop):
            try:
                report = self._shutdown_ladder(message.graceful, message.at_once)
            except BaseException as exc:  # never leave the caller waiting
                message.reply.set_exception(exc)
                raise
            message.reply.set_result(report)
            self.stop()

    def on_failure(self, *args: Any) -> None:
        self._kill_group(signal.SIGKILL, "actor failure")

    # -- the reader thread ---------------------------------------------------------------------------------------

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        reader = FrameReader(self.process.stdout.fileno(), self.config.max_frame_bytes)
        try:
            first = reader.read()
            if first is not None:
                hello = messages.check_hello(first)
                self._trace("hello", pid=hello.get("pid"), host=hello.get("host"))
                self._tell(HelloReceived(self.generation, hello))
                dispatcher = FrameDispatcher(self.connection, self.gate, self.tracer, self.name)
                self.reads = ReadSide(reader, dispatcher.dispatch, self._violation, self.connection.counters,
                                      self.config.spin_wait)
                self.connection.reads = self.reads
                self.reads.run()
        except LeanWorkerError as exc:
            self._violation(exc)
        except OSError:
            pass
        except Exception as exc:  # nothing a worker sends may escape untyped or end this thread early
            log.exception("%s: worker output could not be handled", self.name)
            self._violation(ProtocolError(f"worker output could not be handled: {type(exc).__name__}: {exc}"))
        finally:
            self._await_exit()

    def _violation(self, error: LeanWorkerError) -> None:
        self._trace("protocol_error", error=str(error))
        self._tell(FrameViolation(self.generation, error))
        self._kill_group(signal.SIGKILL, "protocol error")

    def _drain_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        drain_into(self.process.stderr.fileno(), self.stderr_tail)

    def _await_exit(self) -> None:
        """Wait for the worker to exit without reaping it, end its group (grandchildren), then reap and report."""
        process = self.process
        assert process is not None
        give_up_at = time.monotonic() + self.config.kill_wait
        delay = 0.0002
        while True:
            try:
                info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                break
            if info is not None and info.si_pid:
                break
            if time.monotonic() > give_up_at:  # stdout closed but the process lingers
                self._kill_group(signal.SIGKILL, "stdout closed")
                give_up_at = float("inf")
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
        if not self._kill_sent:
            self._exited_on_its_own = True
        self._kill_group(signal.SIGKILL, "reap", quiet=True)  # the leader is a zombie: the group id is still ours
        returncode = process.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=2)
        if self.pipe is not None:
            self.pipe.close()
        if self.cgroup is not None:  # descendants that left the group (setsid) end here
            kill_cgroup(self.cgroup)
        if self.reads is not None:
            self.reads.close()  # waits for a caller reading its own answer to let go of the fd
        lifecycle.unregister_pipe_fds(*self._pipe_fds())
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self.exit_code = returncode if returncode >= 0 else None
        self.exit_signal = -returncode if returncode < 0 else None
        self._trace("reap", exit_code=self.exit_code, signal=self.exit_signal)
        # Tell the supervisor before anyone waiting on ``exited`` (the ladder) may stop this actor: a message the
        # supervisor sends to a stopped child then always has this exit report behind it.
        self._tell(Exited(self.generation, self.exit_code, self.exit_signal, self.stderr_tail.text()))
        self.exited.set()
        if self.cgroup is not None:  # after the report: the replacement need not wait for the kernel's cleanup
            remove_cgroup(self.cgroup)
        if self.ceilings is not None:
            self.ceilings.remove()

    # -- killing -------------------------------------------------------------------------------------------------

    def _kill_group(self, sig: int, reason: str, quiet: bool = False) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        if not quiet:
            self._kill_sent = True
            self._trace("kill", signal=int(sig), reason=reason)
        kill_tree(process.pid, sig, cgroup=self.cgroup)

    def _shutdown_ladder(self, graceful: bool, at_once: bool = False) -> ShutdownReport:
        """Ask (stop), wait; SIGTERM the group, wait; SIGKILL the group; reap. Report which step ended it.
        ``at_once``: SIGKILL the group first (a worker that has no session to close)."""
        started = time.monotonic()
        after_stop, after_term, after_kill = ladder_waits(self.config)
        if self.exited.is_set() or self.process is None:
            how = "already_exited"
        elif self._exited_on_its_own and self.exited.wait(after_term):
            how = "already_exited"
        else:
            how = ""
            if at_once:
                self._kill_group(signal.SIGKILL, "shutdown before ready")
                self.exited.wait(after_kill)
                how = "killed"
            if not how and graceful and self.pipe is not None and self.pipe.send(messages.stop(0)):
                if self.exited.wait(after_stop):
                    how = "graceful"
            if not how:
                self._kill_group(signal.SIGTERM, "shutdown")
                self._kill_group(signal.SIGCONT, "shutdown", quiet=True)  # a stopped process must see the TERM
                if self.exited.wait(after_term):
                    how = "terminated"
            if not how:
                self._kill_group(signal.SIGKILL, "shutdown")
                self.exited.wait(after_kill)
                how = "killed"
        self._trace("shutdown", how=how)
        return ShutdownReport(how, self.generation, self.exit_code, self.exit_signal, time.monotonic() - started)

    def _tell(self, message: Any) -> None:
        tell_if_alive(self.supervisor, message)  # a stopped supervisor (shut down) needs no news

    def _trace(self, kind: str, **fields: Any) -> None:
        if self.tracer is not None:
            self.tracer.record(kind, self.name, self.generation, **fields)
