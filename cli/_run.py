"""``leanworker run``: discover and plan a Lake project, run the plan on a pool (or Ray), show progress and a
summary; Ctrl-C stops it cleanly and says how to resume."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import logging
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

from leanworker.cli._chaos import add_chaos_arguments, chaos_json, chaos_line, chaos_plan
from leanworker.cli._output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    elide,
    emit_json,
    plural,
    spinner,
    table,
    terminal_width,
)
from leanworker.cli._preflight import not_an_input, ray_address, writable_file
from leanworker.cli._progress_bar import ELAPSED, ProgressBar
from leanworker.cli._project import (
    add_planning_options,
    discover,
    no_modules_reason,
    print_diagnostics,
    project_files,
    unread_line,
)
from leanworker.cli._session import open_first_session, shared_failure
from leanworker.cli._values import capability, non_negative_int, positive_int

FAILURES_SHOWN = 10
NEEDS_RAY = "--ray needs Ray: pip install 'leanworker[ray]'"


def add_run_options(run: argparse.ArgumentParser) -> None:
    """``run``'s options and handler (its parser has ``--json`` already)."""
    run.add_argument("path", help="the Lake project, or any path inside it")
    run.add_argument("--capability", required=True, type=capability, metavar="MODULE:ATTR",
                     help="the capability, found as `python -m` would: the current directory first, then installed "
                          "packages (required)")
    run.add_argument("--command", required=True, metavar="NAME",
                     help="the capability command each batch runs (required)")
    add_planning_options(run, "run")
    run.add_argument("--workers", type=positive_int, default=2, metavar="N",
                     help="worker processes at once; with --ray, per node (default: 2)")
    run.add_argument("--retries", type=non_negative_int, default=1, metavar="N",
                     help="retries of a failed batch on a fresh worker before it is split (default: 1)")
    run.add_argument("--output", default=None, metavar="FILE",
                     help="write committed rows here as JSON lines, exactly once (default: none: rows are counted, "
                          "not kept)")
    run.add_argument("--resume", action="store_true",
                     help="skip what an earlier run committed to --output (default: off: --output starts afresh)")
    run.add_argument("--ray", metavar="ADDRESS", default=None,
                     help="run on a Ray cluster (needs leanworker[ray]): HOST:PORT, 'auto' for one started with "
                          "`ray start` here, or 'local' for a one-machine cluster for this run; docs/distributed.md "
                          "(default: a local pool, no Ray)")
    add_chaos_arguments(run)
    run.set_defaults(handler=run_plan_command)


def check_arguments(args: argparse.Namespace) -> None:
    """Everything that can be checked before discovery: one line and exit status 2 on the first problem."""
    if args.resume and args.output is None:
        raise UsageError("--resume needs --output")
    chaos_plan(args)  # --seed without --chaos
    if args.output is not None:
        writable_file(args.output, "--output", regular="exactly-once output reopens, truncates and fsyncs its file")
    if args.ray is not None:
        ray_address(args.ray, connect=False)
        if importlib.util.find_spec("ray") is None:  # Ray is imported once the address answers (_runner)
            raise UsageError(NEEDS_RAY)
        with spinner(args, f"checking that a Ray cluster answers at {args.ray}..."):
            ray_address(args.ray)


def run_plan_command(args: argparse.Namespace) -> int:
    try:
        try:
            return _run_plan(args)
        except Exception:  # after Ctrl-C, an error it caused (a worker it killed as the first session opened)
            if args.interrupts.pressed():
                return _interrupted(args, None)
            raise
    except KeyboardInterrupt:  # before the run started (discovery, planning): nothing of this run was committed
        return _interrupted(args, None)


