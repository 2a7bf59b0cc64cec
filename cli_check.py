"""``leanworker check ITEMS.jsonl``: proof checking at scale on warm Lean REPLs (docs/lean.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_check_command(sub: Any, add: Any) -> None:
    check = add("check", "Check Lean items ({\"id\", \"code\"} per line, each code with its own import header) on "
                         "warm REPLs, one per import set, with pool.run. Exit status 0 when every item was checked "
                         "(whatever its status), 1 when some could not be, 2 on bad usage.")
    check.add_argument("items", help="a JSON-lines file of {\"id\": ..., \"code\": \"...\"}")
    check.add_argument("--workspace", default=None, help="the Lean project the REPL runs in (default: none)")
    check.add_argument("--repl", default=None, help="the REPL's command line (else LEANWORKER_REPL, the project's "
                                                    "built REPL under lake env, or repl on PATH)")
    check.add_argument("--workers", type=int, default=2)
    check.add_argument("--timeout", type=float, default=None, help="seconds per item (the REPL has no deadline)")
    check.add_argument("--output", default=None, help="write one result per line here (else stdout)")
    check.set_defaults(handler=run_check)


def _fail(message: str) -> int:
    print(f"leanworker check: {message}", file=sys.stderr)
    return 2


def run_check(args: argparse.Namespace) -> int:
    import leanworker as lw
    from leanworker.cli import _table, emit_json
    from leanworker.lean.items import plan_items, shift_row, split_item

    if args.workers < 1 or (args.timeout is not None and args.timeout <= 0):
        return _fail("--workers must be >= 1 and --timeout > 0")
    try:
        lines = open(args.items, encoding="utf-8").read().splitlines()
    except OSError as exc:
        return _fail(f"cannot read {args.items}: {exc.strerror}")
    items = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            return _fail(f"{args.items}:{number}: not JSON ({exc})")
        if not isinstance(record, dict) or not isinstance(record.get("code"), str) or "id" not in record:
            return _fail(f'{args.items}:{number}: an item is {{"id": ..., "code": "..."}}')
        items.append(split_item(record["id"], record["code"]))
    toolchain = lw_toolchain(args.workspace)
    batches = plan_items(items, args.workspace, args.repl, toolchain, per_batch=64)

    def request(batch: lw.PlannedBatch) -> dict[str, Any]:
        return {"items": [{"id": int(i), "code": items[int(i)].body} for i in batch.modules],
                "timeout": args.timeout}

    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    bar = _CheckBar(len(items)) if not args.json and sys.stderr.isatty() else None
    by_status: dict[str, int] = {}
    unchecked: list[dict[str, Any]] = []
    try:
        with lw.WorkerPool(lw.PoolConfig(max_workers=args.workers)) as pool:
            with pool.run(batches, "check", request) as run:
                for result in run:
                    if not result.committed:
                        unchecked += [{"id": items[int(i)].id, "error": f"{type(result.error).__name__}: "
                                       f"{result.error}"} for i in result.modules]
                        continue
                    for row in result.rows:
                        item = items[int(row.payload["id"])]
                        checked_row = {**shift_row(row.payload, item), "id": item.id}
                        status = str(checked_row["status"])
                        by_status[status] = by_status.get(status, 0) + 1
                        if not (args.json and out is sys.stdout):
                            out.write(json.dumps(checked_row, ensure_ascii=False) + "\n")
                    if bar is not None:
                        bar.update(sum(by_status.values()) + len(unchecked), by_status)
    finally:
        if bar is not None:
            bar.close()
        if out is not sys.stdout:
            out.close()
    checked = sum(by_status.values())
    if args.json:
        emit_json({"status": "ok" if not unchecked else "failed", "items": len(items), "checked": checked,
                   "by_status": by_status, "unchecked": unchecked, "batches": len(batches), "output": args.output})
    else:
        print(_table(["items", "checked", *sorted(by_status), "not checked"],
                     [[str(len(items)), str(checked), *(str(by_status[k]) for k in sorted(by_status)),
                       str(len(unchecked))]]), file=sys.stderr if out is sys.stdout else sys.stdout)
        for entry in unchecked[:10]:
            print(f"not checked: {entry['id']}: {entry['error']}", file=sys.stderr)
    return 0 if not unchecked else 1


def lw_toolchain(workspace: str | None) -> str | None:
    if workspace is None:
        return None
    from leanworker.lean import find_toolchain

    return find_toolchain(workspace).fingerprint


class _CheckBar:
    """Items done of all, rate, ETA and counts by status, on stderr (a terminal only)."""

    def __init__(self, total: int) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("check"), BarColumn(), TextColumn("{task.completed}/{task.total} items"),
                                 TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[statuses]}"))
        self.task = self.progress.add_task("check", total=max(total, 1), rate="", statuses="")
        self.progress.start()

    def update(self, done: int, by_status: dict[str, int]) -> None:
        task = self.progress.tasks[0]
        rate = f"{done / task.elapsed:.0f} items/s" if task.elapsed else ""
        statuses = " ".join(f"{k} {v}" for k, v in sorted(by_status.items()))
        self.progress.update(self.task, completed=done, rate=rate, statuses=statuses)

    def close(self) -> None:
        self.progress.stop()
