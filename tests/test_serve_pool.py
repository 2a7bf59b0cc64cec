"""The service over its real pool (``PoolChecker`` on ``lw.AsyncWorkerPool``, worker processes running the REPL
SIMULATOR), in the test process so that its metrics, spans and pool can be inspected: ``/metrics`` parsed as
Prometheus reads it, a span per HTTP request parenting the pool's spans, a worker lost mid-call, overload, and faults
injected inside the real workers with leanworker.testing."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")

import leanworker as lw  # noqa: E402
from conftest import wait_for  # noqa: E402
from leanworker.serve import ServeConfig  # noqa: E402
from leanworker.serve.config import simulator_command  # noqa: E402
from leanworker.serve.pool_checker import PoolChecker  # noqa: E402
from serve_harness import TLS, Running  # noqa: E402

WORKER = lw.WorkerConfig(request_timeout=None, cancel_grace=0.5, shutdown_timeout=2.0, kill_wait=3.0)
HEADER = "import Mathlib\n"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """``service(workers=..., checker options..., app options..., config changes...)``: the app over a real pool."""
    running: list[Running] = []

    def start(*, workers: int = 2, checker: dict[str, Any] | None = None, app: dict[str, Any] | None = None,
              **changes: Any) -> Running:
        config = replace(ServeConfig(simulator=True, cache=False, cache_path=tmp_path / "cache.sqlite3",
                                     workers=workers, sandbox=None), **changes)
        options = {"import_timeout": 10.0, "worker": WORKER, "stall_margin": 2.0, **(checker or {})}
        pool_checker = PoolChecker(simulator_command(), workers=workers, simulated=True, **options)
        running.append(Running(config, pool_checker, **(app or {})))
        return running[-1]

    yield start
    for server in running:
        server.close()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, parsed by prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_count_http_requests_by_endpoint_and_status_beside_the_pools_figures(service: Any) -> None:
    server = service()
    post = server.client.post
    checked = post("/api/check", json={"timeout": 5, "snippets": [
        {"id": "ok", "code": f"{HEADER}theorem a : True := trivial"},
        {"id": "sorry", "code": f"{HEADER}theorem b : True := sorry"},
        {"id": "crash", "code": f"{HEADER}theorem c : True := CRASH"}]})
    assert checked.status_code == 200
    assert post("/v1/check", json=[{"id": 1, "code": f"{HEADER}theorem d : True := ERROR"}]).status_code == 200
    assert post("/api/check", json={"snippets": []}).status_code == 422
    assert server.client.get("/nowhere").status_code == 404
    scrape = server.client.get("/metrics")
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = _samples(scrape.text)

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("leanworker_http_requests_total", endpoint="/api/check", method="POST", status="200") == 1
    assert value("leanworker_http_requests_total", endpoint="/api/check", method="POST", status="422") == 1
    assert value("leanworker_http_requests_total", endpoint="/v1/check", method="POST", status="200") == 1
    assert value("leanworker_http_requests_total", endpoint="other", method="GET", status="404") == 1
    assert value("leanworker_http_request_duration_seconds_count", endpoint="/api/check") == 2
    assert value("leanworker_http_request_duration_seconds_bucket", endpoint="/v1/check", le="+Inf") == 1
    assert value("leanworker_serve_items_total", status="ok", cached="false") == 1
    assert value("leanworker_serve_items_total", status="sorry", cached="false") == 1
    assert value("leanworker_serve_items_total", status="error", cached="false") == 1
    assert value("leanworker_serve_items_total", status="crashed", cached="false") == 1
    assert value("leanworker_serve_queue_items") == 0 and value("leanworker_serve_draining") == 0
    assert value("leanworker_serve_calls_total") >= 2
    # the pool's own figures (leanworker.metrics.PoolCollector, docs/metrics.md), in the same scrape
    assert value("leanworker_requests_total", command="check", outcome="ok") >= 2
    assert value("leanworker_request_duration_seconds_count", command="check") >= 2
    assert value("leanworker_sessions_opened_total") >= 1
    assert value("leanworker_max_workers") == 2
    assert sum(value("leanworker_workers", state=s) for s in ("idle", "busy", "starting", "stopping")) >= 1


def test_metrics_need_a_key_when_keys_are_configured(service: Any) -> None:
    from leanworker.serve.keys import KeyRing, parse_keys

    server = service(app={"keys": KeyRing(parse_keys(["ops:scrape-key"]))})
    assert server.client.get("/metrics").status_code == 401
    assert server.client.get("/metrics", headers={"Authorization": "Bearer scrape-key"}).status_code == 200


def test_each_http_request_is_a_span_parenting_the_pools_request_spans(service: Any) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from leanworker.telemetry import OpenTelemetryTracer

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server = service(checker={"trace": OpenTelemetryTracer(provider)}, app={"tracer_provider": provider})
    for name in ("first", "second"):
        answer = server.client.post("/api/check", json={"snippets": [
            {"id": name, "code": f"{HEADER}theorem {name} : True := trivial"}]})
        assert answer.status_code == 200

    def spans() -> list[Any]:
        return list(exporter.get_finished_spans())

    assert wait_for(lambda: sum(s.name == "leanworker.request" for s in spans()) >= 2)
    http = [s for s in spans() if s.kind == SpanKind.SERVER]
    assert [s.name for s in http] == ["POST /api/check", "POST /api/check"]
    assert all(s.attributes["http.response.status_code"] == 200 and s.attributes["leanworker.items"] == 1
               for s in http)
    by_id = {s.context.span_id: s for s in spans()}
    for request in (s for s in spans() if s.name == "leanworker.request"):
        parent = by_id.get(request.parent.span_id) if request.parent else None
        assert parent is not None and parent.kind == SpanKind.SERVER, f"{request.name} has no HTTP parent"
        assert parent.context.trace_id == request.context.trace_id
        assert request.attributes["leanworker.command"] == "check"
    parents = {s.parent.span_id for s in spans() if s.name == "leanworker.request" and s.parent}
    assert parents == {s.context.span_id for s in http}  # each HTTP request parents the Lean work it caused
    opened = [s for s in spans() if s.name == "leanworker.session_open"]
    assert opened and opened[0].parent is not None and opened[0].parent.span_id == http[0].context.span_id


def _workers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if "leanworker.host" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE]


def test_a_worker_killed_mid_call_costs_no_item_its_verdict(service: Any) -> None:
    server = service(workers=1)
    items = [{"id": "slow", "code": f"{HEADER}theorem s : True := by SLOW1500"},
             *({"id": f"t{i}", "code": f"{HEADER}theorem t{i} : True := sorry"} for i in range(5))]
    answers: list[Any] = []
    request = threading.Thread(target=lambda: answers.append(server.client.post(
        "/api/check", json={"timeout": 20, "snippets": items})))
    request.start()
    assert wait_for(lambda: server.checker.pool.snapshot().busy == 1 and len(_workers()) == 1, timeout=30)
    victim = _workers()[0]
    victim.send_signal(signal.SIGKILL)  # the worker process itself, while it checks the slow item
    request.join(60)
    results = {r["id"]: r for r in answers[0].json()["results"]}
    assert results["slow"]["response"] == {}  # run again on a fresh worker
    assert all(results[f"t{i}"]["response"]["sorries"] for i in range(5))
    assert victim.pid not in {p.pid for p in _workers()}
    assert server.checker.pool.snapshot().restarts.get("crash") == 1


def test_overload_is_refused_429_with_retry_after_and_every_admitted_request_is_answered(service: Any) -> None:
    server = service(max_queue=12)
    statuses: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60, verify=TLS) as own:
            for round_ in range(4):
                ids = [f"c{number}-{round_}-{i}" for i in range(3)]
                answer = own.post("/api/check", json={"timeout": 10, "snippets": [
                    {"id": item, "code": f"{HEADER}theorem x : True := by SLOW50"} for item in ids]})
                with lock:
                    statuses.append(answer.status_code)
                    if answer.status_code == 200:
                        got = [(r["id"], r.get("response")) for r in answer.json()["results"]]
                        if got != [(item, {}) for item in ids]:
                            failures.append(json.dumps(answer.json())[:300])
                    elif answer.status_code != 429 or int(answer.headers["Retry-After"]) < 1:
                        failures.append(f"{answer.status_code}: {answer.text[:300]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures
    assert len(statuses) == 48 and set(statuses) <= {200, 429} and 200 in statuses
    assert 429 in statuses  # 12 clients of 3 items each against a queue of 12 items
    assert server.state.admission.items == 0 and server.state.admission.size == 0



def test_injected_worker_crash_garbage_and_hang_among_many_items_cost_no_other_item_its_verdict(
        service: Any) -> None:
    from leanworker.testing import Fault, FaultPlan

    # faults inside the real workers, decided per check call of the header's key (counted from 1): a worker that
    # exits after one row, one that writes a frame that is no CBOR after two, one that stops answering after one.
    # Each strikes an item that is not its call's first; that item is first in its own call again, answered before
    # any of these faults can fire. (A hang before the first row strikes the first item, innocent or not: after a
    # strike from another fault, an item that met it in its retry was given up as lost twice, by design; the
    # policy's own test, and the next test here, check that.)
    plan = FaultPlan([Fault("crash", command="check", nth=2, after_rows=1),
                      Fault("garbage", command="check", nth=4, after_rows=2),
                      Fault("hang", command="check", nth=6, after_rows=1)])
    server = service(max_queue=24, checker={"wrap_key": plan.wrap, "import_timeout": 2.0})
    try:
        kinds = {i: "crash" if i % 17 == 5 else "hang" if i % 23 == 7 else "clean" for i in range(96)}
        words = {"clean": "trivial", "crash": "by CRASH", "hang": "by HANG"}  # the REPL's own faults, per item
        outcomes: dict[str, Any] = {}
        statuses: list[int] = []
        lock = threading.Lock()

        def client(first: int) -> None:
            with httpx.Client(base_url=server.url, timeout=120, verify=TLS) as own:
                for start in range(first, 96, 24):
                    ids = list(range(start, start + 3))
                    body = {"timeout": 1, "snippets": [{"id": str(i), "code": f"{HEADER}theorem t{i} : True := "
                                                                              f"{words[kinds[i]]}"} for i in ids]}
                    while True:  # a client that honours Retry-After (shortened: the test's queue is small)
                        answer = own.post("/api/check", json=body)
                        with lock:
                            statuses.append(answer.status_code)
                        if answer.status_code != 429:
                            break
                        threading.Event().wait(0.05)
                    assert answer.status_code == 200, answer.text[:300]
                    with lock:
                        outcomes.update((r["id"], r) for r in answer.json()["results"])

        threads = [threading.Thread(target=client, args=(first,)) for first in range(0, 24, 3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert set(statuses) <= {200, 429} and len(outcomes) == 96  # no 5xx, no request without its answer
        for i, kind in kinds.items():
            result = outcomes[str(i)]
            if kind == "clean":
                assert result.get("response") == {}, result  # never the victim of another item's fault
            elif kind == "crash":
                assert result["error"].startswith("Lean REPL crashed"), result
            else:
                assert result["error"] == "Lean REPL command timed out in 1.0 seconds", result
        fired = [fault.kind for fault in plan.fired()]
        assert sorted(fired) == ["crash", "garbage", "hang"]
        restarts = server.checker.pool.snapshot().restarts
        assert restarts.get("crash", 0) >= 1 and restarts.get("protocol", 0) >= 1
        assert server.state.admission.items == 0
    finally:
        plan.uninstall()


def test_an_item_whose_worker_is_lost_twice_is_answered_crashed_alone_and_the_call_goes_on(service: Any) -> None:
    from leanworker.testing import Fault, FaultPlan

    # the first two check calls of the header lose their worker before any row: the first item is the suspect
    plan = FaultPlan([Fault("crash", command="check", nth=1), Fault("crash", command="check", nth=2, how="signal")])
    server = service(workers=1, checker={"wrap_key": plan.wrap})
    try:
        answer = server.client.post("/v1/check?timeout=5", json=[
            {"id": i, "code": f"{HEADER}theorem t{i} : True := trivial"} for i in range(4)])
        lines = {line["id"]: line for line in map(json.loads, answer.text.splitlines())}
        assert lines[0]["status"] == "crashed" and "worker was lost 2 times" in lines[0]["error"]
        assert [lines[i]["status"] for i in (1, 2, 3)] == ["ok", "ok", "ok"]  # run a third time, on a fresh worker
        assert [(f.kind, f.nth) for f in plan.fired()] == [("crash", 1), ("crash", 2)]
    finally:
        plan.uninstall()


def test_a_client_that_sends_hanging_code_and_goes_away_frees_its_repl_at_once(service: Any) -> None:
    import socket

    tracer = lw.Tracer()
    server = service(workers=1, checker={"trace": tracer})
    body = json.dumps([{"id": 1, "code": f"{HEADER}theorem h : True := by HANG"}]).encode()
    port = int(server.url.rsplit(":", 1)[1])

    def sent_to_the_worker() -> bool:  # a lease is not enough: a call abandoned before its admission never ran
        return any(e.kind == "request_admitted" and e.fields.get("command") == "check" for e in tracer.events())

    with socket.create_connection(("127.0.0.1", port)) as leaving:  # the item may run for 300 s: it hangs
        leaving.sendall(b"POST /v1/check?timeout=300 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(body), body))
        assert wait_for(sent_to_the_worker, timeout=30)  # its REPL hangs on it
    # the client has gone: its call is abandoned, the worker cancels it (its REPL is stopped) and stays warm
    worker = _workers()[0].pid
    answer = server.client.post("/v1/check?timeout=300", json=[{"id": 2, "code": f"{HEADER}theorem t : True := "
                                                                               "trivial"}], timeout=60)
    assert json.loads(answer.text)["status"] == "ok"  # answered long before the hanging item's 300 s
    assert server.state.service.batcher.abandoned == 1
    assert [p.pid for p in _workers()] == [worker]  # the same worker: a cancel, not a kill

    def outcomes() -> dict[Any, float]:
        return {k[1]: v for k, v in _samples(server.client.get("/metrics").text).items()
                if k[0] == "leanworker_requests_total"}

    assert outcomes().get((("command", "check"), ("outcome", "cancelled"))) == 1, outcomes()