def _run_plan(args: argparse.Namespace) -> int:
    import leanworker as lw

    check_arguments(args)
    project = discover(args)
    if not project.modules:
        raise UsageError(no_modules_reason(project))
    if args.output is not None:
        not_an_input(args.output, "--output", project_files(project))
    with spinner(args, f"planning {args.path}..."):
        planner = lw.ImportPlanner(args.capability, tuple(args.base_import), args.max_batch_modules, mode=args.mode)
        plan = planner.plan(project)
    interrupts = args.interrupts
    failures: list[dict[str, Any]] = []
    stopped: str | None = None
    finished = False
    bar = None if args.json or not sys.stderr.isatty() else ProgressBar("run", plan.module_count, "modules",
                                                                        ("detail", ELAPSED))
    faults = chaos_plan(args)
    try:
        with _runner(args, lw.PoolConfig(max_workers=args.workers)) as pool:
            first_opened = time.monotonic()
            left = _batches_left(args, plan)
            if args.ray is None and left:  # resumed with everything committed: no session to open (minutes for Mathlib)
                with spinner(args, "opening the first session..."):
                    open_first_session(pool, left, args.command)
            opened_before = pool.snapshot().sessions_opened if args.ray is None else 0  # the first, for the bar
            with pool.run(plan, args.command, retries=args.retries, output=args.output, resume=args.resume,
                          faults=faults) as run:
                interrupts.cancel_with(run.cancel)
                committed = 0
                for result in run:
                    stopped = None if result.injected else shared_failure(result, plan.batches, committed)
                    if stopped is not None:
                        run.cancel()
                        break
                    committed += result.committed
                    if not result.committed:
                        failures.append({"modules": list(result.modules), "error": type(result.error).__name__,
                                         "message": str(result.error),
                                         **({"injected": True} if result.injected else {})})
                    if bar is not None:
                        show_progress(bar, run.progress, opened_before)
            finished = stopped is None and run.summary is not None and not run.summary.batches_cancelled
            if finished:  # every batch has its result: a Ctrl-C from here on changes nothing
                interrupts.work_finished()
            interrupts.cancel_with(lambda: None)  # a Ctrl-C from here on waits for the workers to stop
            summary = _with_first_session(run.summary, pool, args, time.monotonic() - first_opened)
    except KeyboardInterrupt:  # before the run started: nothing of this run was committed
        return _interrupted(args, None)
    finally:
        if bar is not None:
            bar.close()
    if stopped is not None:
        raise UsageError(stopped)
    assert summary is not None
    if not finished and interrupts.pressed():
        return _interrupted(args, summary)
    ok = summary.batches_failed == 0 and not summary.quarantined and project.ok
    if args.json:
        emit_json({"status": "ok" if ok else "failed", "plan": plan.fingerprint, "modules": plan.module_count,
                   "summary": summary_json(summary), "failures": failures,
                   "diagnostics": [vars(d) for d in project.diagnostics], "output": args.output,
                   **({"chaos": chaos_json(args, faults, summary.injected)} if faults is not None else {})})
    else:
        print_summary(args, summary, failures)
        if faults is not None:
            print(chaos_line(args, faults, len(summary.injected), "module"))
    if not project.ok:  # the exit status says 1 even when every batch committed: say why
        print_diagnostics(project, "error")
        print(f"leanworker run: {unread_line(project)}", file=sys.stderr)
    return EXIT_OK if ok else EXIT_FAILED


def show_progress(bar: ProgressBar, progress: Any, sessions_before: int) -> None:
    """Modules, batches, rows, sessions, failures and an estimate."""
    eta = f", eta {progress.eta_s:.0f} s" if progress.eta_s else ""
    detail = (f"{plural(progress.batches_done, 'batch')}, {plural(progress.rows, 'row')}, "
              f"{plural(progress.sessions_opened + sessions_before, 'session')}, {progress.failures} failed{eta}")
    bar.update(progress.modules_done, detail=detail)


def _batches_left(args: argparse.Namespace, plan: Any) -> list[Any]:
    """The plan's batches this run will run: on ``--resume``, those with modules the output has not committed."""
    if not args.resume:
        return list(plan.batches)
    from leanworker.actors.run import committed_modules

    committed = committed_modules(args.output, plan.fingerprint)
    return [batch for batch in plan.batches if set(batch.modules) - committed.get(batch.fingerprint, set())]


def _with_first_session(summary: Any, pool: Any, args: argparse.Namespace, elapsed: float) -> Any:
    """The run's summary, counting the first session (opened before the run, and used by it) on a local pool: its
    open in the sessions and its time in ``elapsed`` (an import of minutes is no "0.0 s")."""
    if args.ray is not None or summary is None:
        return summary
    return dataclasses.replace(summary, sessions_opened=pool.snapshot().sessions_opened,
                               elapsed=round(max(summary.elapsed, elapsed), 3))


def summary_json(summary: Any) -> dict[str, Any]:
    return {**vars(summary), "quarantined": list(summary.quarantined), "injected": list(summary.injected),
            "faults": [fault.as_dict() for fault in summary.faults], "elapsed": round(summary.elapsed, 3)}


