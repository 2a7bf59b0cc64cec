"""``leanworker check ITEMS.jsonl``: proof checking at scale on warm Lean REPLs, or with ``--mode file`` one ``lean
--json`` process an item (docs/lean.md).

Before any item runs: the items file is read whole (one bad line, no item, or a repeated id stops it), the workspace
must exist, and the REPL (or ``lean``) must resolve to a program that can run; then the first session opens (the
REPL imports its header once) and must succeed. Items run one request each on warm sessions, so each result is
written as it arrives and ``--resume`` skips exactly the items whose id and code already have a result
(_results.py). How results are counted and what the run concludes from them is _check_tally.py; this module runs
the pool and prints.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from leanworker.cli._chaos import add_chaos_arguments, chaos_json, chaos_line, chaos_plan
from leanworker.cli._check_tally import CheckTally, Shape, interrupted_line, open_timeout, request_timeout
from leanworker.cli._output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    elide,
    emit_json,
    plural,
    table,
    terminal_width,
)
from leanworker.cli._preflight import (
    executable_command,
    existing_directory,
    is_simulator,
    not_an_input,
    readable_file,
    simulator_command,
    writable_file,
)
from leanworker.cli._progress_bar import REMAINING, ProgressBar
from leanworker.cli._results import Item, ResultWriter, read_items, resume
from leanworker.cli._session import check_lean_answers, open_first_session
from leanworker.cli._values import positive_float, positive_int

UNCHECKED_SHOWN = 10
FILE_PROBE_TIMEOUT = 120.0  # seconds lean may take on an empty prelude file before the check says it does not run
SIMULATED_NOTE = "SIMULATED: these verdicts come from leanworker's REPL simulator, not from Lean"


def add_check_options(check: argparse.ArgumentParser) -> None:
    """``check``'s options and handler (its parser has ``--json`` already)."""
    check.add_argument("items", metavar="ITEMS", help="a JSON-lines file of {\"id\": ..., \"code\": \"...\"}")
    check.add_argument("--workspace", default=None, metavar="DIR",
                       help="the Lean project the REPL runs in (default: none: the current directory)")
    repl = check.add_mutually_exclusive_group()
    repl.add_argument("--repl", default=None, metavar="COMMAND",
                      help="the REPL's command line (default: $LEANWORKER_REPL, else the workspace's built REPL "
                           "under lake env, else repl on PATH)")
    repl.add_argument("--simulator", action="store_true",
                      help="check on leanworker's bundled REPL simulator, run by leanworker's own Python: no Lean "
                           "needed, and every verdict is marked simulated (default: off)")
    check.add_argument("--mode", choices=("repl", "file"), default="repl",
                       help="repl: warm REPLs, one per import set; file: one `lean --json` process an item, items "
                            "may also be {\"id\", \"path\"}, no REPL needed (default: repl)")
    check.add_argument("--lean", default=None, metavar="COMMAND",
                       help="with --mode file, the lean command line (default: $LEANWORKER_LEAN, else `lake env lean` "
                            "in a workspace with a lakefile, else lean on PATH)")
    check.add_argument("--memory-mib", type=positive_int, default=None, metavar="MIB",
                       help="with --mode file, the RSS limit of each item's Lean process (default: none)")
    check.add_argument("--import-timeout", type=positive_float, default=None, metavar="S",
                       help="seconds a REPL's header import may take, at each start and restart (default: 300)")
    check.add_argument("--workers", type=positive_int, default=2, metavar="N",
                       help="worker processes at once (default: 2)")
    check.add_argument("--timeout", type=positive_float, default=None, metavar="S",
                       help="seconds per item (default: none: the REPL has no deadline)")
    check.add_argument("--output", default=None, metavar="FILE",
                       help="write one result a line here, each as it arrives (default: stdout)")
    check.add_argument("--resume", action="store_true",
                       help="skip the items whose id and code already have a result in --output (default: off: "
                            "--output starts afresh)")
    add_chaos_arguments(check)
    check.set_defaults(handler=run_check)


