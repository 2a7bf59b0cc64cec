"""The parser and the entry point: every command, the module that runs it (which adds its options, each with its help
and default, and is loaded only when the command runs), and how a command ends (the exit statuses in _output.py: 0,
1, 2, 130), with one line and never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from leanworker.cli._interrupt import Interrupts
from leanworker.cli._stdout import checked_stdout, discard_stdout
from leanworker.cli._output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    StdoutFailed,
    UsageError,
    emit_json,
    terminal_width,
)

EXIT_STATUSES = ("exit status: 0 everything asked was done; 1 some work could not be done (failed batches or items); "
                 "2 bad usage, nothing to do, or a set-up that cannot work (one line, before any work); "
                 "130 interrupted (Ctrl-C).")
DEBUG_ENV = "LEANWORKER_DEBUG"  # set to 1 to see the traceback of an internal error


# -- the parser ------------------------------------------------------------------------------------------------------

# Every command: its summary (what `leanworker --help` lists) and the details its own --help adds. Its options are
# added by the module that runs it (add_options), once it is chosen.
COMMANDS: dict[str, tuple[str, str]] = {
    "probe": ("The mathlib-scale run along the normal path, stage by stage, with figures.",
              "Planner, pool, leases, live rows, cancellation, a killed worker, cycling, a slow consumer, memory and "
              "the Lean REPL simulator, on the fixture capability (a simulation). Exit status 0 only if every stage "
              "passed."),
    "discover": ("Find a Lake project's libraries and modules, by Lake's rules.",
                 "Exit status 1 when part of the lakefile could not be read (modules may be missing), 2 when the "
                 "project has no modules."),
    "plan": ("Group a Lake project's modules into batches that share a warm session.",
             "Exit status 1 when part of the lakefile could not be read (modules may be missing), 2 when the project "
             "has no modules."),
    "run": ("Discover and plan a Lake project, then run every batch with a capability command on a worker pool.",
            "Concurrent, session-affine, retried, and committed exactly once with --output. Exit status 0 when every "
            "batch committed, 1 when some failed or were quarantined, 2 on bad usage, a project without modules or a "
            "set-up that cannot work, 130 after Ctrl-C (it says how to resume)."),
    "check": ("Check Lean items on warm REPLs, one per import set.",
              "ITEMS is JSON lines of {\"id\": ..., \"code\": \"...\"}, each code with its own import header. Exit "
              "status 0 when every item has a verdict (ok, sorry or error), 1 when some timed out, crashed or could "
              "not be checked, 2 on bad usage or a set-up that cannot work, 130 after Ctrl-C (it says how to "
              "resume)."),
    "serve": ("A proof-checking service over warm Lean REPLs (needs the serve extra; docs/serve.md).",
              "Kimina-compatible endpoints and a streaming native one. Exit status 0 after SIGTERM or Ctrl-C, 2 when "
              "it cannot start."),
    "doctor": ("Start a worker, open a session and print its doctor report.",
               "Exit status 1 when a check failed or the session could not open."),
    "trace": ("Work with trace files (written by probe --trace or a lw.Tracer).", ""),
    "trace render": ("Render a trace as a self-contained HTML timeline (no network, no framework).",
                     "docs/tracing.md says how to read it."),
}


def build_parser(*, lazy: bool = False) -> argparse.ArgumentParser:
    """The ``leanworker`` parser with every command and its options (a tool that reads the parser, a completion or
    man-page generator, sees them all). ``lazy``: each command's options are added only when it parses, so that a
    command loads only the module that runs it (what ``main`` uses: ``leanworker --version`` loads no command)."""
    from leanworker import __version__

    parser = _Parser(prog="leanworker", formatter_class=_Formatter,
                     description="Run Lean work on a supervised pool of warm worker processes.",
                     epilog=EXIT_STATUSES)
    parser.add_argument("--version", action="version", version=f"leanworker {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", title="commands", parser_class=_Parser)
    for command in COMMANDS:
        if " " not in command:
            add_command(sub, command, lazy)
    return parser


def add_command(sub: Any, command: str, lazy: bool) -> None:
    """``command``'s parser (named by its last word) in the subparsers ``sub``, with ``--json`` and its other options
    (``lazy``: those are added when it parses)."""
    summary, details = COMMANDS[command]
    parser = sub.add_parser(command.rpartition(" ")[2], help=summary, description=f"{summary} {details}".strip(),
                            formatter_class=_Formatter, command=command if lazy else None)
    json_option(parser)
    if not lazy:
        add_options(command, parser, lazy)


def add_options(command: str, parser: argparse.ArgumentParser, lazy: bool) -> None:
    """Add ``command``'s options and handler to its parser. The one place that maps a command to the module that
    runs it: that module is imported here, once the command is chosen (or at once for a whole parser), so that a
    command loads only what it needs."""
    add: Callable[[argparse.ArgumentParser], None]
    if command == "probe":
        from leanworker.cli._probe import add_probe_options as add
    elif command == "discover":
        from leanworker.cli._project import add_discover_options as add
    elif command == "plan":
        from leanworker.cli._project import add_plan_options as add
    elif command == "run":
        from leanworker.cli._run import add_run_options as add
    elif command == "check":
        from leanworker.cli._check import add_check_options as add
    elif command == "serve":
        from leanworker.serve.command import add_serve_options as add
    elif command == "doctor":
        from leanworker.cli._probe import add_doctor_options as add
    elif command == "trace":
        add_trace_commands(parser, lazy)
        return
    elif command == "trace render":
        from leanworker.cli._trace import add_render_options as add
    else:
        raise ValueError(f"no such command: {command}")
    add(parser)


def add_trace_commands(trace: argparse.ArgumentParser, lazy: bool) -> None:
    sub = trace.add_subparsers(dest="trace_command", title="subcommands", parser_class=_Parser, required=True)
    add_command(sub, "trace render", lazy)
    sub.metavar = "{" + ",".join(sub.choices) + "}"  # what `leanworker trace` alone says is required: {render}


class _Parser(argparse.ArgumentParser):
    """Bad usage is one line on stderr and exit status 2 (never a usage dump, never a traceback). A command's parser
    made lazily gets its options (add_options) the first time it parses."""

    def __init__(self, *args: Any, command: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.command = command
        self.options_added = command is None

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        if self.command is not None and not self.options_added:
            self.options_added = True
            add_options(self.command, self, lazy=True)
        return super().parse_known_args(*args, **kwargs)


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=min(terminal_width(), 110), max_help_position=30)


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
    parser = build_parser(lazy=True)
    if not arguments:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(arguments)
    if args.subcommand is None:  # options without a command (for example only --json)
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.json = getattr(args, "json", False)
    args.argv = arguments
    with Interrupts() as interrupts, checked_stdout():
        args.interrupts = interrupts
        try:
            return run_command(args, interrupts)
        except KeyboardInterrupt:  # a late Ctrl-C, raised by its handler while an error was being reported
            return interrupted(args)


def run_command(args: argparse.Namespace, interrupts: Interrupts) -> int:
    """Run the parsed command; an error after Ctrl-C is reported as the interruption (the Ctrl-C may have caused
    it: a worker it killed)."""
    try:
        code: int = args.handler(args)
        return code
    except UsageError as exc:
        if interrupts.pressed():
            return interrupted(args)
        return fail(args, "usage", str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return interrupted(args)
    except StdoutFailed as exc:
        if interrupts.pressed():
            return interrupted(args)
        return output_failed(args, exc)
    except BrokenPipeError:  # the reader (say, `head`) stopped reading: not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stdout for the rest of the process
        return EXIT_OK
    except Exception as exc:
        from leanworker.errors import LeanWorkerError

        if interrupts.pressed():
            return interrupted(args)
        if isinstance(exc, LeanWorkerError):
            return fail(args, type(exc).__name__, str(exc), EXIT_USAGE)
        if os.environ.get(DEBUG_ENV):
            import traceback

            traceback.print_exc()
        return fail(args, type(exc).__name__, f"internal error: {type(exc).__name__}: {exc} (please report it; "
                    f"{DEBUG_ENV}=1 shows where)", EXIT_FAILED)


def interrupted(args: argparse.Namespace) -> int:
    print(f"leanworker {command_name(args)}: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def output_failed(args: argparse.Namespace, error: StdoutFailed) -> int:
    """Stdout cannot take the output: one line on stderr, exit status 1. What the command committed elsewhere (its
    ``--output`` file) stays committed."""
    discard_stdout()
    print(f"leanworker {command_name(args)}: cannot write to stdout: {error.strerror}", file=sys.stderr)
    return EXIT_FAILED


def fail(args: argparse.Namespace, kind: str, message: str, code: int) -> int:
    """One line on stderr (and with --json, the error as JSON on stdout where stdout can take it); returns
    ``code``."""
    first = message.strip().splitlines()[0] if message.strip() else kind
    if args.json:
        try:
            emit_json({"status": "error", "error": kind, "message": message})
        except StdoutFailed:
            discard_stdout()  # the line on stderr still says what went wrong
    print(f"leanworker {command_name(args)}: {first}", file=sys.stderr)
    return code
