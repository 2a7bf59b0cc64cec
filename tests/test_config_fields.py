"""Configs check their fields and name the one that is wrong (issue 20, item 15): a string where a number is meant
is a TypeError naming the field, an out-of-range number a ValueError naming it, never an error from deep inside."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

import leanworker as lw
from conftest import MATHLIB


@pytest.mark.parametrize(("make", "field", "kind"), [
    (lambda: lw.PoolConfig(max_workers="2"), "PoolConfig.max_workers", TypeError),  # type: ignore[arg-type]
    (lambda: lw.PoolConfig(max_workers=True), "PoolConfig.max_workers", TypeError),
    (lambda: lw.PoolConfig(max_workers=0), "PoolConfig.max_workers", ValueError),
    (lambda: lw.PoolConfig(max_total_rss_mib=0), "PoolConfig.max_total_rss_mib", ValueError),
    (lambda: lw.PoolConfig(queue_wait_timeout="30"), "PoolConfig.queue_wait_timeout", TypeError),  # type: ignore
    (lambda: lw.PoolConfig(memory_sample_interval=0), "PoolConfig.memory_sample_interval", ValueError),
    (lambda: lw.PoolConfig(memory_metric="uss"), "PoolConfig.memory_metric", ValueError),
    (lambda: lw.PoolConfig(worker={"startup_timeout": 1}), "PoolConfig.worker", TypeError),  # type: ignore
    (lambda: lw.WorkerConfig(startup_timeout="10"), "WorkerConfig.startup_timeout", TypeError),  # type: ignore
    (lambda: lw.WorkerConfig(request_timeout=0), "WorkerConfig.request_timeout", ValueError),
    (lambda: lw.WorkerConfig(request_timeout=float("inf")), "WorkerConfig.request_timeout", TypeError),
    (lambda: lw.WorkerConfig(buffer_rows=1.5), "WorkerConfig.buffer_rows", TypeError),  # type: ignore[arg-type]
    (lambda: lw.WorkerConfig(env={"A": 1}), "WorkerConfig.env", TypeError),  # type: ignore[dict-item]
    (lambda: lw.WorkerConfig(sandbox_paths="/opt"), "WorkerConfig.sandbox_paths", TypeError),  # type: ignore
    (lambda: lw.WorkerConfig(spin_wait=0.5), "WorkerConfig.spin_wait", ValueError),
    (lambda: lw.RestartPolicy(max_requests=0.5), "RestartPolicy.max_requests", TypeError),  # type: ignore
    (lambda: lw.RestartPolicy(max_restarts=-1), "RestartPolicy.max_restarts", ValueError),
    (lambda: lw.RestartPolicy(restart_window=None), "RestartPolicy.restart_window", TypeError),  # type: ignore
    (lambda: lw.SessionKey(MATHLIB, imports="Mathlib"), "SessionKey.imports", TypeError),  # type: ignore
])
def test_a_config_names_the_one_field_that_is_wrong(make: Callable[[], object], field: str,
                                                    kind: type[Exception]) -> None:
    with pytest.raises(kind) as info:
        make()
    assert str(info.value).startswith(f"{field} must be"), str(info.value)
    assert type(info.value) is kind


def test_good_configs_still_build_and_a_list_of_paths_becomes_a_tuple() -> None:
    worker = lw.WorkerConfig(sandbox_paths=["/opt"], request_timeout=None, spin_wait=0, startup_timeout=5)
    assert worker.sandbox_paths == ("/opt",)
    pool = lw.PoolConfig(max_workers=3, max_total_rss_mib=1024, queue_wait_timeout=1, worker=worker)
    assert pool.worker is worker and lw.SessionKey(MATHLIB, imports=["A", "B"]).imports == ("A", "B")


def test_a_run_summary_shows_its_elapsed_time_rounded() -> None:
    plan = lw.ImportPlanner(MATHLIB, max_batch_modules=2).plan([lw.WorkItem(f"Mathlib.M{i}") for i in range(2)])
    with lw.WorkerPool(lw.PoolConfig(max_workers=1)) as pool:
        summary = pool.run(plan, "index").wait()
    assert summary.elapsed == round(summary.elapsed, 3)
    shown = re.search(r"elapsed=([0-9.]+)", repr(summary))
    assert shown is not None and len(shown.group(1).split(".")[1]) <= 3, repr(summary)