def resolve_repl(args: argparse.Namespace, workspace: str | None) -> str:
    """The REPL command line the workers will run, checked here so a missing REPL is one line, not one per item."""
    if args.simulator:
        return simulator_command()
    if args.repl is not None:
        return executable_command(args.repl, "--repl", workspace)
    from leanworker.errors import CommandError
    from leanworker.lean.session import REPL_ENV, find_repl

    try:
        argv = find_repl(None, workspace)
    except CommandError:
        raise UsageError(f"no Lean REPL found (searched ${REPL_ENV}, the workspace's built REPL under lake env, and "
                         "'repl' on PATH): pass --repl COMMAND, or --simulator to try leanworker without Lean "
                         "(docs/lean.md)") from None
    what = f"${REPL_ENV}" if os.environ.get(REPL_ENV, "").strip() else "the REPL"
    return executable_command(shlex.join(argv), what, workspace)


def resolve_lean(args: argparse.Namespace, workspace: str | None) -> str:
    """With ``--mode file``, the ``lean`` command line the workers will run, checked here."""
    from leanworker.lean.toolchain import LEAN_ENV, find_lean

    if args.lean is not None:
        return executable_command(args.lean, "--lean", workspace)
    argv = find_lean(None, workspace)
    if argv is None:
        raise UsageError(f"no lean found (searched ${LEAN_ENV}, `lake env lean` in the workspace, and 'lean' on PATH "
                         "and in elan's folders): pass --lean COMMAND (docs/lean.md)")
    what = f"${LEAN_ENV}" if os.environ.get(LEAN_ENV, "").strip() else "lean"
    return executable_command(shlex.join(argv), what, workspace)


def check_mode_options(args: argparse.Namespace) -> None:
    """Options of one mode given with the other: one line naming the first."""
    if args.mode == "file":
        for name, given in (("--repl", args.repl is not None), ("--simulator", args.simulator)):
            if given:
                raise UsageError(f"{name} goes with --mode repl, not --mode file")
        if args.import_timeout is not None:
            raise UsageError("--import-timeout goes with --mode repl (lean --json imports within --timeout)")
    else:
        for name, given in (("--lean", args.lean is not None), ("--memory-mib", args.memory_mib is not None)):
            if given:
                raise UsageError(f"{name} goes with --mode file")
    if args.resume and args.output is None:
        raise UsageError("--resume needs --output")


@dataclass
class _Plan:
    """How the items to check become batches, requests and result rows, for one mode."""

    batches: list[Any]
    request: Callable[[Any], dict[str, Any]]
    row: Shape


def plan_checks(args: argparse.Namespace, todo: list[Item], workspace: str | None, command: str) -> _Plan:
    """One batch an item (so each result is final, and written, as it arrives), on the mode's capability."""
    from leanworker.lean.items import plan_file_items, plan_items, shift_row, split_item

    toolchain = _toolchain(workspace)
    if args.mode == "file":
        def file_request(batch: Any) -> dict[str, Any]:
            return {"items": [{"id": int(i), **todo[int(i)].source()} for i in batch.modules],
                    "timeout": args.timeout, "memory_mib": args.memory_mib}

        return _Plan(plan_file_items(len(todo), workspace, command, toolchain, per_batch=1), file_request,
                     lambda payload, index: dict(payload))
    checks = [split_item(index, item.code or "") for index, item in enumerate(todo)]

    def repl_request(batch: Any) -> dict[str, Any]:
        return {"items": [{"id": int(i), "code": checks[int(i)].body} for i in batch.modules],
                "timeout": args.timeout}

    return _Plan(plan_items(checks, workspace, command, toolchain, per_batch=1, import_timeout=args.import_timeout),
                 repl_request,
                 lambda payload, index: shift_row(payload, checks[index]))


def run_check(args: argparse.Namespace) -> int:
    try:
        try:
            return _run_check(args)
        except Exception:  # after Ctrl-C, an error it caused (a worker it killed as the first session opened)
            if args.interrupts.pressed():
                return _interrupted_before_any_item(args)
            raise
    except KeyboardInterrupt:  # before the first session opened: nothing of this run was written
        return _interrupted_before_any_item(args)


