"""The parser and the entry point: every command, its options (each with its help and default), and how a command
ends (the exit statuses in _output.py: 0, 1, 2, 130), with one line and never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from leanworker.cli._check import add_check_command
from leanworker.cli._interrupt import Interrupts
from leanworker.cli._output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    emit_json,
    terminal_width,
)
from leanworker.cli._probe import run_doctor, run_probe
from leanworker.cli._project import FIXTURE_CAPABILITY, run_discover, run_plan
from leanworker.cli._run import add_run_command
from leanworker.cli._trace import run_trace_render
from leanworker.serve.command import add_serve_command
from leanworker.cli._values import capability, existing_file, module_name, non_negative_int, positive_int

EXIT_STATUSES = ("exit status: 0 everything asked was done; 1 some work could not be done (failed batches or items); "
                 "2 bad usage, nothing to do, or a set-up that cannot work (one line, before any work); "
                 "130 interrupted (Ctrl-C).")
DEBUG_ENV = "LEANWORKER_DEBUG"  # set to 1 to see the traceback of an internal error


class _Parser(argparse.ArgumentParser):
    """Bad usage is one line on stderr and exit status 2 (never a usage dump, never a traceback)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=min(terminal_width(), 110), max_help_position=30)


# -- the parser ------------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from leanworker import __version__

    parser = _Parser(prog="leanworker", formatter_class=_Formatter,
                     description="Run Lean work on a supervised pool of warm worker processes.",
                     epilog=EXIT_STATUSES)
    parser.add_argument("--version", action="version", version=f"leanworker {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", title="commands", parser_class=_Parser)

    def add(name: str, summary: str, details: str = "", parent: Any = sub) -> argparse.ArgumentParser:
        child: argparse.ArgumentParser = parent.add_parser(
            name, help=summary, description=f"{summary} {details}".strip(), formatter_class=_Formatter)
        json_option(child)
        return child

    probe = add("probe", "The mathlib-scale run along the normal path, stage by stage, with figures.",
                "Planner, pool, leases, live rows, cancellation, a killed worker, cycling, a slow consumer, memory "
                "and the Lean REPL simulator, on the fixture capability (a simulation). Exit status 0 only if every "
                "stage passed.")
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

    discover = add("discover", "Find a Lake project's libraries and modules, by Lake's rules.",
                   "Exit status 1 when part of the lakefile could not be read (modules may be missing), 2 when the "
                   "project has no modules.")
    discover.add_argument("path", help="the project directory, or any path inside it")
    discover.add_argument("--lib", action="append", metavar="NAME",
                          help="a library to read, repeatable (default: the default targets, else every library)")
    discover.add_argument("--all", action="store_true", help="list every module, however many (default: off: "
                                                             "the first 20 of more than 40)")
    discover.set_defaults(handler=run_discover)

    plan = add("plan", "Group a Lake project's modules into batches that share a warm session.",
               "Exit status 1 when part of the lakefile could not be read (modules may be missing), 2 when the "
               "project has no modules.")
    plan.add_argument("path", help="the project directory, or any path inside it")
    plan.add_argument("--lib", action="append", metavar="NAME",
                      help="a library to plan, repeatable (default: the default targets, else every library)")
    plan.add_argument("--mode", choices=["shared", "per_header"], default="shared",
                      help="shared: one session on the base imports; per_header: a session per import header "
                           "(default: shared)")
    plan.add_argument("--base-import", action="append", default=[], type=module_name, metavar="MODULE",
                      help="a module every session imports, repeatable (default: none)")
    plan.add_argument("--max-batch-modules", type=positive_int, default=None, metavar="N",
                      help="at most this many modules a batch (default: no limit)")
    plan.add_argument("--capability", default=FIXTURE_CAPABILITY, type=capability, metavar="MODULE:ATTR",
                      help="the capability named in each batch's session key (default: the simulated fixture "
                           f"{FIXTURE_CAPABILITY})")
    plan.set_defaults(handler=run_plan)

    add_run_command(add)
    add_check_command(add)
    add_serve_command(add)

    doctor = add("doctor", "Start a worker, open a session and print its doctor report.",
                 "Exit status 1 when a check failed or the session could not open.")
    doctor.add_argument("--capability", default=FIXTURE_CAPABILITY, type=capability, metavar="MODULE:ATTR",
                        help=f"the capability to check (default: the simulated fixture {FIXTURE_CAPABILITY})")
    doctor.set_defaults(handler=run_doctor)

    trace = add("trace", "Work with trace files (written by probe --trace or a lw.Tracer).")
    trace_sub = trace.add_subparsers(dest="trace_command", metavar="SUBCOMMAND", title="subcommands",
                                     parser_class=_Parser, required=True)
    render = add("render", "Render a trace as a self-contained HTML timeline (no network, no framework).",
                 "docs/tracing.md says how to read it.", parent=trace_sub)
    render.add_argument("trace_file", metavar="TRACE", help="a trace file: .jsonl (JSON lines) or Chrome trace JSON")
    render.add_argument("-o", "--output", default="timeline.html", metavar="FILE",
                        help="the HTML file to write (default: timeline.html)")
    render.set_defaults(handler=run_trace_render)
    return parser


def json_option(parser: argparse.ArgumentParser) -> None:
    """``--json`` on a parser; accepted at any level after the command (``trace --json render`` as well as
    ``trace render X --json``)."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="one JSON object on stdout instead of tables (default: off)")


# -- running a command -----------------------------------------------------------------------------------------------

def command_name(args: argparse.Namespace) -> str:
    name = str(args.subcommand)
    return f"{name} {args.trace_command}" if name == "trace" and getattr(args, "trace_command", None) else name


def put_working_directory_on_path() -> None:
    """Find modules (a capability such as ``my_tool:capability``) in the current directory, as ``python -m``
    does; the workers get that directory too (LEANWORKER_SYS_PATH)."""
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (0, 1, 2 or 130)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    put_working_directory_on_path()
    parser = build_parser()
    if not arguments:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(arguments)
    if args.subcommand is None:  # options without a command (for example only --json)
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.json = getattr(args, "json", False)
    args.argv = arguments
    with Interrupts() as interrupts:
        args.interrupts = interrupts
        try:
            code: int = args.handler(args)
            return code
        except UsageError as exc:
            return fail(args, "usage", str(exc), EXIT_USAGE)
        except KeyboardInterrupt:
            print(f"leanworker {command_name(args)}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:  # the reader (say, `head`) stopped reading: not an error of ours
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stdout for the rest of the process
            return EXIT_OK
        except Exception as exc:
            from leanworker.errors import LeanWorkerError

            if interrupts.requested:
                print(f"leanworker {command_name(args)}: interrupted", file=sys.stderr)
                return EXIT_INTERRUPTED
            if isinstance(exc, LeanWorkerError):
                return fail(args, type(exc).__name__, str(exc), EXIT_USAGE)
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            return fail(args, type(exc).__name__, f"internal error: {type(exc).__name__}: {exc} (please report it; "
                        f"{DEBUG_ENV}=1 shows where)", EXIT_FAILED)


def fail(args: argparse.Namespace, kind: str, message: str, code: int) -> int:
    """One line on stderr (and with --json, the error as JSON on stdout); returns ``code``."""
    first = message.strip().splitlines()[0] if message.strip() else kind
    if args.json:
        emit_json({"status": "error", "error": kind, "message": message})
    print(f"leanworker {command_name(args)}: {first}", file=sys.stderr)
    return code
