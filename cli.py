"""The ``leanworker`` command line: probe, discover, plan, doctor."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

MATHLIB = "leanworker.fixtures.mathlib_scale:capability"


def emit_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout (the stable machine-readable output of every command)."""
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def run_doctor(args: argparse.Namespace) -> int:
    import leanworker as lw

    with lw.Worker(lw.SessionKey(args.capability)) as worker:
        meta = worker.metadata()
        report = worker.doctor()
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
    import leanworker as lw

    with lw.Worker(lw.SessionKey(args.capability)) as worker:
        stream = worker.stream("index")
        rows = stream.collect()
        snapshot = worker.snapshot()
    summary = stream.summary
    assert summary is not None
    result = {"status": "passed" if len(rows) == 47 else "failed", "rows": len(rows),
              "per_stream": summary.per_stream, "metadata": summary.metadata, "worker": vars(snapshot)}
    if args.json:
        emit_json(result)
    else:
        print(f"index: {len(rows)} rows {summary.per_stream} (simulated fixture), committed={stream.committed}")
        print(f"worker: generation {snapshot.generation}, pid {snapshot.pid}, rss {snapshot.rss_mib} MiB")
        print(f"status: {result['status']}")
    return 0 if result["status"] == "passed" else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leanworker", description="Run Lean work on a supervised worker pool.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        child = sub.add_parser(name, help=help_text, description=help_text)
        child.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
        return child

    doctor = add("doctor", "Start a worker, open a session and print its doctor report.")
    doctor.add_argument("--capability", default=MATHLIB, help="module:attribute of the capability to check")
    doctor.set_defaults(handler=run_doctor)

    probe = add("probe", "Run the mathlib-scale fixture through the runtime and report what happened.")
    probe.add_argument("--capability", default=MATHLIB)
    probe.set_defaults(handler=run_probe)
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
