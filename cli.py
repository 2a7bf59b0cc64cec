"""The ``leanworker`` command line: probe, discover, plan, run, doctor, trace. Every command takes ``--json``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

MATHLIB = "leanworker.fixtures.mathlib_scale:capability"


def emit_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout (the stable machine-readable output of every command)."""
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


@contextmanager
def _status(args: argparse.Namespace, text: str) -> Iterator[None]:
    """A spinner on stderr while ``text`` happens, on a terminal only (never with --json)."""
    if args.json or not sys.stderr.isatty():
        yield
        return
    try:
        from rich.console import Console
    except ImportError:
        yield
        return
    with Console(stderr=True).status(text):
        yield


def run_doctor(args: argparse.Namespace) -> int:
    import leanworker as lw

    try:
        with _status(args, "starting a worker and opening its session..."), \
                lw.Worker(lw.SessionKey(args.capability)) as worker:
            meta = worker.metadata()
            report = worker.doctor()
    except lw.LeanWorkerError as exc:  # the session could not open: that is the doctor's finding, not a crash
        failed = {"name": "session_open", "status": "error", "message": f"{type(exc).__name__}: {exc}"}
        if args.json:
            emit_json({"status": "error", "capability": args.capability, "checks": [failed]})
        else:
            print(f"{args.capability}: the worker could not open its session")
            print(f"  [{'error':7}] session_open: {failed['message']}")
        return 1
    if args.json:
        emit_json({"status": "ok" if report.ok else "error", "capability": meta.name, "version": meta.version,
                   "host": meta.host, "python": meta.python,
                   "checks": [vars(check) for check in report.checks]})
    else:
        print(f"{meta.name} {meta.version} on {meta.host}, Python {meta.python}")
        for check in report.checks:
            print(f"  [{check.status:7}] {check.name}: {check.message}")
    return 0 if report.ok else 1


def run_probe(args: argparse.Namespace) -> int:
    from leanworker.probe import ProbeOptions, run_probe

    options = ProbeOptions(lake_root=args.lake_root, modules_file=args.modules_file, limit=args.limit,
                           import_ms=args.import_ms, trace=args.trace)
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
        _print_probe(report)
    return 0 if report["status"] == "passed" else 1