def print_summary(args: argparse.Namespace, summary: Any, failures: list[dict[str, Any]]) -> None:
    chaos = getattr(args, "chaos", None) is not None  # with --chaos: modules lost to injected faults, apart
    print(table(["batches", "committed", "failed", "skipped", "rows", "sessions", "retries", "quarantined",
                 *(["injected"] if chaos else []), "elapsed"],
                [[str(summary.batches_total), str(summary.batches_committed), str(summary.batches_failed),
                  str(summary.batches_skipped), str(summary.rows), str(summary.sessions_opened),
                  str(summary.retries), str(len(summary.quarantined)),
                  *([str(len(summary.injected))] if chaos else []), f"{summary.elapsed:.1f} s"]]))
    width = terminal_width()
    for failure in failures[:FAILURES_SHOWN]:
        modules = ", ".join(failure["modules"][:3]) + (" ..." if len(failure["modules"]) > 3 else "")
        message = failure["message"].strip().splitlines()[0] if failure["message"].strip() else ""
        lost = "lost to an injected fault" if failure.get("injected") else "failed"
        print(elide(f"{lost}: {modules}: {failure['error']}: {message}", width), file=sys.stderr)
    if len(failures) > FAILURES_SHOWN:
        print(f"... {len(failures) - FAILURES_SHOWN} more failures (--json lists every one)", file=sys.stderr)
    if args.output and summary.batches_committed:
        print(f"committed rows: {args.output} ({plural(summary.rows, 'row')} from "
              f"{plural(summary.batches_committed, 'batch')})")
    elif args.output and summary.batches_skipped == summary.batches_total:
        print(f"nothing left to run: every batch was committed to {args.output} by an earlier run")
    elif args.output:
        print(f"no rows were committed to {args.output}")


def _interrupted(args: argparse.Namespace, summary: Any) -> int:
    """The one line after Ctrl-C: what was committed, and the command that resumes."""
    done = 0 if summary is None else summary.batches_committed + summary.batches_skipped
    total = "" if summary is None else f" of {summary.batches_total}"
    if args.output:
        argv = [*args.argv] + ([] if "--resume" in args.argv else ["--resume"])
        line = (f"interrupted: {plural(done, 'batch')}{total} committed to {args.output}; resume with: "
                f"{shlex.join(['leanworker', *argv])}")
    else:
        line = (f"interrupted: {plural(done, 'batch')}{total} had finished, but without --output nothing was kept; "
                "run again with --output FILE to be able to resume")
    if args.json:
        emit_json({"status": "interrupted", "message": line,
                   "summary": summary_json(summary) if summary is not None else None, "output": args.output})
    print(f"leanworker run: {line}", file=sys.stderr)
    return EXIT_INTERRUPTED


# `--ray local` starts its cluster without idle Ray workers ahead of need: for the first driver Ray would start one a
# CPU, each importing Ray (about 0.4 s of CPU), but the runner's agents (one a node) are the only Ray workers a run
# uses, and Ray starts those when they are asked for. `_system_config` is Ray's private setting: a Ray without this key
# refuses it at start (Ray 2.60, as `make test` installs it, has it; the tests that start `--ray local` would fail).
LOCAL_RAY_CONFIG = {"prestart_worker_first_driver": False}


@contextlib.contextmanager
def _runner(args: argparse.Namespace, config: Any) -> Iterator[Any]:
    """A local pool, or with ``--ray`` a RayRunner on that cluster (connected for this run only)."""
    import leanworker as lw

    if args.ray is None:
        with lw.WorkerPool(config) as pool:
            yield pool
        return
    try:
        import ray

        from leanworker.scaleout import RayRunner
    except ImportError as exc:  # installed, but it cannot be imported
        raise UsageError(f"{NEEDS_RAY} (importing it failed: {exc})") from None

    # Ray's processes are started with SIGINT blocked (they inherit the mask), so a Ctrl-C at the terminal reaches
    # only this process, which then stops the run, the runner and Ray, in that order. Ray's start-up is never cut
    # half-way: a Ctrl-C meanwhile is noted, and acted on once the runner is ready.
    interrupts = args.interrupts
    interrupts.cancel_with(lambda: None)
    try:
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            with spinner(args, f"connecting to Ray ({args.ray})..."):
                if args.ray == "local":  # "local", not None: None would join a cluster RAY_ADDRESS or `ray start` names
                    ray.init(address="local", logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False,
                             _system_config=LOCAL_RAY_CONFIG)
                else:
                    ray.init(address=args.ray, logging_level=logging.ERROR, log_to_driver=False)
        except Exception as exc:
            raise UsageError(f"--ray {args.ray}: cannot connect: {str(exc).strip().splitlines()[0]}") from None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        with RayRunner(config) as runner:
            interrupts.cancel_with(None)
            if interrupts.requested:
                raise KeyboardInterrupt
            yield runner
    finally:
        if ray.is_initialized():
            ray.shutdown()  # disconnects; a cluster we did not start goes on running
