"""Prometheus metrics of a pool (``leanworker.metrics.PoolCollector``): a live pool scraped and parsed with
prometheus-client's own parser; docs/metrics.md lists exactly the metrics a scrape shows."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

import leanworker as lw
from conftest import FAST, FAULTS, THROUGHPUT, wait_for

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from leanworker.metrics import PoolCollector  # noqa: E402

ROWS = lw.SessionKey(THROUGHPUT)
FAULTY = lw.SessionKey(FAULTS)
DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"


def scrape(pool: Any) -> dict[str, Any]:
    """Every metric family of one scrape, by name, as prometheus-client's parser reads the text format."""
    registry = prometheus_client.CollectorRegistry()
    registry.register(PoolCollector(pool))
    text = prometheus_client.generate_latest(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Any], sample_name: str, **labels: str) -> float:
    for family in families.values():
        for sample in family.samples:
            if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {sample_name} {labels}")


def test_a_scrape_of_a_live_pool_counts_what_the_pool_did() -> None:
    config = lw.PoolConfig(max_workers=2, worker=FAST, max_total_rss_mib=4096, memory_sample_interval=0.05)
    with lw.WorkerPool(config) as pool:
        with pool.lease(ROWS) as lease:
            for i in range(3):
                lease.call("echo", i)
            assert len(lease.stream("rows", {"count": 500}).collect()) == 500
        with pool.lease(FAULTY) as lease:
            with pytest.raises(lw.WorkerCrashed):
                lease.call("crash", {"how": "signal"})
        with pool.lease(FAULTY) as lease:
            with pytest.raises(lw.CommandError):
                lease.call("raise")
        # the crashed worker's replacement has no memory reading until its first sample (the total is absent till then)
        assert wait_for(lambda: pool.snapshot().total_rss_mib is not None, timeout=30)
        families = scrape(pool)
    assert value(families, "leanworker_requests_total", command="echo", outcome="ok") == 3
    assert value(families, "leanworker_requests_total", command="rows", outcome="ok") == 1
    assert value(families, "leanworker_requests_total", command="crash", outcome="crashed") == 1
    assert value(families, "leanworker_requests_total", command="raise", outcome="error") == 1
    assert value(families, "leanworker_request_duration_seconds_count", command="echo") == 3
    assert value(families, "leanworker_request_duration_seconds_bucket", command="echo", le="+Inf") == 3
    assert value(families, "leanworker_request_duration_seconds_sum", command="echo") > 0
    assert value(families, "leanworker_rows_delivered_total") == 500
    assert value(families, "leanworker_restarts_total", reason="crash") == 1
    assert value(families, "leanworker_sessions_opened_total") == 3  # rows key, faults key, its replacement
    assert value(families, "leanworker_session_open_seconds_count") == 3
    assert value(families, "leanworker_queue_wait_seconds_count") == 3
    assert value(families, "leanworker_queue_depth") == 0
    assert value(families, "leanworker_leases") == 0
    assert value(families, "leanworker_workers", state="idle") == 2
    assert value(families, "leanworker_workers", state="busy") == 0
    assert value(families, "leanworker_max_workers") == 2
    assert value(families, "leanworker_memory_budget_mib") == 4096
    slots = {s.labels["slot"] for s in families["leanworker_slot_memory_mib"].samples}
    assert slots <= {"0", "1"} and slots, "memory is labelled by slot position, never by pid"
    total = value(families, "leanworker_worker_memory_mib")
    per_slot = sum(s.value for s in families["leanworker_slot_memory_mib"].samples)
    assert total > 0 and abs(total - per_slot) < 1.0


def test_the_collector_takes_an_async_pool_and_sees_its_queue() -> None:
    async def main() -> dict[str, Any]:
        async with lw.AsyncWorkerPool(lw.PoolConfig(max_workers=1, worker=FAST)) as pool:
            async with pool.lease(ROWS) as lease:
                await lease.call("echo")
                waiters = [asyncio.create_task(pool.lease(ROWS).acquire()) for _ in range(5)]
                while pool.snapshot().queue_depth < 5:
                    await asyncio.sleep(0.02)
                families = scrape(pool)
                for waiter in waiters:
                    waiter.cancel()
                await asyncio.gather(*waiters, return_exceptions=True)
            return families
    families = asyncio.run(main())
    assert value(families, "leanworker_queue_depth") == 5
    assert value(families, "leanworker_workers", state="busy") == 1
    assert value(families, "leanworker_leases") == 1


def test_docs_metrics_md_lists_exactly_the_metrics_a_scrape_shows() -> None:
    with lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=FAST, max_total_rss_mib=1024)) as pool:
        with pool.lease(ROWS) as lease:
            lease.call("echo")
        families = scrape(pool)
    documented = set(re.findall(r"^\| `(leanworker_[a-z_]+)`", DOC.read_text(encoding="utf-8"), flags=re.M))
    exposed = set()
    for family in families.values():
        exposed.add(family.name + ("_total" if family.type == "counter" else ""))
    assert documented == exposed, (sorted(documented - exposed), sorted(exposed - documented))
    assert all(name.startswith("leanworker_") for name in exposed)


def test_made_up_command_names_cannot_grow_the_label_set_without_bound() -> None:
    from leanworker.actors.core.stats import MAX_COMMANDS, OTHER_COMMAND, RequestStats

    stats = RequestStats()
    for i in range(MAX_COMMANDS * 3):
        stats.record(f"made-up-{i}", "error", 0.001)
    assert len(stats.durations) == MAX_COMMANDS + 1
    assert stats.outcomes[(OTHER_COMMAND, "error")] == MAX_COMMANDS * 2
    merged = RequestStats()
    merged.merge(stats)
    merged.merge(stats)
    assert len(merged.durations) == MAX_COMMANDS + 1
    assert sum(merged.outcomes.values()) == MAX_COMMANDS * 6
