"""The README's examples for asyncio, metrics and traces run as written: each block is written to a folder outside
the repository and run with this interpreter in a subprocess, and its output is what the README says it prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(120)


def example(section: str, opening: str) -> str:
    """The ```python block of README section ``section`` whose first line is ``opening``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"\n## {section}\n")
    end = readme.index("\n## ", start + 1)
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme[start:end], re.S) if b.startswith(opening)]
    assert len(blocks) == 1, f"README, {section}: no single block starting {opening!r}"
    return blocks[0]


def run(code: str, folder: Path) -> str:
    script = folder / "example.py"
    script.write_text(code, encoding="utf-8")
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(script)], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=100)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_asyncio_example_prints_what_its_comments_say(tmp_path: Path) -> None:
    lines = run(example("asyncio", "import asyncio"), tmp_path).splitlines()
    assert lines[:4] == ["{'hello': 'loop'}", "100000 True 100000", "still warm", "499500"]
    assert sorted(lines[4:6]) == ["('Mathlib.Demo.M0', 'Mathlib.Demo.M1', 'Mathlib.Demo.M2', 'Mathlib.Demo.M3') True",
                                  "('Mathlib.Demo.M4', 'Mathlib.Demo.M5', 'Mathlib.Demo.M6', 'Mathlib.Demo.M7') True"]
    assert lines[6:] == ["2"]


def test_the_metrics_example_scrapes_a_running_pool_over_http(tmp_path: Path) -> None:
    code = example("Metrics and traces", "import urllib.request")
    assert "start_http_server" in code and "urlopen" in code, "the example is a scrape over HTTP"
    assert run(code, tmp_path).splitlines() == ['leanworker_requests_total{command="echo",outcome="ok"} 10.0']


def console_spans(output: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed: one JSON object after another."""
    decoder, spans, at = json.JSONDecoder(), [], 0
    while at < len(output):
        if output[at].isspace():
            at += 1
            continue
        span, at = decoder.raw_decode(output, at)
        spans.append(span)
    return spans


def test_the_traces_example_prints_lean_spans_under_the_services_span(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.sdk")
    spans = console_spans(run(example("Metrics and traces", "from opentelemetry import trace"), tmp_path))
    assert [s["name"] for s in spans] == ["leanworker.session_open", "leanworker.request", "POST /check"]
    service = spans[-1]["context"]["span_id"]
    assert spans[0]["parent_id"] == spans[1]["parent_id"] == service
    request = spans[1]["attributes"]
    assert request["leanworker.command"] == "echo" and request["leanworker.outcome"] == "ok"
    assert request["process.pid"] == spans[0]["attributes"]["process.pid"]
