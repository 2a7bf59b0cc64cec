"""``leanworker run``: discover and plan a Lake project, run the plan on a pool, show progress and a summary."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any


def add_run_command(sub: Any, add: Any) -> None:
    """Register ``run`` on the CLI's subparsers (``add`` makes a subparser with ``--json``)."""
    run = add("run", "Discover and plan a Lake project, then run every batch with a capability command on a worker "
                     "pool (concurrent, session-affine, retried, committed exactly once with --output). Exit "
                     "status 0 when every batch committed, 1 when some failed or were quarantined, 2 on bad usage.")
    run.add_argument("path", help="the Lake project (or any path inside it)")
    run.add_argument("--capability", required=True, help="module:attribute of the capability")
    run.add_argument("--command", required=True, help="the capability command each batch runs")
    run.add_argument("--lib", action="append", help="a library to run (repeatable; default: default targets)")
    run.add_argument("--mode", choices=["shared", "per_header"], default="shared")
    run.add_argument("--base-import", action="append", default=[], help="a module every session imports")
    run.add_argument("--max-batch-modules", type=int, default=None)
    run.add_argument("--workers", type=int, default=2, help="worker processes at once (default 2)")
    run.add_argument("--retries", type=int, default=1, help="retries of a batch on a fresh worker (default 1)")
    run.add_argument("--output", default=None, help="write committed rows here as JSON lines, exactly once")
    run.add_argument("--resume", action="store_true", help="skip what an earlier run committed to --output")
    run.add_argument("--ray", metavar="ADDRESS", default=None,
                     help="run on a Ray cluster (needs leanworker[ray]): its address, 'auto' for one started with "
                          "`ray start` on this machine, or 'local' for a one-machine cluster started for this run; "
                          "--workers is then per node (docs/distributed.md)")
    run.set_defaults(handler=run_plan_command)


def _usage_error(message: str) -> int:
    print(f"leanworker run: {message}", file=sys.stderr)
    return 2


def run_plan_command(args: argparse.Namespace) -> int:
    import leanworker as lw
    from leanworker.cli import _status, _table, emit_json

    if ":" not in args.capability:
        return _usage_error(f"--capability must be module:attribute, got {args.capability!r}")
    if args.workers < 1 or args.retries < 0 or (args.max_batch_modules is not None and args.max_batch_modules < 1):
        return _usage_error("--workers and --max-batch-modules must be >= 1, --retries >= 0")
    if args.resume and args.output is None:
        return _usage_error("--resume needs --output")
    if args.ray is not None:
        try:
            import leanworker.scaleout  # noqa: F401
        except ImportError:
            return _usage_error("--ray needs Ray: pip install 'leanworker[ray]'")
    with _status(args, f"discovering and planning {args.path}..."):
        project = lw.discover_lake_project(args.path, libs=args.lib or None)
        planner = lw.ImportPlanner(args.capability, tuple(args.base_import), args.max_batch_modules, mode=args.mode)
        plan = planner.plan(project)
    bar = None if args.json or not sys.stderr.isatty() else _RunBar(plan.module_count)
    with _runner(args, lw.PoolConfig(max_workers=args.workers)) as pool:
        with pool.run(plan, args.command, retries=args.retries, output=args.output, resume=args.resume) as run:
            failures: list[dict[str, Any]] = []
            for result in run:
                if not result.committed:
                    failures.append({"modules": list(result.modules), "error": type(result.error).__name__,
                                     "message": str(result.error)})
                if bar is not None:
                    bar.update(run.progress)
        summary = run.summary
    if bar is not None:
        bar.close()
    assert summary is not None
    ok = summary.batches_failed == 0 and not summary.quarantined and project.ok
    if args.json:
        emit_json({"status": "ok" if ok else "failed", "plan": plan.fingerprint, "modules": plan.module_count,
                   "summary": {**vars(summary), "quarantined": list(summary.quarantined)}, "failures": failures,
                   "diagnostics": [vars(d) for d in project.diagnostics], "output": args.output})
    else:
        print(_table(["batches", "committed", "failed", "skipped", "rows", "sessions", "retries", "quarantined",
                      "elapsed"],
                     [[str(summary.batches_total), str(summary.batches_committed), str(summary.batches_failed),
                       str(summary.batches_skipped), str(summary.rows), str(summary.sessions_opened),
                       str(summary.retries), str(len(summary.quarantined)), f"{summary.elapsed:.1f} s"]]))
        for failure in failures:
            print(f"failed: {', '.join(failure['modules'][:3])}{' ...' if len(failure['modules']) > 3 else ''}: "
                  f"{failure['error']}: {failure['message']}", file=sys.stderr)
        if args.output:
            print(f"committed rows: {args.output}")
    return 0 if ok else 1


@contextlib.contextmanager
def _runner(args: argparse.Namespace, config: Any) -> Iterator[Any]:
    """A local pool, or with ``--ray`` a RayRunner on that cluster (connected for this run only)."""
    import leanworker as lw

    if args.ray is None:
        with lw.WorkerPool(config) as pool:
            yield pool
        return
    import ray

    from leanworker.scaleout import RayRunner

    ray.init(address=None if args.ray == "local" else args.ray, logging_level=logging.ERROR, log_to_driver=False,
             include_dashboard=False if args.ray == "local" else None)
    try:
        with RayRunner(config) as runner:
            yield runner
    finally:
        ray.shutdown()  # disconnects; a cluster we did not start goes on running


class _RunBar:
    """A progress bar on stderr: modules, batches, rows, sessions, failures and an estimate."""

    def __init__(self, modules: int) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("run"), BarColumn(), TextColumn("{task.completed}/{task.total} modules"),
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
        self.task = self.progress.add_task("run", total=max(modules, 1), detail="")
        self.progress.start()

    def update(self, progress: Any) -> None:
        eta = f", eta {progress.eta_s:.0f} s" if progress.eta_s else ""
        detail = (f"{progress.batches_done} batches, {progress.rows} rows, {progress.sessions_opened} sessions, "
                  f"{progress.failures} failed{eta}")
        self.progress.update(self.task, completed=progress.modules_done, detail=detail)

    def close(self) -> None:
        self.progress.stop()