class _ProgressBars:
    """One rich progress bar per stage, on stderr (only on a terminal)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description:18}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                 TimeElapsedColumn(), transient=False)
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def update(self, stage: str, done: float, total: float) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=max(total, 1))
        self.progress.update(self.tasks[stage], completed=done, total=max(total, 1))

    def close(self) -> None:
        self.progress.stop()


def _print_probe(report: dict[str, Any]) -> None:
    import shutil
    import textwrap

    workload = report["workload"]
    print(f"leanworker probe: {workload['modules']} modules ({workload['source']}: {workload['origin']}), "
          f"{report['plan']['batches']} planned batches, simulated import {report['import_ms']} ms "
          f"(capability {report['capability']}, a simulation)")
    width = max(60, shutil.get_terminal_size((120, 24)).columns - 28)  # the figures wrap; none is cut
    rows = []
    for name, stage in report["stages"].items():
        figures = {k: v for k, v in stage.items() if k not in ("status", "error", "snapshot", "note", "reason")}
        lines = textwrap.wrap(", ".join(f"{k}={v}" for k, v in figures.items()), width) or [""]
        rows.append([name, stage["status"], lines[0]])
        rows += [["", "", line] for line in lines[1:]]
        if stage.get("error"):
            rows += [["", "", line] for line in textwrap.wrap(f"error: {stage['error']}", width)]
        if stage.get("reason"):
            rows += [["", "", line] for line in textwrap.wrap(f"skipped: {stage['reason']}", width)]
    print(_table(["stage", "status", "figures"], rows))
    if "trace" in report:
        print(f"trace: {report['trace']['events']} events written to {report['trace']['path']}")
    print(f"status: {report['status']}")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def _diagnostics_json(project: Any) -> list[dict[str, Any]]:
    return [vars(d) for d in project.diagnostics]


def _print_diagnostics(project: Any) -> None:
    for d in project.diagnostics:
        where = f" ({d.path}:{d.line})" if d.line else (f" ({d.path})" if d.path else "")
        print(f"{d.severity}: {d.code}: {d.message}{where}", file=sys.stderr)


def run_discover(args: argparse.Namespace) -> int:
    import leanworker as lw

    with _status(args, f"discovering {args.path}..."):
        project = lw.discover_lake_project(args.path, libs=args.lib or None)
    root = project.root
    if args.json:
        emit_json({
            "status": "ok" if project.ok else "error",
            "root": str(root),
            "lakefile": project.lakefile.name,
            "package": project.package,
            "libs": [{"name": lib.name, "roots": list(lib.roots), "globs": [str(g) for g in lib.globs],
                      "src_dir": lib.src_dir, "default": lib.default, "readable": lib.readable}
                     for lib in project.libs],
            "modules": [{"name": m.name, "path": m.path.relative_to(root).as_posix(), "lib": m.lib,
                         "source_root": m.source_root.relative_to(root).as_posix() or ".",
                         "imports": list(m.imports)} for m in project.modules],
            "fingerprint": {**vars(project.fingerprint), "digest": project.fingerprint.digest},
            "diagnostics": _diagnostics_json(project),
        })
        return _discovery_status(project)
    print(f"{root}  ({project.lakefile.name}, package {project.package})")
    print(_table(["library", "srcDir", "default", "globs", "modules"],
                 [[lib.name, lib.src_dir, "yes" if lib.default else "", " ".join(str(g) for g in lib.globs),
                   str(sum(1 for m in project.modules if m.lib == lib.name))] for lib in project.libs]))
    shown = project.modules if args.all or len(project.modules) <= 40 else project.modules[:20]
    print()
    print(_table(["module", "imports", "path"],
                 [[m.name, str(len(m.imports)), m.path.relative_to(root).as_posix()] for m in shown]))
    if len(shown) < len(project.modules):
        print(f"... {len(project.modules) - len(shown)} more (--all shows every module)")
    fp = project.fingerprint
    print(f"\nfingerprint: {fp.source_count} sources, toolchain {fp.toolchain}, digest {fp.digest[:16]}")
    _print_diagnostics(project)
    return _discovery_status(project)


def _discovery_status(project: Any) -> int:
    """1 when the lakefile could not be read in full (an error diagnostic): modules may be missing."""
    if project.ok:
        return 0
    errors = sum(1 for d in project.diagnostics if d.severity == "error")
    print(f"leanworker: {errors} error(s) reading {project.lakefile.name}: modules may be missing (exit status 1)",
          file=sys.stderr)
    return 1


def run_plan(args: argparse.Namespace) -> int:
    import leanworker as lw
    from leanworker.planner.plan import key_to_json

    with _status(args, f"discovering and planning {args.path}..."):
        project = lw.discover_lake_project(args.path, libs=args.lib or None)
        planner = lw.ImportPlanner(args.capability, tuple(args.base_import), args.max_batch_modules, mode=args.mode)
        plan = planner.plan(project)
    if args.json:
        emit_json({
            "status": "ok" if project.ok else "error", "mode": plan.mode, "fingerprint": plan.fingerprint,
            "source_fingerprint": plan.source_fingerprint, "modules": plan.module_count,
            "batches": [{"key": key_to_json(b.key), "modules": list(b.modules), "fingerprint": b.fingerprint,
                         "source_root": str(b.source_root) if b.source_root else None} for b in plan.batches],
            "diagnostics": _diagnostics_json(project),
        })
        return _discovery_status(project)
    print(f"{plan.module_count} modules in {len(plan.batches)} batches ({plan.mode} mode), "
          f"{len(plan.keys)} session keys, plan {plan.fingerprint[:16]}")
    print(_table(["batch", "modules", "first", "last", "imports"],
                 [[str(i), str(len(b.modules)), b.modules[0], b.modules[-1],
                   " ".join(b.key.imports[:4]) + (" ..." if len(b.key.imports) > 4 else "")]
                  for i, b in enumerate(plan.batches)]))
    _print_diagnostics(project)
    return _discovery_status(project)


def run_trace_render(args: argparse.Namespace) -> int:
    from leanworker.actors.core.tracing import NotATrace, read_trace
    from leanworker.timeline import render_timeline

    try:
        events = read_trace(args.trace_file)
    except OSError as exc:
        print(f"leanworker trace render: cannot read {args.trace_file}: {exc.strerror}", file=sys.stderr)
        return 2
    except NotATrace as exc:
        print(f"leanworker trace render: {exc}", file=sys.stderr)
        return 2
    Path(args.output).write_text(render_timeline(events, f"leanworker trace: {args.trace_file}"), encoding="utf-8")
    if args.json:
        emit_json({"status": "ok", "events": len(events), "output": args.output})
    else:
        print(f"{len(events)} events rendered to {Path(args.output).resolve()}")
    return 0


class _Parser(argparse.ArgumentParser):
    """Bad usage is one line on stderr and exit status 2 (never a usage dump, never a traceback)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _capability(text: str) -> str:
    module, sep, attribute = text.partition(":")
    if not sep or not module or not attribute:
        raise argparse.ArgumentTypeError(f"must be module:attribute (for example my_tool:capability), got {text!r}")
    return text


