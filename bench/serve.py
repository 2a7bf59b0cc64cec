"""``leanworker serve`` beside the Kimina Lean Server, on the REPL SIMULATOR (no Lean): ``python -m bench.serve``.

One load generator (aiohttp, one connection per concurrent client, keep-alive) posts one-snippet ``/api/check``
requests, every snippet with the same import header, to each server in one run: every server is started first, then
they take turns at each load (so a change in the shared machine's load weighs on all alike; each row says the load
average at its end):

- a clean run of ``--requests`` requests at each ``--concurrency`` (default 8 and 32): checks/s, p50, p99, failures;
- the fault mix: the same with 1% snippets that crash the REPL and 1% that hang it, and a 5 s timeout; beside the
  figure, the bound N / (H x T / R + N / C) (N requests, H of them hanging, T the timeout, R REPLs, C the server's
  clean rate at that concurrency) and the share of it reached;
- with ``--memory-checks N`` (leanworker only): N more clean checks at concurrency 32, the server process's RSS
  sampled after each tenth of them (is its memory flat?).

A *failure* is a request that did not come back as HTTP 200 with one result for its snippet, or a clean snippet
whose verdict is not "valid" (the simulator answers every clean snippet without a message). Crashing and hanging
snippets may come back with any ``error``. Every snippet is unique (a run nonce), so no results cache can answer it.

The servers: the Kimina Lean Server 2.1.3, set up by ``../shared/peers/kimina/setup.sh`` into ``--kimina-dir``
(default: ``kimina-peer`` beside this checkout) driving this interpreter's REPL simulator, skipped with a message when
it cannot be set up; ``leanworker serve`` once ``leanworker.serve`` exists (``--simulator``, same REPL count, no
cache), once per ``--sandbox`` mode asked (``--sandbox auto none``: with its workers under bubblewrap, then
without); with ``--baseline``, a trivial Starlette endpoint under uvicorn (what this machine and load generator can do
at all). Both Lean servers get ``--repls`` REPLs (default 2). The table is printed and written to
``bench/results/serve.md`` (the README's), the figures to ``bench/results/serve.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parent.parent
RESULTS = CHECKOUT / "bench" / "results"
SIMULATOR = f"{sys.executable} -m leanworker.fixtures.repl_sim"
HEADER = "import Mathlib\nimport Aesop"
FAULT_TIMEOUT = 5
CLEAN_TIMEOUT = 30


# -- the load -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snippet:
    id: str
    code: str
    kind: str  # "clean", "crash" or "hang"


def snippets(requests: int, crash_rate: float, hang_rate: float, seed: int) -> list[Snippet]:
    """``requests`` unique snippets with one header; ``crash_rate``/``hang_rate`` of them misbehave (seeded)."""
    nonce = uuid.uuid4().hex[:8]
    rng = random.Random(seed)
    crashes = round(requests * crash_rate)
    hangs = round(requests * hang_rate)
    picked = rng.sample(range(requests), crashes + hangs)
    kinds = dict.fromkeys(range(requests), "clean")
    kinds.update((i, "crash") for i in picked[:crashes])
    kinds.update((i, "hang") for i in picked[crashes:])
    words = {"clean": "trivial", "crash": "by CRASH", "hang": "by HANG"}
    return [Snippet(f"{nonce}-{i}", f"{HEADER}\n\ntheorem t_{nonce}_{i} : True := {words[kinds[i]]}", kinds[i])
            for i in range(requests)]


@dataclass
class LoadResult:
    requests: int
    concurrency: int
    seconds: float
    checks_per_s: float
    p50_ms: float
    p99_ms: float
    failures: int
    failure_examples: list[str] = field(default_factory=list)


def judge(snippet: Snippet, status: int, body: Any) -> str | None:
    """Why this answer is a failure, or None when it is a good one."""
    if status != 200:
        return f"HTTP {status}: {str(body)[:200]}"
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or len(results) != 1 or results[0].get("id") != snippet.id:
        return f"not one result for {snippet.id}: {str(body)[:200]}"
    if snippet.kind != "clean":
        return None
    result = results[0]
    response = result.get("response")
    if result.get("error") is not None or not isinstance(response, dict) or "message" in response:
        return f"clean snippet answered {str(result)[:200]}"
    if any(m.get("severity") == "error" for m in response.get("messages") or []) or response.get("sorries"):
        return f"clean snippet not valid: {str(result)[:200]}"
    return None


async def load(url: str, work: list[Snippet], concurrency: int, timeout: int, headers: dict[str, str]) -> LoadResult:
    """Post each snippet as one ``/api/check`` request, ``concurrency`` at a time (closed loop)."""
    import aiohttp

    latencies: list[float] = []
    failures: list[str] = []
    queue = iter(work)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout * 4 + 60)

    async def client(session: aiohttp.ClientSession) -> None:
        for snippet in queue:
            payload = {"snippets": [{"id": snippet.id, "code": snippet.code}], "timeout": timeout}
            started = time.perf_counter()
            try:
                async with session.post(url + "/api/check", json=payload, headers=headers) as response:
                    status = response.status
                    text = await response.text()
                body: Any = json.loads(text) if status == 200 else text
                problem = judge(snippet, status, body)
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            latencies.append(time.perf_counter() - started)
            if problem is not None:
                failures.append(problem)

    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    return LoadResult(len(work), concurrency, round(seconds, 3), round(len(work) / seconds, 1),
                      round(statistics.median(ordered) * 1000, 2),
                      round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
                      len(failures), failures[:3])


def bound(requests: int, hangs: int, timeout: float, repls: int, clean_rate: float) -> float:
    """The best checks/s possible when ``hangs`` requests each hold one of ``repls`` REPLs for ``timeout``."""
    return requests / (hangs * timeout / repls + requests / clean_rate)


# -- the servers ----------------------------------------------------------------------------------------------------


class Skipped(Exception):
    """A server that cannot run here; the message says why."""


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    headers: dict[str, str] = field(default_factory=dict)

    def rss_mib(self) -> float | None:
        """The server process's own RSS (its REPLs hold what the REPL holds: every env, by the REPL's design)."""
        try:
            import psutil

            return round(psutil.Process(self.process.pid).memory_info().rss / 2**20, 1)
        except Exception:
            return None

    def stop(self) -> None:
        """SIGTERM (each server stops its REPLs), then SIGKILL of everything it started that is left."""
        import psutil

        try:
            tree = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.Error:
            tree = []
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for process in tree:
            try:
                process.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(tree, timeout=5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(server: Server, seconds: float) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise Skipped(f"{server.name} exited with status {server.process.returncode} at start")
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise Skipped(f"{server.name} did not answer /health within {seconds:g} s")


def start_kimina(directory: Path, repls: int, log: Path) -> Server:
    """The Kimina Lean Server set up by the peer recipe in ``directory`` (set up now if it is not there)."""
    setup = CHECKOUT.parent / "shared" / "peers" / "kimina" / "setup.sh"
    start = directory / "start.sh"
    if not start.exists():
        if not setup.exists():
            raise Skipped(f"no peer recipe at {setup}")
        print(f"setting up the Kimina Lean Server in {directory} (once) ...", file=sys.stderr)
        done = subprocess.run(["bash", str(setup), str(directory), SIMULATOR], capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            raise Skipped(f"the Kimina Lean Server could not be set up: {' '.join(tail)}")
    # the recipe's REPL stand-in runs the REPL command it was given: point it at this interpreter's simulator
    (directory / "bin" / "repl").write_text(f"#!/bin/sh\nexec {SIMULATOR}\n")
    port = free_port()
    env = {**os.environ, "PORT": str(port), "MAX_REPLS": str(repls), "LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(["sh", str(start)], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    server = Server("Kimina Lean Server 2.1.3", f"http://127.0.0.1:{port}", process)
    wait_healthy(server, 60)
    return server


def leanworker_name(sandbox: str) -> str:
    sandboxed = sandbox != "none" and shutil.which("bwrap") is not None
    return "leanworker serve, sandboxed" if sandboxed else "leanworker serve, no sandbox"


def start_leanworker(repls: int, log: Path, sandbox: str = "auto") -> Server:
    """``python -m leanworker.serve --simulator`` on a free port, read from its start line."""
    try:
        import leanworker.serve  # noqa: F401
    except ImportError as exc:
        raise Skipped(f"leanworker serve is not available here ({exc}); pip install 'leanworker[serve]'") from None
    argv = [sys.executable, "-m", "leanworker.serve", "--simulator", "--workers", str(repls), "--port", "0",
            "--no-cache", "--log-level", "warning", "--sandbox", sandbox]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log.open("wb"), start_new_session=True)
    assert process.stdout is not None
    line = process.stdout.readline().decode(errors="replace")
    url = next((word for word in line.split() if word.startswith("http://")), None)
    if url is None:
        process.kill()
        process.wait()
        raise Skipped(f"leanworker serve did not print where it listens: {line.strip()!r} (log: {log})")
    server = Server(leanworker_name(sandbox), url.rstrip(",;."), process)
    wait_healthy(server, 60)
    return server


async def trivial_app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """A trivial endpoint (the machine's ceiling), via Starlette: reads the JSON body, answers each snippet "ok"."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    if scope["type"] != "http":
        return
    request = Request(scope, receive)
    if request.url.path == "/health":
        await JSONResponse({"status": "ok"})(scope, receive, send)
        return
    body = json.loads(await request.body())
    results = [{"id": s["id"], "time": 0.0, "response": {"env": 0}} for s in body["snippets"]]
    await JSONResponse({"results": results})(scope, receive, send)


def start_baseline(log: Path) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.serve:trivial_app", "--port", str(port), "--log-level",
            "warning", "--no-access-log"]
    process = subprocess.Popen(argv, cwd=CHECKOUT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    server = Server("trivial Starlette endpoint", f"http://127.0.0.1:{port}", process)
    wait_healthy(server, 30)
    return server


# -- the run --------------------------------------------------------------------------------------------------------


@dataclass
class Row:
    server: str
    mix: str
    concurrency: int
    result: LoadResult | None = None
    bound_checks_per_s: float | None = None
    rss_mib: tuple[float | None, float | None] = (None, None)
    note: str = ""
    load: str = ""  # the 1-minute load average when the row ended


def measure_clean(server: Server, args: argparse.Namespace, concurrency: int) -> Row:
    asyncio.run(load(server.url, snippets(20, 0, 0, args.seed), min(concurrency, 4), CLEAN_TIMEOUT, server.headers))
    before = server.rss_mib()
    clean = asyncio.run(load(server.url, snippets(args.requests, 0, 0, args.seed), concurrency, CLEAN_TIMEOUT,
                             server.headers))
    print(f"  {server.name}, clean, concurrency {concurrency}: {clean.checks_per_s} checks/s, "
          f"p50 {clean.p50_ms} ms, p99 {clean.p99_ms} ms, {clean.failures} failures", file=sys.stderr)
    return Row(server.name, "clean", concurrency, clean, None, (before, server.rss_mib()), load=load_average())


def measure_faults(server: Server, args: argparse.Namespace, concurrency: int, clean_rate: float) -> Row:
    work = snippets(args.requests, args.fault_rate, args.fault_rate, args.seed)
    hangs = sum(1 for s in work if s.kind == "hang")
    before = server.rss_mib()
    faulty = asyncio.run(load(server.url, work, concurrency, FAULT_TIMEOUT, server.headers))
    best = bound(args.requests, hangs, FAULT_TIMEOUT, args.repls, clean_rate)
    print(f"  {server.name}, faults, concurrency {concurrency}: {faulty.checks_per_s} checks/s "
          f"(bound {best:.1f}), p50 {faulty.p50_ms} ms, p99 {faulty.p99_ms} ms, {faulty.failures} failures",
          file=sys.stderr)
    return Row(server.name, f"{args.fault_rate:.0%} crash + {args.fault_rate:.0%} hang, {FAULT_TIMEOUT} s",
               concurrency, faulty, round(best, 1), (before, server.rss_mib()), load=load_average())


def measure(servers: list[tuple[Server, bool]], args: argparse.Namespace) -> list[Row]:
    """Every row, the servers taking turns at each load (so that a change in the shared machine's load between
    rows weighs on all of them alike), then grouped by server."""
    rows: list[Row] = []
    for concurrency in args.concurrency:
        clean = {server.name: measure_clean(server, args, concurrency) for server, _ in servers}
        rows += clean.values()
        if args.faults:
            rows += [measure_faults(server, args, concurrency, clean[server.name].result.checks_per_s)  # type: ignore
                     for server, baseline in servers if not baseline]
    order = [server.name for server, _ in servers]
    return sorted(rows, key=lambda row: order.index(row.server))


@dataclass
class MemoryRun:
    server: str
    checks: int
    concurrency: int
    rss_mib: list[float | None]  # before, then after each tenth of the checks
    failures: int
    checks_per_s: float


def measure_memory(server: Server, checks: int, seed: int, concurrency: int = 32) -> MemoryRun:
    """``checks`` clean one-snippet checks in ten slices, the server's RSS after each."""
    rss = [server.rss_mib()]
    failures = 0
    started = time.perf_counter()
    slice_size = max(1, checks // 10)
    for part in range(10):
        work = snippets(slice_size, 0, 0, seed + 1000 + part)
        result = asyncio.run(load(server.url, work, concurrency, CLEAN_TIMEOUT, server.headers))
        failures += result.failures
        rss.append(server.rss_mib())
        print(f"  {server.name}, memory: {(part + 1) * slice_size} checks, RSS {rss[-1]} MiB", file=sys.stderr)
    rate = round(slice_size * 10 / (time.perf_counter() - started), 1)
    return MemoryRun(server.name, slice_size * 10, concurrency, rss, failures, rate)


def load_average() -> str:
    """The 1-minute load average now (the machine is shared: say what the figures ran beside)."""
    return f"{os.getloadavg()[0]:.1f}"


def table(rows: list[Row], args: argparse.Namespace, loads: tuple[str, str] = ("?", "?"),
          memory: list[MemoryRun] | None = None, command: str = "python -m bench.serve") -> str:
    kimina = {(r.mix, r.concurrency): r.result.checks_per_s for r in rows
              if r.server.startswith("Kimina") and r.result is not None}
    lines = [f"REPL SIMULATOR (not Lean), {args.repls} REPLs, {args.requests} one-snippet /api/check requests per "
             f"row, one header; `{command}` on {os.cpu_count()} cores, 1-minute load average {loads[0]} at the "
             f"start and {loads[1]} at the end (a shared machine)",
             "",
             "| server | snippets | concurrency | checks/s | vs Kimina | p50 ms | p99 ms | failures | of the bound "
             "| server process RSS MiB, before -> after | load average at the row's end |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        if row.result is None:
            lines.append(f"| {row.server} | {row.mix} | {row.concurrency} | skipped: {row.note} | | | | | | | |")
            continue
        peer = kimina.get((row.mix, row.concurrency))
        ratio = f"{row.result.checks_per_s / peer:.1f}x" if peer and not row.server.startswith("Kimina") else ""
        share = (f"{row.result.checks_per_s / row.bound_checks_per_s:.0%} of {row.bound_checks_per_s}"
                 if row.bound_checks_per_s else "")
        rss = " -> ".join(str(v) for v in row.rss_mib) if row.rss_mib[0] is not None else ""
        lines.append(f"| {row.server} | {row.mix} | {row.concurrency} | {row.result.checks_per_s} | {ratio} | "
                     f"{row.result.p50_ms} | {row.result.p99_ms} | {row.result.failures} | {share} | {rss} | "
                     f"{row.load} |")
    for run in memory or []:
        samples = [v for v in run.rss_mib if v is not None]
        lines += ["", f"Memory, {run.server}: {run.checks:,} more one-snippet checks at concurrency {run.concurrency} "
                      f"({run.checks_per_s} checks/s, {run.failures} failures): server process RSS "
                      f"{' -> '.join(f'{v:g}' for v in samples)} MiB, after each tenth"
                      + (f" (max {max(samples):g}, growth {samples[-1] - samples[0]:+.1f})" if samples else "")]
    return "\n".join(lines) + "\n"



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per row (default 2000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32], help="default: 8 32")
    parser.add_argument("--repls", type=int, default=2, help="REPLs (workers) of each server (default 2)")
    parser.add_argument("--fault-rate", type=float, default=0.01, help="share crashing, and as many hanging")
    parser.add_argument("--no-faults", dest="faults", action="store_false", help="clean runs only")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--servers", nargs="+", default=["kimina", "leanworker"],
                        choices=["kimina", "leanworker"], help="which servers (default both)")
    parser.add_argument("--baseline", action="store_true", help="also a trivial Starlette endpoint")
    parser.add_argument("--kimina-dir", type=Path, default=CHECKOUT.parent / "kimina-peer")
    parser.add_argument("--sandbox", choices=["auto", "none"], nargs="+", default=["auto"],
                        help="leanworker serve's --sandbox, one server each (default auto: bubblewrap where "
                             "installed; auto none: both)")
    parser.add_argument("--memory-checks", type=int, default=0, metavar="N",
                        help="then N more checks on each leanworker server, its RSS after each tenth (default 0)")
    parser.add_argument("--no-save", dest="save", action="store_false", help="do not write bench/results/")
    args = parser.parse_args(argv)
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        print("bench.serve needs aiohttp: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"leanworker-bench-serve-{os.getpid()}"
    logs.mkdir(parents=True, exist_ok=True)
    starters: list[tuple[str, Callable[[], Server], bool]] = []
    if args.baseline:
        starters.append(("trivial Starlette endpoint", lambda: start_baseline(logs / "baseline.log"), True))
    if "kimina" in args.servers:
        starters.append(("Kimina Lean Server 2.1.3",
                         lambda: start_kimina(args.kimina_dir, args.repls, logs / "kimina.log"), False))
    if "leanworker" in args.servers:
        for mode in args.sandbox:
            starters.append((leanworker_name(mode), functools.partial(start_leanworker, args.repls,
                                                                       logs / f"leanworker-{mode}.log", mode), False))
    rows: list[Row] = []
    memory: list[MemoryRun] = []
    load_at_start = load_average()
    servers: list[tuple[Server, bool]] = []
    try:
        for name, start, baseline in starters:
            print(f"{name} ...", file=sys.stderr)
            try:
                servers.append((start(), baseline))
            except Skipped as skipped:
                print(f"  skipped: {skipped}", file=sys.stderr)
                rows.append(Row(name, "all", 0, note=str(skipped)))
        rows += measure(servers, args)
        for server, _ in servers:
            if args.memory_checks and server.name.startswith("leanworker"):
                memory.append(measure_memory(server, args.memory_checks, args.seed))
    finally:
        for server, _ in servers:
            server.stop()
    command = shlex.join(["python", "-m", "bench.serve", *(sys.argv[1:] if argv is None else argv)])
    text = table(rows, args, (load_at_start, load_average()), memory, command)
    print(text)
    if args.save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "serve.md").write_text(text)
        (RESULTS / "serve.json").write_text(json.dumps({"rows": [asdict(r) for r in rows],
                                                        "memory": [asdict(m) for m in memory]}, indent=1) + "\n")
    shutil.rmtree(logs, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
