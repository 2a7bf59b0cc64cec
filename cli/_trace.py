"""``leanworker trace render``: a trace file as a self-contained HTML timeline."""

from __future__ import annotations

import argparse
from pathlib import Path

from leanworker.cli._output import EXIT_OK, UsageError, emit_json, plural
from leanworker.cli._preflight import not_an_input, readable_file, writable_file


def add_render_options(render: argparse.ArgumentParser) -> None:
    render.add_argument("trace_file", metavar="TRACE", help="a trace file: .jsonl (JSON lines) or Chrome trace JSON")
    render.add_argument("-o", "--output", default="timeline.html", metavar="FILE",
                        help="the HTML file to write (default: timeline.html)")
    render.set_defaults(handler=run_trace_render)


def run_trace_render(args: argparse.Namespace) -> int:
    from leanworker.actors.core.tracing import NotATrace, read_trace
    from leanworker.timeline import render_timeline

    trace = readable_file(args.trace_file, "trace")
    output = writable_file(args.output, "--output")
    not_an_input(args.output, "--output", {"the trace": trace})
    try:
        events = read_trace(args.trace_file)
    except OSError as exc:
        raise UsageError(f"cannot read {args.trace_file}: {exc.strerror or exc}") from None
    except NotATrace as exc:
        # read_trace names the first field it missed in Python's words ("list indices must be integers..."): say
        # instead what a trace is
        reason = str(exc)
        if " is JSON but not a leanworker trace" in reason:
            reason = (f"{args.trace_file} is JSON but not a leanworker trace (JSON lines of events, or Chrome trace "
                      "JSON, as probe --trace and lw.Tracer write them)")
        raise UsageError(reason) from None
    if not events:
        raise UsageError(f"{args.trace_file} holds no events: nothing to render")
    try:
        output.write_text(render_timeline(events, f"leanworker trace: {args.trace_file}"), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--output {args.output}: cannot write: {exc.strerror or exc}") from None
    if args.json:
        emit_json({"status": "ok", "events": len(events), "output": str(output.resolve())})
    else:
        print(f"{plural(len(events), 'event')} rendered to {output.resolve()}")
    return EXIT_OK
