"""The REPL driver against the misbehaving FAKE REPL (a simulator, no Lean): ``python -m bench.repl_driver [--json]``.

- read: one valid answer of 20 MB and one of 200 MB (info messages, over many lines, as the REPL prints long
  answers) through :class:`leanworker.lean.driver.ReplProcess`, from the request to the parsed, matched answer: MB/s.
  The fake writes the answer as fast as the pipe takes it, so the figure is the driver's (reading, cutting, parsing).
- mixed: a large ``check`` with every kind of misbehaviour mixed in (one item in 13), through ``pool.run`` on 2
  workers: wall time, items/s, items that got their own verdict, the peak RSS of a worker (sampled every 20 ms), and
  the processes the fakes started that were still alive after the pool closed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

import leanworker as lw
from bench._stats import print_report
from leanworker.fixtures.repl_fake import mixed_items
from leanworker.lean.driver import ReplProcess
from leanworker.lean.items import plan_items, split_item

FAKE = [sys.executable, "-m", "leanworker.fixtures.repl_fake"]


def read_rate(megabytes: int) -> dict[str, Any]:
    process = ReplProcess(FAKE, max_answer_bytes=(megabytes + 64) << 20)
    try:
        process.exchange({"cmd": "fake:big=0.01"}, 60)  # warm
        started = time.perf_counter()
        answer = process.exchange({"cmd": f"fake:big={megabytes}"}, 300)
        seconds = time.perf_counter() - started
    finally:
        process.close()
    size = process.last_answer_bytes
    return {"answer_mb": round(size / 1e6, 1), "messages": len(answer["messages"]), "seconds": round(seconds, 2),
            "mb_per_s": round(size / 1e6 / seconds, 1)}


def mixed(count: int) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="leanworker-bench-fake-"))
    expected = mixed_items(count)
    checked = [split_item(i, "import Mathlib\n" + code) for i, (code, *_) in enumerate(expected)]
    repl = " ".join([*FAKE, "--state", str(state)])
    options = (("repl", repl), ("max_answer_mib", 16))
    batches = [replace(b, key=replace(b.key, options=options)) for b in plan_items(checked, None, repl, None, 64)]
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        me = psutil.Process()
        while not stop.wait(0.02):
            for process in me.children(recursive=True):
                try:
                    if "leanworker.host" in " ".join(process.cmdline()):
                        peak[0] = max(peak[0], process.memory_info().rss)
                except psutil.Error:
                    pass

    threading.Thread(target=sample, daemon=True).start()
    rows: dict[int, dict[str, Any]] = {}
    with lw.WorkerPool(lw.PoolConfig(max_workers=2, worker=lw.WorkerConfig(request_timeout=120))) as pool:
        started = time.perf_counter()
        with pool.run(batches, "check", lambda batch: {
                "items": [{"id": int(i), "code": checked[int(i)].body} for i in batch.modules], "timeout": 1.0}) as run:
            for result in run:
                rows.update({row.payload["id"]: row.payload for row in result.rows})
        seconds = time.perf_counter() - started
    stop.set()
    as_expected = sum(1 for i, (_, tag, status, reason) in enumerate(expected)
                      if rows.get(i, {}).get("status") == status and rows[i].get("reason") == reason)
    time.sleep(0.5)
    pids = [int(line.split()[1]) for line in (state / "pids").read_text().splitlines()]
    return {"items": count, "misbehaving": sum(1 for _, _, s, r in expected if r is not None),
            "seconds": round(seconds, 2), "items_per_s": round(count / seconds), "as_expected": as_expected,
            "worker_peak_rss_mib": round(peak[0] / 2**20, 1), "fake_processes_started": len(pids),
            "alive_after_close": sum(1 for pid in pids if psutil.pid_exists(pid)
                                     and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--items", type=int, default=1000)
    args = parser.parse_args()
    report = {"simulated": True, "read_20mb": read_rate(20), "read_200mb": read_rate(200), "mixed": mixed(args.items)}
    print_report(report, args.json)


if __name__ == "__main__":
    main()
