"""The soak: ``python -m bench.soak --minutes M --fault-rate F --seed S``.

One pool (``lw.AsyncWorkerPool``; its ``threaded`` face for the threads) serves asyncio tasks and threads at once
for M minutes: calls, streams (some consumed slowly), cancels (``stream.cancel()`` and cancelled tasks), leases
dropped without release, session keys that come and go (a window of keys that moves, some with a slow session
open), and faults at rate F per request (a crash, a hang past the request timeout, memory over the hard limit,
garbage on the pipe, a slow session open). Every request is checked: it ends in exactly one typed outcome (the
caller's count of outcomes must equal the pool's own), and every row of every successful stream arrived exactly once
and in order. Once a minute (``--interval``) the clients pause at an op boundary, the pool settles on its
``max_workers`` workers, and one JSON line gives the minute's requests, outcomes, restarts by reason, latency
p50/p99, and the parent's RSS, threads, file descriptors and live children. The last line is the verdict: ``lost``
(requests without a typed outcome, rows lost, duplicated or out of order, results that came back wrong, requests
that never ended) and the drift of RSS, threads and fds from the second sample to the last (flat: RSS within
16 MiB, threads and fds within 2, no live child beyond the pool's).

Faults are injected inside real worker processes with ``leanworker.testing``: a ``FaultPlan`` wraps every work key,
and the parent decides at each request's admission (seeded, so a run replays) whether it crashes its worker (exit,
signal, abort), hangs (honouring cancel or not), grows past the hard memory limit, or writes garbage on the pipe,
each with an equal share of the rate; slow session opens come from keys of their own (``import_ms``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

import leanworker as lw
from leanworker.testing import Fault, FaultPlan

THROUGHPUT = "leanworker.fixtures.throughput:capability"
KEY_VARIANTS = 6  # session keys in rotation; a window of WINDOW of them is live at a time
WINDOW = 2
SLOW_OPEN_MS = 400  # every third key opens its session slowly
HARD_LIMIT_MIB = 256
KIT_RULES: tuple[tuple[str, dict[str, Any]], ...] = (  # (kind, params): each gets an equal share of the rate
    ("crash", {"how": "exit"}), ("crash", {"how": "signal", "after_rows": 1}), ("crash", {"how": "abort"}),
    ("hang", {}), ("hang", {"ignore_cancel": True}), ("memory", {"mib": HARD_LIMIT_MIB + 64}), ("garbage", {}),
)
SLOW_OPEN_SHARE = 1 / (len(KIT_RULES) + 1)  # of the rate: ops that open a slow session (a fault of their own)
OUTCOME_OF: dict[type[BaseException], str] = {  # the typed errors that end a request, by outcome
    lw.CommandError: "error", lw.Cancelled: "cancelled", lw.RequestTimeout: "timeout",
    lw.WorkerCrashed: "crashed", lw.MemoryLimitExceeded: "memory", lw.ProtocolError: "protocol",
    lw.WorkerClosed: "shutdown",
}
REFUSED = (lw.RequestRefused, lw.RestartLimitExceeded)  # nothing was sent: not a request


def outcome_of(error: BaseException) -> str | None:
    for kind, outcome in OUTCOME_OF.items():
        if isinstance(error, kind):
            return outcome
    return None


# -- what happened ---------------------------------------------------------------------------------------------


@dataclass
class Ledger:
    """Every request's outcome as its caller saw it, and what went wrong (shared by threads and tasks)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    outcomes: Counter[str] = field(default_factory=Counter)  # requests by terminal outcome
    refused: Counter[str] = field(default_factory=Counter)  # refusals (nothing sent), by error
    faults: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # this interval's, seconds
    interval_outcomes: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    rows_checked: int = 0
    in_flight: int = 0

    def ended(self, outcome: str, seconds: float) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            self.interval_outcomes[outcome] += 1
            self.latencies.append(seconds)

    def refuse(self, error: BaseException) -> None:
        with self.lock:
            self.refused[type(error).__name__] += 1

    def lose(self, what: str) -> None:
        with self.lock:
            self.lost.append(what)
        print(json.dumps({"lost": what}), file=sys.stderr, flush=True)

    def take_interval(self) -> tuple[Counter[str], list[float]]:
        with self.lock:
            outcomes, self.interval_outcomes = self.interval_outcomes, Counter()
            latencies, self.latencies = self.latencies, []
        return outcomes, latencies


