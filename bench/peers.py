"""leanworker against the pools people use today: ``python -m bench.peers`` (``make bench``).

The same workloads, in one process run, for leanworker and each peer that can do the job:
ProcessPoolExecutor, multiprocessing.Pool, pebble.ProcessPool, loky and billiard (from the ``bench`` extra).

1. warm trivial round trip (median us; one worker);
2. streaming 200k small rows (rows/s; peers return one list);
3. a worker killed mid-task: the error seen, and the time until the pool serves again (or "never" within 10 s);
4. a hung task with a 1 s timeout: is it killed, and how long until the pool serves again;
5. worker processes still alive 5 s after their parent is SIGKILLed (2 workers each).

Prints one table with ratios (leanworker vs each peer) and saves it as JSON in bench/results/peers.json.
Note on streaming: the peers return one list (all rows in memory at once, delivered at the end); leanworker
delivers rows live, with bounded parent memory and backpressure.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import psutil

import leanworker as lw
from bench import _peer_tasks as tasks
from bench import _stats

THROUGHPUT = lw.SessionKey("leanworker.fixtures.throughput:capability")
FAULTS = lw.SessionKey("leanworker.fixtures.faults:capability")
ROWS = 200_000
ROUND_TRIPS = 2000
SERVE_AGAIN_WITHIN = 10.0
RESULTS = Path(__file__).parent / "results"


def median_us(function: Callable[[], object], repeat: int = ROUND_TRIPS) -> float:
    return round(_stats.median_us(_stats.timings(function, repeat, warmup=100)), 1)


def kill_tree(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def children_now() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


# -- peers: a uniform face ---------------------------------------------------------------------------------------


class Peer:
    name = ""

    def submit(self, function: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class PPE(Peer):
    name = "ProcessPoolExecutor"

    def __init__(self, workers: int) -> None:
        self.pool = ProcessPoolExecutor(workers)

    def submit(self, function: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        return self.pool.submit(function, *args).result(timeout)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class MPPool(Peer):
    name = "multiprocessing.Pool"

    def __init__(self, workers: int) -> None:
        self.pool = multiprocessing.get_context("fork").Pool(workers)

    def submit(self, function: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        return self.pool.apply_async(function, args).get(timeout)

    def close(self) -> None:
        self.pool.terminate()


class Pebble(Peer):
    name = "pebble"

    def __init__(self, workers: int) -> None:
        import pebble

        self.pool = pebble.ProcessPool(workers)

    def submit(self, function: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        # pebble's own per-task timeout kills the worker; the wait is bounded a little beyond it.
        future = self.pool.schedule(function, args, timeout=timeout)
        return future.result(None if timeout is None else timeout + 5)

    def close(self) -> None:
        self.pool.stop()
        self.pool.join(timeout=5)


class Loky(Peer):
    name = "loky"

    def __init__(self, workers: int) -> None:
        import loky

        self.workers = workers
        self.pool = loky.get_reusable_executor(max_workers=workers)

    def submit(self, function: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        import loky

        self.pool = loky.get_reusable_executor(max_workers=self.workers)  # replaced if it broke
        return self.pool.submit(function, *args).result(timeout)

    def close(self) -> None:
        self.pool.shutdown(wait=False, kill_workers=True)


class Billiard(Peer):
    name = "billiard"

    def __init__(self, workers: int) -> None:
        import billiard

        self.pool = billiard.Pool(workers, timeout=3600)  # a pool-wide limit starts billiard's timeout handler

    def submit(self, function: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        # billiard's hard time limit (`timeout=`) kills the worker.
        result = self.pool.apply_async(function, args, timeout=timeout)
        return result.get(None if timeout is None else timeout + 5)

    def close(self) -> None:
        self.pool.terminate()


PEERS: list[type[Peer]] = [PPE, MPPool, Pebble, Loky, Billiard]


def with_peer(kind: type[Peer], workers: int, job: Callable[[Peer], Any]) -> Any:
    before = children_now()
    peer = kind(workers)
    try:
        return job(peer)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:160]}
    finally:
        try:
            peer.close()
        except Exception:
            pass
        kill_tree(sorted(children_now() - before))


# -- workloads ---------------------------------------------------------------------------------------------------


def round_trip() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with lw.Worker(THROUGHPUT) as worker:
        out["leanworker"] = median_us(lambda: worker.call("echo", 1))
    for kind in PEERS:
        out[kind.name] = with_peer(kind, 1, lambda peer: median_us(lambda: peer.submit(tasks.noop, 1)))
    return out


def streaming() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with lw.Worker(THROUGHPUT) as worker:
        worker.stream("rows", {"count": 1000, "payload_bytes": 16}).collect()
        start = time.perf_counter()
        count = sum(1 for _ in worker.stream("rows", {"count": ROWS, "payload_bytes": 16}))
        out["leanworker"] = round(count / (time.perf_counter() - start))

    def peer_rows(peer: Peer) -> int:
        peer.submit(tasks.rows, 1000, 16)
        start = time.perf_counter()
        got = peer.submit(tasks.rows, ROWS, 16)
        return round(len(got) / (time.perf_counter() - start))

    for kind in PEERS:
        out[kind.name] = with_peer(kind, 1, peer_rows)
    return out


def _error_name(exc: BaseException) -> str:
    if type(exc).__name__ == "ExceptionWithTraceback":  # billiard: the real error is the traceback's last line
        lines = [line.strip() for line in str(exc).splitlines() if line.strip() and line.strip() != '"""']
        return lines[-1].split(":")[0].rsplit(".", 1)[-1] if lines else "ExceptionWithTraceback"
    return type(exc).__name__