def _interrupted_before_any_item(args: argparse.Namespace) -> int:
    line = interrupted_line(args.output, args.argv, None, 0)
    if args.json:
        emit_json({"status": "interrupted", "message": line, "output": args.output})
    print(f"leanworker check: {line}", file=sys.stderr)
    return EXIT_INTERRUPTED


def _run_check(args: argparse.Namespace) -> int:
    import leanworker as lw

    check_mode_options(args)
    faults = chaos_plan(args)
    workspace = str(existing_directory(args.workspace, "--workspace")) if args.workspace else None
    items = read_items(readable_file(args.items, "ITEMS"), paths=args.mode == "file", workspace=workspace)
    command = resolve_lean(args, workspace) if args.mode == "file" else resolve_repl(args, workspace)
    simulated = args.mode == "repl" and is_simulator(command)
    regular = "--resume reads back the results it holds" if args.resume else None
    output = writable_file(args.output, "--output", regular) if args.output else None
    if output is not None:
        not_an_input(args.output, "--output", {"the items file": readable_file(args.items, "ITEMS")})
    earlier = resume(output, items, simulated) if output is not None and args.resume else None
    todo = [item for item in items if earlier is None or item.key not in earlier.done]
    report = _Report(args, items, todo, simulated, dict(earlier.statuses) if earlier else {}, faults)
    if not todo:
        return report.finish()
    plan = plan_checks(args, todo, workspace, command)
    writer: ResultWriter | None = None
    finished = False
    interrupts = args.interrupts
    show_bar = not args.json and sys.stderr.isatty()
    bar = ProgressBar("check", len(todo), "items", ("rate", REMAINING, "statuses")) if show_bar else None
    config = lw.PoolConfig(max_workers=args.workers, worker=lw.WorkerConfig(
        request_timeout=request_timeout(faults is not None, args.timeout),
        open_timeout=open_timeout(args.mode, import_timeout(args))))
    try:
        with lw.WorkerPool(config) as pool:
            first = plan.batches[0].key
            if not open_first_session(pool, plan.batches, "check") or not first.imports or args.mode == "file":
                # no import has shown yet that the REPL (or lean) answers at all
                check_lean_answers(pool, first, args.mode, program_name(args, command),
                                   FILE_PROBE_TIMEOUT if args.mode == "file" else import_timeout(args),
                                   args.memory_mib)
            if output is not None:  # opened only now: a set-up that cannot work leaves the earlier results alone
                writer = ResultWriter.to_file(output, append=earlier is not None)
            elif not args.json:
                writer = ResultWriter(sys.stdout, owned=False)
            with pool.run(plan.batches, "check", plan.request, faults=faults) as run:
                interrupts.cancel_with(run.cancel)
                for result in run:
                    report.take(result, plan.row, writer)
                    if bar is not None:
                        show_progress(bar, report.tally.done_now, report.tally.by_status)
            finished = run.summary is not None and not run.summary.batches_cancelled
            if finished:  # every item has its result: a Ctrl-C from here on changes nothing
                interrupts.work_finished()
            interrupts.cancel_with(lambda: None)  # a Ctrl-C from here on waits for the workers to stop
            report.sessions_opened = pool.snapshot().sessions_opened
    except KeyboardInterrupt:  # before the first item ran
        pass
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    if not finished and interrupts.pressed():
        return report.interrupted()
    return report.finish()


def show_progress(bar: ProgressBar, done: int, by_status: dict[str, int]) -> None:
    """Items done of all, rate, ETA and counts by status."""
    elapsed = bar.elapsed
    rate = f"{done / elapsed:.0f} items/s" if elapsed else ""
    bar.update(done, rate=rate, statuses=" ".join(f"{k} {v}" for k, v in sorted(by_status.items())))


def program_name(args: argparse.Namespace, command: str) -> str:
    """The Lean program, as the person named it (for a one-line error)."""
    if args.mode == "file":
        return f"--lean {args.lean}" if args.lean is not None else f"lean ({command})"
    if args.repl is not None:
        return f"--repl {args.repl}"
    if args.simulator:
        return "the REPL simulator"
    from leanworker.lean.session import REPL_ENV

    return f"${REPL_ENV} ({command})" if os.environ.get(REPL_ENV, "").strip() else f"the REPL ({command})"