def check_rows(ledger: Ledger, rows: list[lw.Row], expected: int, where: str) -> None:
    """A successful stream's rows: exactly ``expected``, seq 0.. in order, each payload naming its own seq."""
    if len(rows) != expected or any(r.seq != i or r.payload["i"] != i for i, r in enumerate(rows)):
        ledger.lose(f"{where}: {len(rows)} rows of {expected}, not each once and in order")
    else:
        with ledger.lock:
            ledger.rows_checked += expected


# -- the workload -----------------------------------------------------------------------------------------------


class Keys:
    """The live window of session keys: it moves every ``period`` seconds, so keys come and go."""

    def __init__(self, period: float, plan: FaultPlan) -> None:
        self.period = period
        self.started = time.monotonic()
        self._keys = []  # the work keys, wrapped by the fault plan (made once: a wrapped key is plain data)
        for n in range(KEY_VARIANTS):
            options: tuple[tuple[str, Any], ...] = (("import_ms", SLOW_OPEN_MS),) if n % 3 == 2 else ()
            self._keys.append(plan.wrap(lw.SessionKey(THROUGHPUT, imports=(f"Soak{n}",), options=options)))

    def work(self, rng: random.Random) -> lw.SessionKey:
        base = int((time.monotonic() - self.started) / self.period)
        return self._keys[(base + rng.randrange(WINDOW)) % KEY_VARIANTS]


ANCHOR = lw.SessionKey(THROUGHPUT, imports=("SoakAnchor",))
SLOW_OPEN = lw.SessionKey(THROUGHPUT, imports=("SoakSlowOpen",), options=(("import_ms", 1500),))
OPS = (("call", 40), ("stream", 25), ("slow_stream", 5), ("cancel", 15), ("abandon", 5), ("task_cancel", 10))


@dataclass
class Op:
    """One operation a client runs: a kind, and the request it sends (or the fault it injects)."""

    kind: str
    key: lw.SessionKey
    command: str
    request: Any
    rows: int = 0
    cancel_after: int = 0
    fault: str | None = None


def fired_by_kind(plan: FaultPlan) -> Counter[str]:
    return Counter(fired.kind for fired in plan.fired())


def fault_plan(rate: float, seed: int) -> FaultPlan:
    """The request faults, each rule with the probability that makes ``rate`` the chance a request gets one."""
    share = 1 - (1 - rate * (1 - SLOW_OPEN_SHARE)) ** (1 / len(KIT_RULES))
    return FaultPlan([Fault(kind, probability=share, **params) for kind, params in KIT_RULES], seed=seed)


def choose(rng: random.Random, keys: Keys, fault_rate: float, asynchronous: bool, ledger: Ledger) -> Op:
    if rng.random() < fault_rate * SLOW_OPEN_SHARE:
        with ledger.lock:
            ledger.faults["slow_open"] += 1
        return Op("call", SLOW_OPEN, "echo", {"slow": True}, fault="slow_open")
    kinds = [k for k, _ in OPS if asynchronous or k != "task_cancel"]
    weights = [w for k, w in OPS if asynchronous or k != "task_cancel"]
    kind = rng.choices(kinds, weights)[0]
    key = keys.work(rng)
    if kind in ("call", "abandon"):
        return Op(kind, key, "echo", {"n": rng.randrange(1 << 30), "pad": "x" * rng.randrange(200)})
    if kind == "stream":
        count = rng.choice((10, 300, 3000, 20000))
        return Op(kind, key, "rows", {"count": count, "payload_bytes": 16}, rows=count)
    if kind == "slow_stream":
        return Op(kind, key, "rows", {"count": 2000, "payload_bytes": 64}, rows=2000)
    return Op(kind, key, "rows", {"count": 10_000_000, "payload_bytes": 8}, cancel_after=rng.randrange(1, 2000))


def settle_outcome(ledger: Ledger, op: Op, started: float, outcome: str | None, where: str) -> None:
    if outcome is None:
        ledger.lose(f"{where}: {op.kind} {op.command} ended with no outcome")
    else:
        ledger.ended(outcome, time.monotonic() - started)


def failed(ledger: Ledger, op: Op, started: float, error: BaseException, where: str) -> None:
    """A request (or its lease) ended in ``error``: a typed outcome, a refusal, or a loss."""
    if isinstance(error, REFUSED):
        ledger.refuse(error)
        return
    outcome = outcome_of(error)
    if outcome is None:
        ledger.lose(f"{where}: {op.kind} {op.command} raised {type(error).__name__}: {error}")
    else:
        ledger.ended(outcome, time.monotonic() - started)