def _serve_again(call: Callable[[], Any]) -> float | None:
    start = time.perf_counter()
    while time.perf_counter() - start < SERVE_AGAIN_WITHIN:
        try:
            call()
            return round(time.perf_counter() - start, 3)
        except Exception:
            time.sleep(0.05)
    return None


def killed_mid_task() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with lw.Worker(FAULTS) as worker:
        start = time.perf_counter()
        try:
            worker.call("crash", {"how": "signal"})
            seen = "no error"
        except lw.LeanWorkerError as exc:
            seen = type(exc).__name__
        error_s = round(time.perf_counter() - start, 3)
        again = _serve_again(lambda: worker.call("echo", 1, timeout=2))
        out["leanworker"] = {"error": seen, "error_after_s": error_s, "serves_again_after_s": again}

    def peer_job(peer: Peer) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            peer.submit(tasks.suicide, timeout=SERVE_AGAIN_WITHIN)
            seen = "no error"
        except (FutureTimeout, multiprocessing.TimeoutError):
            seen = f"no answer within {SERVE_AGAIN_WITHIN:g} s (the task is lost)"
        except Exception as exc:
            seen = _error_name(exc)
        error_s = round(time.perf_counter() - start, 3)
        again = _serve_again(lambda: peer.submit(tasks.noop, 1, timeout=2))
        return {"error": seen, "error_after_s": error_s, "serves_again_after_s": again}

    for kind in PEERS:
        out[kind.name] = with_peer(kind, 1, peer_job)
    return out


def hung_task() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with lw.Worker(FAULTS) as worker:
        start = time.perf_counter()
        try:
            worker.call("hang", timeout=1.0)
            seen = "no error"
        except lw.LeanWorkerError as exc:
            seen = type(exc).__name__
        error_s = round(time.perf_counter() - start, 3)
        again = _serve_again(lambda: worker.call("echo", 1, timeout=2))
        out["leanworker"] = {"error": seen, "killed": worker.snapshot().restarts.get("timeout", 0) == 1,
                             "error_after_s": error_s, "serves_again_after_s": again}

    def peer_job(peer: Peer) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            peer.submit(tasks.hang, 60.0, timeout=1.0)
            seen = "no error"
        except (FutureTimeout, multiprocessing.TimeoutError):
            seen = "TimeoutError"
        except Exception as exc:
            seen = _error_name(exc)
        error_s = round(time.perf_counter() - start, 3)
        time.sleep(0.5)
        still_hanging = _sleeping_in_a_task()
        again = _serve_again(lambda: peer.submit(tasks.noop, 1, timeout=2))
        return {"error": seen, "killed": not still_hanging, "error_after_s": error_s,
                "serves_again_after_s": again}

    for kind in PEERS:
        out[kind.name] = with_peer(kind, 1, peer_job)
    return out


def _sleeping_in_a_task() -> bool:
    """True while one of our child processes sleeps in ``time.sleep`` (the hung task): idle workers wait on a pipe
    or a lock instead, so their kernel wait channel differs."""
    for process in psutil.Process().children(recursive=True):
        try:
            channel = Path(f"/proc/{process.pid}/wchan").read_text().strip()
        except OSError:
            continue
        if "nanosleep" in channel:
            return True
    return False


