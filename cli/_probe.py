"""``leanworker probe`` (the main job, stage by stage) and ``leanworker doctor`` (one worker's checks)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any

from leanworker.cli._output import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    emit_json,
    human,
    plural,
    spinner,
    table,
    terminal_width,
    wrap_figures,
)
from leanworker.cli._values import FIXTURE_CAPABILITY, capability, existing_file, non_negative_int, positive_int

HIDDEN_FIGURES = ("status", "error", "snapshot", "note", "reason")


def add_probe_options(probe: argparse.ArgumentParser) -> None:
    probe.add_argument("--lake-root", default=None, metavar="DIR",
                       help="a Lake project whose Mathlib library gives the modules (default: $LEANWORKER_MATHLIB_ROOT,"
                            " else --modules-file, else 16 built-in names)")
    probe.add_argument("--modules-file", default=None, type=existing_file, metavar="FILE",
                       help="a file of module names, one a line (default: none)")
    probe.add_argument("--limit", type=positive_int, default=128, metavar="N",
                       help="at most this many modules (default: 128)")
    probe.add_argument("--import-ms", type=non_negative_int, default=200, metavar="MS",
                       help="the simulated import time of a session open, in ms (default: 200)")
    probe.add_argument("--trace", default=None, metavar="FILE",
                       help="also write the run's trace here, .jsonl for JSON lines, else Chrome trace JSON "
                            "(default: no trace)")
    probe.set_defaults(handler=run_probe)


def add_doctor_options(doctor: argparse.ArgumentParser) -> None:
    doctor.add_argument("--capability", default=FIXTURE_CAPABILITY, type=capability, metavar="MODULE:ATTR",
                        help=f"the capability to check (default: the simulated fixture {FIXTURE_CAPABILITY})")
    doctor.set_defaults(handler=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    import leanworker as lw

    try:
        with spinner(args, "starting a worker and opening its session..."), \
                lw.Worker(lw.SessionKey(args.capability)) as worker:
            meta = worker.metadata()
            report = worker.doctor()
    except lw.LeanWorkerError as exc:  # the session could not open: that is the doctor's finding, not a crash
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        failed = {"name": "session_open", "status": "error", "message": message}
        if args.json:
            emit_json({"status": "error", "capability": args.capability, "checks": [failed]})
        else:
            print(f"{args.capability}: the worker could not open its session")
            print(doctor_line("error", "session_open", message))
        return EXIT_FAILED
    if args.json:
        emit_json({"status": "ok" if report.ok else "error", "capability": meta.name, "version": meta.version,
                   "host": meta.host, "python": meta.python,
                   "checks": [vars(check) for check in report.checks]})
    else:
        print(f"{meta.name} {meta.version} on {meta.host}, Python {meta.python}")
        for check in report.checks:
            print(doctor_line(check.status, check.name, human(check.message)))
    return EXIT_OK if report.ok else EXIT_FAILED


def doctor_line(status: str, name: str, message: str) -> str:
    """One check, wrapped to the terminal under its message (never cut: --json has it as data too)."""
    head = f"  [{status:7}] "
    return textwrap.fill(f"{name}: {message}", terminal_width(), initial_indent=head,
                         subsequent_indent=" " * len(head), break_on_hyphens=False, break_long_words=False)


def run_probe(args: argparse.Namespace) -> int:
    from leanworker.cli._preflight import existing_directory, writable_file
    from leanworker.probe import ProbeOptions, run_probe

    if args.trace is not None:
        writable_file(args.trace, "--trace")
    if args.lake_root is not None:
        existing_directory(args.lake_root, "--lake-root")
    options = ProbeOptions(lake_root=args.lake_root, modules_file=args.modules_file, limit=args.limit,
                           import_ms=args.import_ms, trace=args.trace)
    check_workload(options)
    progress = None if args.json or not sys.stderr.isatty() else _ProgressBars()
    if progress is not None:
        options.progress = progress.update
    try:
        report = run_probe(options)
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        emit_json(report)
    else:
        print_probe(report)
    return EXIT_OK if report["status"] == "passed" else EXIT_FAILED


def check_workload(options: Any) -> None:
    """The probe's modules exist before any stage runs: a module list that cannot be read or names none, or a Lake
    project without modules, is one line and exit status 2 (the probe itself reads them again: a Lake project's
    discovery is paid twice, a fraction of a second even for Mathlib)."""
    from leanworker.errors import InvalidModuleName
    from leanworker.probe import resolve_workload

    named = f"--modules-file {options.modules_file}"
    try:
        workload = resolve_workload(options)
    except UnicodeDecodeError:
        raise UsageError(f"{named}: not UTF-8 text (one module name a line)") from None
    except OSError as exc:
        raise UsageError(f"{named}: cannot read: {exc.strerror or exc}") from None
    except InvalidModuleName as exc:
        raise UsageError(f"{named}: {exc}") from None
    if not workload.modules:
        where = named if workload.source == "modules-file" else f"Lake project {workload.origin}"
        raise UsageError(f"{where}: no modules in it: nothing to probe")


class _ProgressBars:
    """One rich progress bar per stage, on stderr (only on a terminal)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description:18}"), BarColumn(),
                                 TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), transient=False)
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def update(self, stage: str, done: float, total: float) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=max(total, 1))
        self.progress.update(self.tasks[stage], completed=done, total=max(total, 1))

    def close(self) -> None:
        self.progress.stop()


def print_probe(report: dict[str, Any]) -> None:
    """The probe's report as a table whose figures wrap to the terminal (none is cut; --json has them as data)."""
    workload = report["workload"]
    batches = plural(report["plan"]["batches"], "planned batch", "planned batches")
    print(textwrap.fill(f"leanworker probe: {plural(workload['modules'], 'module')} ({workload['source']}: "
                        f"{workload['origin']}), {batches}, simulated import {report['import_ms']} ms (capability "
                        f"{report['capability']}, a simulation)", terminal_width(), break_on_hyphens=False))
    names = list(report["stages"])
    name_width = max(len("stage"), *(len(n) for n in names))
    width = terminal_width() - name_width - len("status") - 2 * 2 - 1
    rows = []
    for name, stage in report["stages"].items():
        figures = {k: v for k, v in stage.items() if k not in HIDDEN_FIGURES}
        lines = wrap_figures([f"{k} {human(v)}" for k, v in figures.items()], width)
        rows.append([name, stage["status"], lines[0]])
        rows += [["", "", line] for line in lines[1:]]
        if stage.get("error"):
            rows += [["", "", line] for line in textwrap.wrap(f"error: {stage['error']}", width)]
        if stage.get("reason"):
            rows += [["", "", line] for line in textwrap.wrap(f"skipped: {stage['reason']}", width)]
    print(table(["stage", "status", "figures"], rows))
    if "trace" in report:
        print(f"trace: {plural(report['trace']['events'], 'event')} written to {report['trace']['path']}")
    print(f"status: {report['status']}")