SETTLED = object()  # an operation whose outcome is already in the ledger (a cancel's)


def streamed(ledger: Ledger, op: Op, started: float, outcome: str | None, committed: bool, rows: list[lw.Row],
             where: str) -> Any:
    """A stream read to its end: a cancel settles on its outcome; any other stream's rows are checked, and it
    returns its request when committed (so that ``ended`` counts it ok)."""
    if op.kind == "cancel":
        settle_outcome(ledger, op, started, outcome, where)
        return SETTLED
    check_rows(ledger, rows, op.rows, where)
    return op.request if committed else None


def ended(ledger: Ledger, op: Op, started: float, where: str, result: Any = SETTLED,
          error: Exception | None = None) -> None:
    """An operation's end in the ledger: a typed outcome, a refusal or a loss for an error; else ok (an echo that
    came back changed is a loss as well)."""
    if isinstance(error, lw.LeanWorkerError):
        failed(ledger, op, started, error, where)
    elif error is not None:
        ledger.lose(f"{where}: {op.kind} raised {type(error).__name__}: {error}")
    elif result is not SETTLED:
        if op.command == "echo" and result != op.request:
            ledger.lose(f"{where}: echo returned {result!r}")
        ledger.ended("ok", time.monotonic() - started)


# -- threaded clients -------------------------------------------------------------------------------------------


def run_sync_op(pool: lw.WorkerPool, op: Op, ledger: Ledger, where: str) -> None:
    started = time.monotonic()
    try:
        result = sync_op(pool, op, ledger, where, started)
    except Exception as error:  # noqa: BLE001 (every error is reported: a typed outcome, a refusal or a loss)
        ended(ledger, op, started, where, error=error)
    else:
        ended(ledger, op, started, where, result)


def sync_op(pool: lw.WorkerPool, op: Op, ledger: Ledger, where: str, started: float) -> Any:
    if op.kind == "abandon":
        lease = pool.lease(op.key)
        result = lease.call(op.command, op.request)
        del lease  # dropped without release: the collector returns its worker
        return result
    with pool.lease(op.key) as held:
        if op.kind == "call":
            return held.call(op.command, op.request)
        with held.stream(op.command, op.request) as stream:
            rows: list[lw.Row] = []
            for row in stream:
                rows.append(row)
                if op.kind == "slow_stream" and row.seq % 50 == 0:
                    time.sleep(0.002)
                if op.cancel_after and row.seq == op.cancel_after:
                    stream.cancel()
        return streamed(ledger, op, started, stream.outcome, stream.committed, rows, where)


# -- asyncio clients --------------------------------------------------------------------------------------------


async def run_async_op(pool: lw.AsyncWorkerPool, op: Op, ledger: Ledger, where: str) -> None:
    started = time.monotonic()
    try:
        result = await async_op(pool, op, ledger, where, started)
    except Exception as error:  # noqa: BLE001
        ended(ledger, op, started, where, error=error)
    else:
        ended(ledger, op, started, where, result)


async def async_op(pool: lw.AsyncWorkerPool, op: Op, ledger: Ledger, where: str, started: float) -> Any:
    if op.kind == "abandon":
        lease = await pool.lease(op.key)
        result = await lease.call(op.command, op.request)
        del lease
        return result
    async with pool.lease(op.key) as held:
        if op.kind == "call":
            return await held.call(op.command, op.request)
        if op.kind == "task_cancel":
            stream = held.stream(op.command, op.request)
            seen = asyncio.Event()

            async def consume() -> None:
                async for row in stream:
                    if row.seq == op.cancel_after:
                        seen.set()

            task = asyncio.create_task(consume())
            waiting = asyncio.create_task(seen.wait())
            await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            await held.release()  # waits for the cancelled request's end
            settle_outcome(ledger, op, started, stream.outcome, where)
            return SETTLED
        async with held.stream(op.command, op.request) as stream:
            rows: list[lw.Row] = []
            async for row in stream:
                rows.append(row)
                if op.kind == "slow_stream" and row.seq % 50 == 0:
                    await asyncio.sleep(0.002)
                if op.cancel_after and row.seq == op.cancel_after:
                    stream.cancel()
        return streamed(ledger, op, started, stream.outcome, stream.committed, rows, where)


