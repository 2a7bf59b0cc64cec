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
    check.add_argument("--mode", choices=("repl", "file"), default="repl",
                       help="repl: warm REPLs, one per import set (default); file: one `lean --json` process per "
                            "item (items may also be {\"id\", \"path\"}; no REPL needed)")
    check.add_argument("--lean", default=None, help="--mode file: the lean command line (else LEANWORKER_LEAN, "
                                                    "`lake env lean` in a workspace with a lakefile, or lean on PATH)")
    check.add_argument("--memory-mib", type=int, default=None, help="--mode file: RSS limit per item, in MiB")
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
    from leanworker.lean.items import plan_file_items, plan_items, shift_row, split_item

    if args.workers < 1 or (args.timeout is not None and args.timeout <= 0):
        return _fail("--workers must be >= 1 and --timeout > 0")
    if args.mode != "file" and (args.lean is not None or args.memory_mib is not None):
        return _fail("--lean and --memory-mib go with --mode file")
    if args.memory_mib is not None and args.memory_mib <= 0:
        return _fail("--memory-mib must be > 0")
    try:
        lines = open(args.items, encoding="utf-8").read().splitlines()
    except OSError as exc:
        return _fail(f"cannot read {args.items}: {exc.strerror}")
    file_mode = args.mode == "file"
    items: list[Any] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            return _fail(f"{args.items}:{number}: not JSON ({exc})")
        if file_mode and isinstance(record, dict) and "id" in record and isinstance(record.get("path"), str):
            record = {**record, "code": None}
        elif not isinstance(record, dict) or not isinstance(record.get("code"), str) or "id" not in record:
            return _fail(f'{args.items}:{number}: an item is {{"id": ..., "code": "..."}}'
                         + (' or {"id": ..., "path": "..."}' if file_mode else ""))
        items.append(split_item(record["id"], record["code"]) if not file_mode else record)
    toolchain = lw_toolchain(args.workspace)
    if file_mode:
        batches = plan_file_items(len(items), args.workspace, args.lean, toolchain, per_batch=64)
    else:
        batches = plan_items(items, args.workspace, args.repl, toolchain, per_batch=64)

    def request(batch: lw.PlannedBatch) -> dict[str, Any]:
        if file_mode:
            return {"items": [{"id": int(i), **_source(items[int(i)])} for i in batch.modules],
                    "timeout": args.timeout, "memory_mib": args.memory_mib}
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
                        unchecked += [{"id": _item_id(items[int(i)]), "error": f"{type(result.error).__name__}: "
                                       f"{result.error}"} for i in result.modules]
                        continue
                    for row in result.rows:
                        item = items[int(row.payload["id"])]
                        checked_row = ({**row.payload, "id": item["id"]} if file_mode
                                       else {**shift_row(row.payload, item), "id": item.id})
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


def _source(record: dict[str, Any]) -> dict[str, str]:
    return {"code": record["code"]} if record.get("code") is not None else {"path": record["path"]}


def _item_id(item: Any) -> Any:
    return item["id"] if isinstance(item, dict) else item.id


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