def import_timeout(args: argparse.Namespace) -> float:
    from leanworker.lean.session import DEFAULT_IMPORT_TIMEOUT

    return float(args.import_timeout) if args.import_timeout is not None else DEFAULT_IMPORT_TIMEOUT


def _toolchain(workspace: str | None) -> str | None:
    if workspace is None:
        return None
    from leanworker.lean import find_toolchain

    return find_toolchain(workspace).fingerprint


class _Report:
    """Prints the end of a run from its tally: a table (or JSON), and the unchecked items."""

    def __init__(self, args: argparse.Namespace, items: list[Item], todo: list[Item], simulated: bool,
                 by_status: dict[str, int], faults: Any = None) -> None:
        self.args = args
        self.faults = faults  # the --chaos plan, or None
        self.tally = CheckTally(len(items), todo, simulated, by_status)
        self.sessions_opened = 0
        self.results: list[dict[str, Any]] = []  # kept only for --json without --output

    def take(self, result: Any, shape: Shape, writer: ResultWriter | None) -> None:
        for checked in self.tally.take(result, shape):
            if writer is not None:
                writer.write(checked)
            elif self.args.json:
                self.results.append(checked)

    def summary_json(self, status: str) -> dict[str, Any]:
        tally = self.tally
        data: dict[str, Any] = {
            "status": status, "simulated": tally.simulated, "items": tally.items, "skipped": tally.skipped,
            "checked": tally.checked, "by_status": tally.by_status, "unchecked": tally.unchecked,
            "sessions_opened": self.sessions_opened,
            "output": self.args.output}
        if self.faults is not None:
            data["chaos"] = chaos_json(self.args, self.faults, [str(u["id"]) for u in tally.injected])
        if self.args.json and self.args.output is None:
            data["results"] = self.results
        return data

    def finish(self) -> int:
        tally = self.tally
        status = tally.status()
        if self.args.json:
            emit_json(self.summary_json(status))
            return EXIT_OK if status == "ok" else EXIT_FAILED
        out = sys.stderr if self.args.output is None else sys.stdout
        if not tally.todo:
            print(f"nothing left to check: all {plural(tally.items, 'item')} have results in "
                  f"{self.args.output}", file=out)
        statuses = sorted(tally.by_status)
        injected = tally.injected
        chaos = self.faults is not None  # with --chaos: items lost to injected faults, apart
        print(table(["items", "done before", "checked", *statuses, "not checked", *(["injected"] if chaos else [])],
                    [[str(tally.items), str(tally.skipped), str(tally.checked),
                      *(str(tally.by_status[s]) for s in statuses), str(len(tally.unchecked)),
                      *([str(len(injected))] if chaos else [])]]), file=out)
        if chaos:
            print(chaos_line(self.args, self.faults, len(injected), "item"), file=out)
        if tally.simulated:
            print(SIMULATED_NOTE, file=out)
        width = terminal_width()
        for entry in tally.unchecked[:UNCHECKED_SHOWN]:
            why = " (an injected fault)" if entry.get("injected") else ""
            print(elide(f"not checked{why}: {entry['id']}: {entry['error']}", width), file=sys.stderr)
        if len(tally.unchecked) > UNCHECKED_SHOWN:
            print(f"... {len(tally.unchecked) - UNCHECKED_SHOWN} more not checked (--json lists every one)",
                  file=sys.stderr)
        if self.args.output is not None:
            print(f"results: {self.args.output}", file=out)
        return EXIT_OK if status == "ok" else EXIT_FAILED

    def interrupted(self) -> int:
        """The one line after Ctrl-C: how many items have results, and the command that resumes."""
        line = interrupted_line(self.args.output, self.args.argv, self.tally.checked, self.tally.items)
        if self.args.json:
            emit_json({**self.summary_json("interrupted"), "message": line})
        print(f"leanworker check: {line}", file=sys.stderr)
        return EXIT_INTERRUPTED