def _existing_file(text: str) -> str:
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="leanworker", description="Run Lean work on a supervised worker pool.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        child = sub.add_parser(name, help=help_text, description=help_text)
        child.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
        return child

    doctor = add("doctor", "Start a worker, open a session and print its doctor report.")
    doctor.add_argument("--capability", default=MATHLIB, type=_capability,
                        help="module:attribute of the capability to check")
    doctor.set_defaults(handler=run_doctor)

    discover = add("discover", "Find a Lake project's libraries and modules, by Lake's rules. Exit status 1 when "
                               "part of the lakefile could not be read (an error diagnostic: modules may be missing), "
                               "2 on bad usage.")
    discover.add_argument("path", help="the project directory (or any path inside it)")
    discover.add_argument("--lib", action="append", help="a library to read (repeatable; default: default targets)")
    discover.add_argument("--all", action="store_true", help="list every module, however many")
    discover.set_defaults(handler=run_discover)

    plan = add("plan", "Group a Lake project's modules into batches that share a warm session. Exit status 1 when "
                       "part of the lakefile could not be read (an error diagnostic: modules may be missing), 2 on "
                       "bad usage.")
    plan.add_argument("path")
    plan.add_argument("--lib", action="append")
    plan.add_argument("--mode", choices=["shared", "per_header"], default="shared",
                      help="shared: one session on the base imports; per_header: each module's own imports")
    plan.add_argument("--base-import", action="append", default=[], help="a module every session imports")
    plan.add_argument("--max-batch-modules", type=_positive_int, default=None)
    plan.add_argument("--capability", default=MATHLIB, type=_capability)
    plan.set_defaults(handler=run_plan)

    probe = add("probe", "The mathlib-scale run along the normal path (planner, pool, leases, live rows), stage by "
                         "stage, on the fixture capability (a simulation). Exit status 0 only if every stage passed.")
    probe.add_argument("--lake-root", default=None,
                       help="a Lake project whose Mathlib library gives the modules (or LEANWORKER_MATHLIB_ROOT)")
    probe.add_argument("--modules-file", default=None, type=_existing_file, help="a file of module names, one a line")
    probe.add_argument("--limit", type=_positive_int, default=128, help="at most this many modules (default 128)")
    probe.add_argument("--import-ms", type=_non_negative_int, default=200,
                       help="the simulated import time of a session open, in ms (default 200)")
    probe.add_argument("--trace", default=None,
                       help="also write the run's trace here (.jsonl: JSON lines; otherwise Chrome trace JSON)")
    probe.set_defaults(handler=run_probe)

    from leanworker.cli_run import add_run_command

    add_run_command(sub, add)
    from leanworker.cli_check import add_check_command

    add_check_command(sub, add)

    trace = add("trace", "Work with trace files.")
    trace_sub = trace.add_subparsers(dest="trace_command", required=True, parser_class=_Parser)
    render = trace_sub.add_parser("render", help="render a trace as a self-contained HTML/SVG timeline")
    render.add_argument("trace_file")
    render.add_argument("-o", "--output", default="timeline.html")
    render.set_defaults(handler=run_trace_render)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from leanworker.errors import LeanWorkerError

    try:
        code: int = args.handler(args)
        return code
    except LeanWorkerError as exc:
        if args.json:
            emit_json({"status": "error", "error": type(exc).__name__, "message": str(exc)})
        else:
            print(f"leanworker {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader (say, `head`) stopped reading: not an error of ours
        sys.stdout = open(os.devnull, "w")
        return 0
