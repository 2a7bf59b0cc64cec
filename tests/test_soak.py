"""The soak (``python -m bench.soak``) for ten seconds: threads and asyncio tasks on one pool, calls, streams, slow
consumers, cancels, dropped leases, keys that come and go and injected faults; nothing lost, nothing left behind,
and the parent's RSS, threads and fds flat from the second sample on. The hour-long run is by hand (README)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import leanworker

ROOT = Path(leanworker.__file__).resolve().parent


@pytest.mark.timeout(120)
def test_ten_seconds_of_mixed_service_with_faults_lose_nothing_and_stay_flat() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--seconds", "10", "--interval", "2", "--fault-rate", "0.05",
         "--seed", "7", "--threads", "1", "--tasks", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=110)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stderr[-2000:]
    verdict = lines[-1]
    minutes = [line for line in lines if "sample" in line]
    assert len(minutes) >= 3, lines
    assert all({"requests", "outcomes", "restarts", "p50_ms", "p99_ms", "parent_rss_mib", "threads", "fds",
                "live_children", "sessions_opened"} <= set(line) for line in minutes)
    assert verdict["lost"] == 0, (verdict["lost_examples"], done.stderr[-2000:])
    assert verdict["outcomes_agree"], (verdict["outcomes"], verdict["pool_outcomes"])
    assert verdict["requests"] > 10 and verdict["rows_checked"] > 0
    assert sum(verdict["faults_injected"].values()) > 0 and verdict["restarts"]
    assert verdict["flat"], verdict["drift_from_sample_2"]
    assert not verdict["children_beyond_pool"] and verdict["left_after_close"] == 0
    assert verdict["verdict"] == "pass" and done.returncode == 0
