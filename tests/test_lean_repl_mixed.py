"""Large mixed checks against the misbehaving FAKE REPL (a simulator, not Lean): hundreds of items, every kind of
misbehaviour mixed in, through ``pool.run`` on real workers and through ``leanworker check`` as a subprocess
(issue 18). Judged on: every other item got its own verdict and status (each item's verdict carries its own tag, so
a swap shows), the whole check completed, the workers' memory stayed bounded, and no process outlived its worker."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

import leanworker as lw
from conftest import wait_for
from lean_fake import alive, fake_command, started_pids
from leanworker.fixtures.repl_fake import MISBEHAVIOURS, mixed_items
from leanworker.lean.items import plan_items, split_item

ITEMS = 320
RAW_EXCEPTIONS = ("Traceback", "TypeError", "KeyError", "ValueError", "AttributeError")


def judge(rows: dict[int, dict[str, Any]], expected: list[tuple[str, str, str, str | None]],
          victims_in_order: bool = True) -> list[str]:
    """Every way a row differs from what its item must get (empty: all good). Output sent out of turn dooms the item
    that runs next on that REPL: the next item in order (``victims_in_order``), else any item, so then a good item
    may be ``crashed``/``out_of_step`` instead of its own verdict, as many times as there are such injections. A
    wrong verdict (another item's tag, another status) is never allowed."""
    wrong = []
    victims_allowed = sum(1 for _, _, _, reason in expected if reason == "out_of_step") if not victims_in_order else 0
    for index, (code, tag, status, reason) in enumerate(expected):
        row = rows.get(index)
        if row is None:
            wrong.append(f"{index}: no row")
            continue
        if not victims_in_order and reason == "out_of_step" and "fake:" not in code:
            reason, status = None, code_status(code)  # the designated victim: its own verdict unless it was hit
        infos = [m["data"] for m in row["messages"] if m.get("severity") == "info"]
        if reason is None and (row["status"], row.get("reason")) == ("crashed", "out_of_step") and victims_allowed:
            victims_allowed -= 1
            continue
        if reason is None:
            big = "fake:big" in code
            if row["status"] != status or (infos[:1] if big else infos) != [tag] or ("truncated" in row) != big:
                wrong.append(f"{index} {code!r}: expected its own {status}, got {row['status']} {infos[:2]} "
                             f"{row.get('error', '')[:80]}")
        elif (row["status"], row.get("reason")) != (status, reason) or row["messages"] or not row.get("error"):
            wrong.append(f"{index} {code!r}: expected {status}/{reason}, got {row['status']}/{row.get('reason')}")
        elif any(raw in row["error"] for raw in RAW_EXCEPTIONS):
            wrong.append(f"{index}: raw exception text in {row['error']!r}")
    return wrong


def code_status(code: str) -> str:
    return "error" if "ERROR" in code else "sorry" if "sorry" in code else "ok"


@contextmanager
def peak_worker_rss() -> Iterator[dict[str, int]]:
    """Sample the RSS of every worker process of this test every 20 ms; yields {"peak": bytes} (filled at exit)."""
    peak = {"peak": 0}
    stop = threading.Event()

    def sample() -> None:
        me = psutil.Process()
        while not stop.wait(0.02):
            for process in me.children(recursive=True):
                try:
                    if "leanworker.host" in " ".join(process.cmdline()):
                        peak["peak"] = max(peak["peak"], process.memory_info().rss)
                except psutil.Error:
                    pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join(5)


def test_every_kind_of_misbehaviour_in_a_large_check_costs_only_its_items(tmp_path: Path) -> None:
    expected = mixed_items(ITEMS)
    assert {d for d, *_ in MISBEHAVIOURS} <= {d for code, *_ in expected for d, *_ in MISBEHAVIOURS if d in code}
    checked = [split_item(i, "import Mathlib\n" + code) for i, (code, *_) in enumerate(expected)]
    repl = fake_command(tmp_path)
    options = (("repl", repl), ("max_answer_mib", 16))
    batches = [replace(b, key=replace(b.key, options=options)) for b in plan_items(checked, None, repl, None, 64)]
    config = lw.PoolConfig(max_workers=2, worker=lw.WorkerConfig(startup_timeout=10.0, request_timeout=60.0,
                                                                 containment="group"))
    rows: dict[int, dict[str, Any]] = {}
    with peak_worker_rss() as rss, lw.WorkerPool(config) as pool:
        run = pool.run(batches, "check", lambda batch: {
            "items": [{"id": int(i), "code": checked[int(i)].body} for i in batch.modules], "timeout": 2.0})
        with run:
            for result in run:
                assert result.committed, result.error
                rows.update({row.payload["id"]: row.payload for row in result.rows})
    assert judge(rows, expected) == []
    assert rss["peak"] < 256 * 1024 * 1024, f"a worker reached {rss['peak'] / 2**20:.0f} MiB"
    started = started_pids(tmp_path)
    assert sum(what == "grandchild" for what in started.values()) >= 4
    assert wait_for(lambda: not alive(started), timeout=10), f"outlived their worker: {alive(started)}"


def test_leanworker_check_completes_a_large_mixed_file_and_every_item_gets_its_own_row(tmp_path: Path) -> None:
    # One request an item on the command line, in an order of the pool's choosing: output sent out of turn dooms
    # whichever item that REPL runs next (judged so); every other item must get its own verdict.
    chosen = ("fake:twice", "fake:late=next", "fake:forge=next", "fake:types", "fake:big=10", "fake:flood",
              "fake:segv", "fake:grandchild=exit", "HANG", "CRASH fake:early-next")
    expected = mixed_items(120, every=11, kinds=[kind for kind in MISBEHAVIOURS if kind[0] in chosen])
    assert sum(1 for code, *_ in expected if any(kind in code for kind in chosen)) == len(chosen)
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": i, "code": "import Mathlib\n" + code}) + "\n"
                             for i, (code, *_) in enumerate(expected)))
    output = tmp_path / "results.jsonl"
    state = tmp_path / "fake"
    state.mkdir()
    done = subprocess.run([sys.executable, "-m", "leanworker", "check", str(items), "--repl", fake_command(state),
                           "--timeout", "2", "--workers", "2", "--output", str(output)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr  # 1: items crashed or timed out
    rows = {row["id"]: row for row in map(json.loads, output.read_text().splitlines())}
    assert len(rows) == len(expected) and judge(rows, expected, victims_in_order=False) == []
    statuses = [row["status"] for row in rows.values()]
    assert (statuses.count("crashed"), statuses.count("timeout")) == (8, 1), "each injection dooms exactly one item"
    started = started_pids(state)
    assert wait_for(lambda: not alive(started), timeout=10), f"outlived the check: {alive(started)}"
