"""``leanworker serve`` (and ``python -m leanworker.serve``): options, the start line, and uvicorn.

Exit status 0 after SIGTERM or Ctrl-C (the drain: it stops accepting, lets requests in flight finish for ``--grace``
seconds, answers what is left with a typed 503, stops every worker; serve/lifecycle.py), 2 when it cannot start (a
bad option, no REPL, a port in use, a results cache that cannot be opened, no API key on a non-loopback
address without ``--insecure``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leanworker.serve.config import ServeConfig, default_cache_path, is_loopback
from leanworker.serve.keys import KEYS_ENV, KeyFileError, KeyRing, load_keys

if TYPE_CHECKING:
    import leanworker as lw


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one, named in the start line)")
    add("--workspace", default=None, help="the Lean project the REPLs run in (default: none)")
    repl = parser.add_mutually_exclusive_group()
    repl.add_argument("--repl", default=None, help="the REPL's command line (default: LEANWORKER_REPL, else the "
                                                   "project's built REPL under lake env, else repl on PATH)")
    repl.add_argument("--simulator", action="store_true", help="the bundled REPL SIMULATOR (not Lean; every "
                                                               "answer says so) (default: off)")
    add("--workers", type=int, default=2, help="REPL workers (default 2)")
    add("--timeout", type=float, default=60.0, help="seconds per item when a request names none (default 60)")
    add("--max-timeout", type=float, default=300.0, help="the most seconds per item a request may ask (default 300)")
    add("--api-key-file", default=None, help=f"API keys, one per line (or NAME:KEY); also ${KEYS_ENV} "
                                                        "(default: none)")
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument("--cache", type=Path, default=None, help=f"the results cache (default {default_cache_path()})")
    cache.add_argument("--no-cache", action="store_true", help="no results cache (default: off)")
    add("--cache-max-mib", type=int, default=256, help="the cache's size bound (default 256 MiB)")
    add("--max-queue", type=int, default=100_000, help="items admitted and not yet answered (default 100000); "
                                                       "past it, 429 with Retry-After")
    add("--max-in-flight-per-key", type=int, default=None, help="items one API key may have in flight "
                                                                       "(default: no limit)")
    add("--max-body-mib", type=int, default=64, help="request body limit (default 64 MiB; over it, 413)")
    add("--max-item-kib", type=int, default=1024, help="code size limit per item (default 1024 KiB)")
    add("--insecure", action="store_true", help="listen on a non-loopback address without API keys "
                                                      "(default: off)")
    add("--sandbox", choices=["auto", "bwrap", "none"], default="auto", help="run workers under bubblewrap: auto "
        "(where installed, the default), bwrap (required), none")
    add("--sandbox-path", action="append", default=[], metavar="DIR", help="also bind DIR read-only in the "
        "sandbox (the REPL's toolchain, say, when it is not found from --repl); repeatable (default: none)")
    add("--client-timeout", type=float, default=60.0, metavar="S", help="a client must send a request's head within "
        "S seconds of its connection opening (or of the previous answer), then its body within S seconds, and take "
        "each line of a streamed answer within S seconds, and of any answer some every S seconds; else 408 (or the "
        "answer ends) and the connection is closed (default: 60)")
    add("--grace", type=float, default=10.0, help="seconds requests in flight may finish on SIGTERM, what is left "
        "then is answered 503 (default: 10)")
    add("--recycle-after", type=int, default=None, metavar="CALLS", help="replace a REPL worker after this many "
        "check calls, which bounds its memory: a REPL keeps every environment it made (default: never)")
    add("--worker-memory-mib", type=int, default=None, metavar="MIB", help="replace a REPL worker once its process "
        "tree passes this RSS, between calls (default: no limit)")
    add("--max-worker-memory-mib", type=int, default=None, metavar="MIB", help="the most memory a worker, its REPL "
        "and what they start may hold: the sandbox's cgroup ceiling where one is writable, and the pool's RSS sampling "
        "everywhere; past it the item is answered crashed (default: 90%% of this machine's memory)")
    add("--otel", action="store_true", help="OpenTelemetry spans, a span per HTTP request with the pool's spans "
        "under it, to the global tracer provider: set it up with opentelemetry-instrument; needs the otel extra "
        "(default: off)")
    add("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="the server's log level "
        "(default: info)")


class StartError(Exception):
    """The service cannot start; the message is the one line to print."""


def config_from(args: argparse.Namespace) -> tuple[ServeConfig, KeyRing]:
    try:
        config = ServeConfig(
            host=args.host, port=args.port, workspace=args.workspace,
            repl=tuple(shlex.split(args.repl)) if args.repl else None, simulator=args.simulator,
            workers=args.workers, timeout=args.timeout, max_timeout=args.max_timeout,
            api_keys_file=args.api_key_file, cache=not args.no_cache,
            cache_path=args.cache or default_cache_path(), cache_max_mib=args.cache_max_mib,
            max_queue=args.max_queue, max_in_flight_per_key=args.max_in_flight_per_key,
            max_body_mib=args.max_body_mib, max_item_bytes=args.max_item_kib * 1024, insecure=args.insecure,
            grace=args.grace, client_timeout=args.client_timeout,
            sandbox=None if args.sandbox == "none" else args.sandbox,
            sandbox_paths=tuple(args.sandbox_path), recycle_after=args.recycle_after,
            worker_memory_mib=args.worker_memory_mib,
            **({} if args.max_worker_memory_mib is None else {"max_worker_memory_mib": args.max_worker_memory_mib}))
        keys = KeyRing(load_keys(args.api_key_file))
    except (ValueError, KeyFileError) as exc:
        raise StartError(str(exc)) from None
    if not keys and not is_loopback(config.host) and not config.insecure:
        raise StartError(f"refusing to listen on {config.host} without API keys: give --api-key-file or "
                         f"${KEYS_ENV}, or say --insecure")
    return config, keys


def repl_command(config: ServeConfig) -> tuple[str, ...]:
    """The REPL command line the workers will run, checked before the service starts: a REPL that is not there
    would answer every item ``unchecked``, so it is exit status 2 in one line instead."""
    from leanworker.errors import CommandError
    from leanworker.lean.session import REPL_ENV, check_executable, find_repl

    command = config.repl_command
    try:
        if command is not None:
            check_executable(list(command), config.workspace, "--repl")
            return command
        return tuple(find_repl(None, config.workspace))
    except CommandError as exc:
        if command is not None or os.environ.get(REPL_ENV, "").strip():  # the message names the program not found
            raise StartError(exc.message) from None
        raise StartError(f"no Lean REPL found (searched ${REPL_ENV}, the workspace's built REPL under lake env, and "
                         "'repl' on PATH): pass --repl COMMAND, or --simulator to try the service without Lean "
                         "(docs/serve.md)") from None


def repl_paths(repl: tuple[str, ...]) -> tuple[str, ...]:
    """What the sandbox must show for the REPL command to run: the directory of each program and path it names,
    and the whole ``.elan`` directory when a program lives there (elan's ``lake``/``lean`` run its toolchains)."""
    paths: list[str] = []
    for word in repl:
        found = word if os.path.isabs(word) else shutil.which(word) if "/" not in word else os.path.abspath(word)
        if not found or not os.path.exists(found):
            continue
        for candidate in (found, os.path.realpath(found)):
            paths.append(candidate if os.path.isdir(candidate) else os.path.dirname(candidate))
            parts = candidate.split(os.sep)
            if ".elan" in parts:
                paths.append(os.sep.join(parts[:parts.index(".elan") + 1]))
    return tuple(dict.fromkeys(paths))


def worker_settings(config: ServeConfig, repl: tuple[str, ...]) -> tuple[lw.WorkerConfig, lw.RestartPolicy]:
    """The pool's ``WorkerConfig`` and ``RestartPolicy`` for ``config``: the sandbox with the REPL's programs bound
    and the service's state hidden, the memory ceiling both in the sandbox's cgroup and in the pool's sampling."""
    import leanworker as lw

    ceiling = config.max_worker_memory_mib
    soft = config.worker_memory_mib if config.worker_memory_mib is None else min(config.worker_memory_mib, ceiling)
    worker = lw.WorkerConfig(request_timeout=None, sandbox=config.sandbox,
                             sandbox_paths=(*repl_paths(repl), *config.sandbox_paths),
                             sandbox_hidden=config.hidden_paths, sandbox_memory_mib=ceiling)
    restart = lw.RestartPolicy(max_requests=config.recycle_after, rss_soft_limit_mib=soft, rss_hard_limit_mib=ceiling)
    return worker, restart


def sandbox_state(config: ServeConfig) -> str:
    """What the start line says of the sandbox; raises :class:`StartError` for ``--sandbox bwrap`` without it."""
    from leanworker.actors.core.sandbox import find_bwrap

    if config.sandbox is None:
        return "sandbox: none (--sandbox none: untrusted code can reach this machine)"
    if find_bwrap() is None:
        if config.sandbox == "bwrap":
            raise StartError("--sandbox bwrap, but bubblewrap (bwrap) is not installed here (Debian: apt-get "
                             "install bubblewrap)")
        return "sandbox: NONE, bubblewrap is not installed (untrusted code can reach this machine)"
    return "sandbox: bubblewrap"


BACKLOG = 2048  # uvicorn's default backlog, which it sets again when it serves the socket


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        # Listen now, not when uvicorn serves the socket (after the app's start-up, which prints the start line): a
        # client that connects as soon as it reads "listening on" waits in the backlog instead of being refused.
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise StartError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def start_line(config: ServeConfig, url: str, keys: KeyRing, repl: tuple[str, ...], sandbox: str) -> str:
    what = "REPL SIMULATOR (not Lean)" if config.simulated else f"REPL {shlex.join(repl)}"
    keyed = f"API keys required ({len(keys)})" if keys else (
        "no API keys (loopback only)" if is_loopback(config.host) else "no API keys (--insecure)")
    cache = f"cache {config.cache_path}" if config.cache else "no cache"
    return (f"leanworker serve: listening on {url} ; {what}, {config.workers} workers, memory ceiling "
            f"{config.max_worker_memory_mib} MiB a worker; {keyed}; {cache}; {sandbox}")


def start_record(config: ServeConfig, url: str, keys: KeyRing, repl: tuple[str, ...], sandbox: str) -> dict[str, Any]:
    """The start line's facts as one JSON object (``--json``), for a script that reads the URL (``--port 0``)."""
    return {"status": "listening", "url": url, "simulated": config.simulated,
            "repl": None if config.simulated else list(repl), "workers": config.workers,
            "max_worker_memory_mib": config.max_worker_memory_mib, "api_keys": len(keys),
            "insecure": not keys and not is_loopback(config.host),
            "cache": str(config.cache_path) if config.cache else None, "sandbox": sandbox.removeprefix("sandbox: ")}


def cannot_start(args: argparse.Namespace, message: str) -> int:
    """One line on stderr (and with ``--json``, the error as JSON on stdout, as every command does); exit status 2."""
    if getattr(args, "json", False):
        print(json.dumps({"status": "error", "error": "StartError", "message": message}), flush=True)
    print(f"leanworker serve: {message}", file=sys.stderr)
    return 2


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """``leanworker serve``'s options and handler, as a sub-command of the ``leanworker`` CLI."""
    add_arguments(parser)
    parser.set_defaults(handler=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leanworker serve", description="A proof-checking service over warm Lean "
                                     "REPLs: Kimina-compatible endpoints and a streaming native one (docs/serve.md).")
    add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="the start line as one JSON object (default: off)")
    args = parser.parse_args(argv)
    return run(args)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run(args: argparse.Namespace) -> int:
    """Start the service, serve until SIGTERM or Ctrl-C, drain; the exit status (0, or 2 when it cannot start).

    A SIGTERM or Ctrl-C that comes while it starts is kept, not lost: before the server exists it is noted, and the
    server stops as soon as it has started (its drain, then exit 0); until uvicorn puts its own handlers in place
    (and once it has restored them, when it raises again the signal that stopped it) the handler stops the server."""
    stops: list[int] = []
    previous: dict[int, Any] = {sig: signal.signal(sig, lambda sig, _: stops.append(sig)) for sig in STOP_SIGNALS}
    try:
        return _start_and_serve(args, stops)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_and_serve(args: argparse.Namespace, stops: list[int]) -> int:
    try:
        import uvicorn
    except ImportError:
        return cannot_start(args, "needs the serve extra: pip install 'leanworker[serve]'")
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config, keys = config_from(args)
        repl = repl_command(config)
        sandbox = sandbox_state(config)
        sock = bind(config.host, config.port)
    except StartError as exc:
        return cannot_start(args, str(exc))
    from leanworker.lean import find_toolchain
    from leanworker.serve.app import create_app
    from leanworker.serve.pool_checker import PoolChecker
    from leanworker.serve.server import DrainingServer

    try:
        tracer_provider, pool_tracer = tracing(args.otel)
    except StartError as exc:
        sock.close()
        return cannot_start(args, str(exc))
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    toolchain = find_toolchain(config.workspace).fingerprint if config.workspace else None
    worker, restart = worker_settings(config, repl)
    checker = PoolChecker(repl, workers=config.workers, workspace=config.workspace, toolchain=toolchain,
                          simulated=config.simulated, import_timeout=config.max_timeout, worker=worker,
                          restart=restart, trace=pool_tracer)

    def ready() -> None:
        if getattr(args, "json", False):
            print(json.dumps(start_record(config, url, keys, repl, sandbox)), flush=True)
        else:
            print(start_line(config, url, keys, repl, sandbox), flush=True)

    try:
        app = create_app(config, checker, keys, on_ready=ready, tracer_provider=tracer_provider)
    except (OSError, sqlite3.Error) as exc:  # opening the results cache: a path that cannot hold it, not a database
        sock.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return cannot_start(args, f"cannot open the cache {config.cache_path}: {reason}")
    server = DrainingServer.for_app(app, config, args.log_level)

    def stop(sig: int, _: Any) -> None:
        server.should_exit = True  # what uvicorn's handler does; it is only ever set, never cleared, here

    # From here until uvicorn's handlers are in place a signal stops the server; after the drain uvicorn raises again
    # the signal that stopped it, which this handler takes too, so a drained service exits 0.
    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)
    if stops:  # a signal that came before the server existed: it stops as soon as it has started
        server.should_exit = True
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0 if server.started else 2


def tracing(enabled: bool) -> tuple[Any, Any]:
    """With ``--otel``: OpenTelemetry's global tracer provider (for the HTTP spans) and a pool tracer on it."""
    if not enabled:
        return None, None
    try:
        from opentelemetry import trace

        from leanworker.telemetry import OpenTelemetryTracer
    except ImportError:
        raise StartError("--otel needs the otel extra: pip install 'leanworker[serve,otel]'") from None
    provider = trace.get_tracer_provider()
    return provider, OpenTelemetryTracer(provider)