ORPHAN_PARENT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    kind = sys.argv[1]
    from bench import _peer_tasks as tasks
    if kind == "leanworker":
        import leanworker as lw
        pool = lw.WorkerPool(lw.PoolConfig(max_workers=2))
        leases = [pool.lease(lw.SessionKey("leanworker.fixtures.throughput:capability", imports=(str(i),)))
                  for i in range(2)]
        pids = [lease.call("info")["pid"] for lease in leases]
    else:
        from bench.peers import PEERS
        peer = {{p.name: p for p in PEERS}}[kind](2)
        pids = set()
        for _ in range(20):
            if kind in ("ProcessPoolExecutor", "loky"):
                futures = [peer.pool.submit(tasks.pid, 0.3) for _ in range(2)]
                pids |= {{f.result() for f in futures}}
            elif kind == "pebble":
                futures = [peer.pool.schedule(tasks.pid, (0.3,)) for _ in range(2)]
                pids |= {{f.result() for f in futures}}
            else:
                results = [peer.pool.apply_async(tasks.pid, (0.3,)) for _ in range(2)]
                pids |= {{r.get() for r in results}}
            if len(pids) >= 2:
                break
    print(" ".join(str(p) for p in pids), flush=True)
    time.sleep(600)
""")


def orphans_after_parent_sigkill() -> dict[str, Any]:
    root = str(Path(__file__).resolve().parent.parent)
    script = ORPHAN_PARENT.format(root=root)
    out: dict[str, Any] = {}
    for name in ["leanworker", *[kind.name for kind in PEERS]]:
        parent = subprocess.Popen([sys.executable, "-c", script, name], stdout=subprocess.PIPE, text=True,
                                  cwd=root)
        try:
            assert parent.stdout is not None
            line = parent.stdout.readline()
            pids = [int(p) for p in line.split()]
            if not pids:  # the parent died before it reported any worker: nothing was measured
                raise RuntimeError("no worker pid was reported: nothing measured")
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait(10)
            time.sleep(5)
            alive = [pid for pid in pids if _alive(pid)]
            out[name] = {"workers": len(pids), "alive_after_5_s": len(alive)}
            kill_tree(alive)
        except Exception as exc:
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:160]}
        finally:
            if parent.poll() is None:
                parent.kill()
                parent.wait(10)
            if parent.stdout is not None:
                parent.stdout.close()
    return out


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# -- report ------------------------------------------------------------------------------------------------------


def ratio(ours: Any, theirs: Any, higher_is_better: bool) -> str:
    if not isinstance(ours, (int, float)) or not isinstance(theirs, (int, float)) or not ours or not theirs:
        return "-"
    value = ours / theirs if higher_is_better else theirs / ours
    return f"{value:.2f}x"


def cell(value: Any) -> str:
    if isinstance(value, dict):
        if "error" in value and len(value) == 1:
            return f"failed: {value['error'][:40]}"
        if "serves_again_after_s" in value:
            again = value["serves_again_after_s"]
            killed = f", killed={value['killed']}" if "killed" in value else ""
            return (f"{value['error']} after {value['error_after_s']}s; serves again: "
                    f"{'never' if again is None else f'{again}s later'}{killed}")
        if "alive_after_5_s" in value:
            return f"{value['alive_after_5_s']} of {value['workers']} alive"
    return str(value)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {
        "round_trip_us": round_trip(),
        "streaming_rows_per_s": streaming(),
        "killed_mid_task": killed_mid_task(),
        "hung_task_timeout_1s": hung_task(),
        "orphans_5s_after_parent_sigkill": orphans_after_parent_sigkill(),
    }
    names = ["leanworker", *[kind.name for kind in PEERS]]
    ratios = {
        peer: {"round_trip": ratio(results["round_trip_us"]["leanworker"], results["round_trip_us"].get(peer), False),
               "streaming": ratio(results["streaming_rows_per_s"]["leanworker"],
                                  results["streaming_rows_per_s"].get(peer), True)}
        for peer in names[1:]
    }
    document = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                "date": time.strftime("%Y-%m-%d %H:%M:%S"), "results": results,
                "ratios_leanworker_vs_peer": ratios}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "peers.json").write_text(json.dumps(document, indent=2) + "\n")
    if args.json:
        print(json.dumps(document, indent=2))
        return
    width = max(len(n) for n in names)
    for workload, row in results.items():
        print(f"\n{workload}")
        for name in names:
            print(f"  {name:{width}}  {cell(row.get(name))}")
    print("\nratios (leanworker vs peer; > 1x means leanworker is better)")
    for peer, values in ratios.items():
        print(f"  {peer:{width}}  round trip {values['round_trip']:>7}   streaming {values['streaming']:>7}")
    print(f"\nsaved: {RESULTS / 'peers.json'}")


if __name__ == "__main__":
    main()