# -- pausing at a sample --------------------------------------------------------------------------------------


class Pause:
    """Lets the sampler stop every client at an op boundary (threads and tasks), and start them again."""

    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.wanted = False
        self.parked = 0
        self.lock = threading.Lock()
        self.resume_threads = threading.Event()
        self.resume_threads.set()
        self.resume_tasks: asyncio.Event | None = None

    def park_thread(self) -> None:
        if self.wanted:
            with self.lock:
                self.parked += 1
            self.resume_threads.wait()
            with self.lock:
                self.parked -= 1

    async def park_task(self) -> None:
        if self.wanted:
            assert self.resume_tasks is not None
            with self.lock:
                self.parked += 1
            await self.resume_tasks.wait()
            with self.lock:
                self.parked -= 1


# -- the run ----------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    rss_mib: float
    threads: int
    fds: int
    children: int


def sample_parent() -> Sample:
    me = psutil.Process()
    children = [p for p in me.children() if p.status() != psutil.STATUS_ZOMBIE]
    return Sample(round(me.memory_info().rss / 2**20, 1), me.num_threads(), me.num_fds(), len(children))


async def settle(pool: lw.AsyncWorkerPool, workers: int, ledger: Ledger) -> None:
    """Bring the pool to a canonical state: ``workers`` ready workers of the anchor key, nothing else alive."""
    gc.collect()  # leases dropped without release go back now
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        snapshot = pool.snapshot()
        if snapshot.leases == 0 and snapshot.starting == 0 and snapshot.stopping == 0:
            break
        await asyncio.sleep(0.02)
    anchors = [await pool.lease(ANCHOR, timeout=60) for _ in range(workers)]
    while time.monotonic() < deadline:
        snapshot = pool.snapshot()
        if snapshot.stopping == 0 and snapshot.starting == 0 and snapshot.workers == workers:
            break
        await asyncio.sleep(0.02)
    for anchor in anchors:
        started = time.monotonic()
        await anchor.call("echo")
        ledger.ended("ok", time.monotonic() - started)
    gc.collect()
    for anchor in anchors:
        await anchor.release()


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    duration = args.seconds if args.seconds is not None else args.minutes * 60
    interval = args.interval
    config = lw.PoolConfig(
        max_workers=args.workers, queue_wait_timeout=60.0, memory_sample_interval=0.1,
        worker=lw.WorkerConfig(startup_timeout=15.0, request_timeout=2.0, cancel_grace=0.5, shutdown_timeout=1.0,
                               kill_wait=2.0, buffer_rows=1024),
        restart=lw.RestartPolicy(rss_hard_limit_mib=HARD_LIMIT_MIB, max_restarts=120, restart_window=60.0))
    ledger = Ledger()
    plan = fault_plan(args.fault_rate, args.seed)
    keys = Keys(max(5.0, interval / 4), plan)
    clients = args.threads + args.tasks
    pause = Pause(clients)
    pause.resume_tasks = asyncio.Event()
    pause.resume_tasks.set()
    stop = threading.Event()
    samples: list[Sample] = []
    lines: list[dict[str, Any]] = []
    started = time.monotonic()
    pool = lw.AsyncWorkerPool(config)
    previous = pool.snapshot()
    fired_before: Counter[str] = Counter()

    def thread_client(index: int) -> None:
        rng = random.Random(f"{args.seed}-thread-{index}")
        while not stop.is_set():
            pause.park_thread()
            if stop.is_set():
                break
            run_sync_op(pool.threaded, choose(rng, keys, args.fault_rate, False, ledger), ledger, f"thread{index}")
            time.sleep(rng.random() * args.think_ms / 1000)

    async def task_client(index: int) -> None:
        rng = random.Random(f"{args.seed}-task-{index}")
        while not stop.is_set():
            await pause.park_task()
            if stop.is_set():
                break
            await run_async_op(pool, choose(rng, keys, args.fault_rate, True, ledger), ledger, f"task{index}")
            await asyncio.sleep(rng.random() * args.think_ms / 1000)

    async def take_sample(number: int) -> None:
        nonlocal previous
        pause.wanted = True
        assert pause.resume_tasks is not None
        pause.resume_threads.clear()
        pause.resume_tasks.clear()
        deadline = time.monotonic() + 120
        while pause.parked < clients and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if pause.parked < clients:
            ledger.lose(f"sample {number}: {clients - pause.parked} clients never reached an op boundary")
        await settle(pool, args.workers, ledger)
        parent = sample_parent()
        samples.append(parent)
        snapshot = pool.snapshot()
        outcomes, latencies = ledger.take_interval()
        latencies.sort()
        restarts = {r: n - previous.restarts.get(r, 0) for r, n in snapshot.restarts.items()
                    if n - previous.restarts.get(r, 0)}
        fired = fired_by_kind(plan)
        faults = +(fired - fired_before)
        fired_before.clear()
        fired_before.update(fired)
        line = {"sample": number, "t_s": round(time.monotonic() - started, 1),
                "requests": sum(outcomes.values()), "outcomes": dict(sorted(outcomes.items())),
                "restarts": dict(sorted(restarts.items())), "faults": dict(sorted(faults.items())),
                "p50_ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
                "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2) if latencies else None,
                "parent_rss_mib": parent.rss_mib, "threads": parent.threads, "fds": parent.fds,
                "live_children": parent.children,
                "sessions_opened": snapshot.sessions_opened - previous.sessions_opened,
                "lost": len(ledger.lost)}
        previous = snapshot
        lines.append(line)
        print(json.dumps(line), flush=True)
        pause.wanted = False
        pause.resume_threads.set()
        pause.resume_tasks.set()

    threads = [threading.Thread(target=thread_client, args=(i,), name=f"soak-thread-{i}", daemon=True)
               for i in range(args.threads)]
    for thread in threads:
        thread.start()
    tasks = [asyncio.create_task(task_client(i)) for i in range(args.tasks)]
    number = 0
    while time.monotonic() - started < duration:
        number += 1  # samples are due every interval from the start (a sample's own pause included)
        due = started + min(number * interval, duration)
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await take_sample(number)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    deadline = time.monotonic() + 120
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        ledger.lose(f"clients never finished their last op: {stuck}")
    final = pool.snapshot()
    stats = pool.threaded.stats()
    await pool.aclose()
    await asyncio.sleep(0.2)
    leftovers = [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    pool_outcomes: Counter[str] = Counter()
    for (_, outcome), n in stats.requests.outcomes.items():
        pool_outcomes[outcome] += n
    first, last = (samples[1], samples[-1]) if len(samples) > 1 else (samples[0], samples[-1])
    drift = {"rss_mib": round(last.rss_mib - first.rss_mib, 1), "threads": last.threads - first.threads,
             "fds": last.fds - first.fds}
    flat = abs(drift["rss_mib"]) <= 16 and abs(drift["threads"]) <= 2 and abs(drift["fds"]) <= 2
    children_ok = all(s.children <= args.workers for s in samples) and not leftovers
    agree = +pool_outcomes == +ledger.outcomes
    verdict = {
        "verdict": "pass" if not ledger.lost and flat and children_ok and agree else "fail",
        "lost": len(ledger.lost), "lost_examples": ledger.lost[:5],
        "requests": sum(ledger.outcomes.values()), "outcomes": dict(sorted(ledger.outcomes.items())),
        "pool_outcomes": dict(sorted(pool_outcomes.items())), "outcomes_agree": agree,
        "refused": dict(sorted(ledger.refused.items())), "rows_checked": ledger.rows_checked,
        "faults_injected": dict(sorted((ledger.faults + fired_by_kind(plan)).items())),
        "restarts": dict(sorted(final.restarts.items())), "sessions_opened": final.sessions_opened,
        "drift_from_sample_2": drift, "flat": flat, "children_beyond_pool": not children_ok,
        "left_after_close": len(leftovers), "samples": len(samples),
        "minutes": round((time.monotonic() - started) / 60, 2), "fault_rate": args.fault_rate, "seed": args.seed,
        "faults": "leanworker.testing FaultPlan on the work keys (crash, hang, memory, garbage); slow session "
                  "opens on keys of their own",
    }
    print(json.dumps(verdict), flush=True)
    return verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=None, help="run this long instead of --minutes")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between samples (a JSON line each)")
    parser.add_argument("--fault-rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="threaded clients")
    parser.add_argument("--tasks", type=int, default=6, help="asyncio clients")
    parser.add_argument("--think-ms", type=float, default=5.0, help="the most a client waits between two ops")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ResourceWarning)  # leases dropped on purpose
    verdict = asyncio.run(soak(args))
    return 0 if verdict["verdict"] == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
