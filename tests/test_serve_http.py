"""The service over HTTP (uvicorn on port 0, a real socket), in front of a scripted in-process Checker whose calls a
test holds and releases: keys, limits, admission, shapes, streaming, cache hits, single flight, the access log.
The same endpoints over real workers and the REPL simulator are in test_serve_end_to_end.py."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from leanworker.serve.keys import KeyRing, parse_keys  # noqa: E402
from serve_harness import TLS, serve, snippets  # noqa: E402, F401  (serve: the fixture)


def test_keys_are_required_when_configured_in_any_of_three_headers_and_health_stays_open(serve: Any) -> None:
    server = serve(KeyRing(parse_keys(["team:k-123"])))
    body = snippets("theorem t : True := trivial")
    missing = server.client.post("/api/check", json=body)
    assert missing.status_code == 401 and missing.json() == {"detail": "Missing API key"}
    wrong = server.client.post("/api/check", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json() == {"detail": "Invalid API key"}
    for headers in ({"Authorization": "Bearer k-123"}, {"Authorization": "k-123"}, {"X-API-Key": "k-123"}):
        assert server.client.post("/api/check", json=body, headers=headers).status_code == 200
    assert server.client.get("/health").json()["status"] == "ok"


def test_bodies_over_the_limit_are_413_and_an_item_over_its_limit_gets_its_own_error(serve: Any) -> None:
    server = serve(max_body_mib=1, max_item_bytes=1000)
    huge = json.dumps(snippets("x" * (2 << 20))).encode()
    assert server.client.post("/api/check", content=huge).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(huge), 65536):
            yield huge[start:start + 65536]

    assert server.client.post("/api/check", content=chunks()).status_code == 413
    answer = server.client.post("/api/check", json=snippets("theorem t : True := trivial", "y" * 1001))
    assert answer.status_code == 200
    small, big = answer.json()["results"]
    assert small == {"id": "s0", "time": 0.001, "response": {}}
    assert "over the limit of 1000 bytes" in big["error"] and "response" not in big
    assert server.checker.bodies == ["theorem t : True := trivial"]  # the big one never reached a REPL


def test_malformed_requests_are_4xx_naming_the_field_and_never_reach_the_checker(serve: Any) -> None:
    server = serve()
    post = server.client.post
    bad_json = post("/api/check", content=b"{bad json", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 422 and bad_json.json()["detail"][0]["type"] == "json_invalid"
    assert post("/api/check", content=b"").json()["detail"][0]["loc"] == ["body"]
    duplicate = post("/api/check", json={"snippets": [{"id": "a", "code": "x"}, {"id": "a", "code": "y"}]})
    assert duplicate.status_code == 422 and "unique ids" in duplicate.json()["detail"][0]["msg"]
    no_content = post("/verify", json={"codes": [{"custom_id": 1}]})
    assert no_content.status_code == 422 and no_content.json()["detail"][0]["loc"] == ["body", "codes", 0]
    assert post("/verify", json={"codes": []}).json() == {"results": []}
    assert post("/v1/check", content=b"[{").status_code == 400
    wrong_field = post("/v1/check", json=[{"id": "a", "code": 1}])
    assert wrong_field.status_code == 422 and wrong_field.json()["detail"][0]["loc"] == ["body", 0, "code"]
    assert post("/v1/check?timeout=0", json=[{"id": "a", "code": "x"}]).status_code == 422
    assert server.client.get("/api/check").json() == {"detail": "Method Not Allowed"}
    assert server.client.get("/nowhere").status_code == 404
    assert server.checker.bodies == []


def test_a_full_queue_answers_429_with_retry_after_and_the_admitted_request_still_completes(serve: Any) -> None:
    server = serve(max_queue=2)
    results: list[httpx.Response] = []
    first = threading.Thread(target=lambda: results.append(server.client.post(
        "/api/check", json=snippets("HOLD a", "HOLD b"))))
    first.start()
    server.wait_holding(1)
    refused = server.client.post("/api/check", json=snippets("theorem t : True := trivial"))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "queue is full" in refused.json()["detail"]
    too_big = server.client.post("/api/check", json=snippets("a", "b", "c"))
    assert too_big.status_code == 413  # could never fit: not worth retrying
    server.checker.release()
    first.join(10)
    assert [r["id"] for r in results[0].json()["results"]] == ["s0", "s1"]
    assert server.client.post("/api/check", json=snippets("theorem t : True := trivial")).status_code == 200


def test_bodies_arriving_at_once_are_bounded_in_bytes_between_them(serve: Any) -> None:
    server = serve(max_queue_mib=1)
    payload = json.dumps(snippets("theorem t : True := trivial -- " + "x" * 700_000)).encode()
    half_sent = threading.Event()
    go_on = threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield payload[:650_000]
        half_sent.set()
        assert go_on.wait(10)
        yield payload[650_000:]

    answers: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answers.append(server.client.post("/api/check", content=slow_body())))
    sender.start()
    assert half_sent.wait(10)
    state = server.app.state.serve
    deadline = time.monotonic() + 10
    while state.reading < 600_000:  # the server has read most of what was sent
        assert time.monotonic() < deadline, "the server never read the first part"
        time.sleep(0.01)
    other = httpx.post(server.url + "/api/check", content=payload, timeout=10, verify=TLS)
    assert other.status_code == 429 and other.headers["Retry-After"] == "1"
    go_on.set()
    sender.join(10)
    assert answers[0].status_code == 200 and "response" in answers[0].json()["results"][0]


def test_the_byte_bound_counts_what_each_item_holds_besides_its_code(serve: Any) -> None:
    server = serve(max_queue_mib=1)
    many_small = server.client.post("/v1/check", json=[{"id": i, "code": "x"} for i in range(600)])
    assert many_small.status_code == 413 and "2048 bytes an item" in many_small.json()["detail"]
    assert server.client.post("/v1/check", json=[{"id": i, "code": "x"} for i in range(400)]).status_code == 200


def test_the_per_key_limit_holds_back_one_key_and_not_another(serve: Any) -> None:
    server = serve(KeyRing(parse_keys(["a:key-a", "b:key-b"])), max_in_flight_per_key=1)
    held = threading.Thread(target=lambda: server.client.post(
        "/api/check", json=snippets("HOLD"), headers={"X-API-Key": "key-a"}))
    held.start()
    server.wait_holding(1)
    again = server.client.post("/api/check", json=snippets("x"), headers={"X-API-Key": "key-a"})
    assert again.status_code == 429 and "this key" in again.json()["detail"]
    assert server.client.post("/api/check", json=snippets("x"), headers={"X-API-Key": "key-b"}).status_code == 200
    server.checker.release()
    held.join(10)


def test_a_client_that_goes_away_has_its_waiting_items_withdrawn_and_its_share_given_back(serve: Any) -> None:
    server = serve()
    holder = threading.Thread(target=lambda: server.client.post("/api/check", json=snippets("HOLD 1", "HOLD 2")))
    holder.start()
    server.wait_holding(2)  # both REPL slots busy
    body = json.dumps(snippets("theorem gone_1 : True := trivial", "theorem gone_2 : True := trivial")).encode()
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(b"POST /api/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        state = server.app.state.serve
        deadline = time.monotonic() + 10
        while state.admission.items < 4:  # the request is admitted, its items wait
            assert time.monotonic() < deadline
            time.sleep(0.01)
    deadline = time.monotonic() + 10
    while state.admission.items > 2:  # the client has gone: its two items are given back
        assert time.monotonic() < deadline, "the items of a client that went away were never given back"
        time.sleep(0.01)
    server.checker.release()
    holder.join(10)
    assert not any("gone" in body for body in server.checker.bodies)  # they never reached a REPL


def test_native_results_stream_as_they_complete_without_waiting_for_the_slowest(serve: Any) -> None:
    server = serve()
    items = [{"id": "slow", "code": "HOLD"}, {"id": 2, "code": "import Mathlib\ntheorem t : True := sorry"}]
    with server.client.stream("POST", "/v1/check", json=items) as response:
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = response.iter_lines()
        first = json.loads(next(lines))  # arrives while "slow" is still held
        assert first["id"] == 2 and first["status"] == "sorry" and first["simulated"] is True
        assert first["sorries"][0]["pos"] == {"line": 2, "column": 0}  # in the item's code, past its header
        server.checker.release()
        second = json.loads(next(lines))
        assert second["id"] == "slow" and second["status"] == "ok"


def test_json_lines_in_when_the_content_type_says_so(serve: Any) -> None:
    server = serve()
    body = b'{"id": "a", "code": "theorem a : True := trivial"}\n{"id": "b", "code": "ERROR"}\n'
    answer = server.client.post("/v1/check", content=body, headers={"Content-Type": "application/x-ndjson"})
    statuses = {line["id"]: line["status"] for line in map(json.loads, answer.text.splitlines())}
    assert statuses == {"a": "ok", "b": "error"}


def test_a_checker_that_fails_costs_its_items_a_typed_answer_never_a_5xx(serve: Any) -> None:
    server = serve()
    answer = server.client.post("/api/check", json=snippets("BOOM"))
    assert answer.status_code == 200
    assert "internal error: RuntimeError: scripted failure" in answer.json()["results"][0]["error"]
    assert server.client.post("/api/check", json=snippets("theorem t : True := trivial")).status_code == 200


def test_a_cache_hit_is_marked_natively_and_in_kimina_diagnostics_only_under_debug(serve: Any) -> None:
    server = serve(cache=True)
    code = "import Mathlib\ntheorem t : True := sorry"
    first = server.client.post("/v1/check", json=[{"id": "a", "code": code}]).json()
    assert "cached" not in first
    server.app.state.serve.cache.flush()  # the cache writes on its own thread: wait for it
    again = server.client.post("/v1/check", json=[{"id": "b", "code": code}]).json()
    assert again["cached"] is True and again["status"] == "sorry" and again["id"] == "b"
    plain = server.client.post("/api/check", json={"snippets": [{"id": "k", "code": code}]}).json()["results"][0]
    assert "diagnostics" not in plain and plain["response"]["sorries"]
    debug = server.client.post("/api/check", json={"snippets": [{"id": "k", "code": code}], "debug": True}).json()
    assert debug["results"][0]["diagnostics"]["cached"] is True
    fresh = server.client.post("/verify", json={"codes": [{"custom_id": 1, "proof": code}], "disable_cache": True})
    assert fresh.status_code == 200
    assert server.checker.bodies.count("theorem t : True := sorry") == 2  # the first check and disable_cache


def test_identical_items_in_flight_at_once_are_checked_once(serve: Any) -> None:
    server = serve()
    answers: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(server.client.post(
        "/api/check", json=snippets("theorem same : True := HOLD")))) for _ in range(3)]
    threads[0].start()
    server.wait_holding(1)
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.3)  # let the two others arrive (they must join the flight, not start checks of their own)
    server.checker.release()
    for thread in threads:
        thread.join(10)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert server.checker.bodies.count("theorem same : True := HOLD") == 1


def test_the_access_log_names_key_items_and_statuses_and_never_the_code(serve: Any,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    server = serve(KeyRing(parse_keys(["team:sekret-key-123"])))
    with caplog.at_level(logging.INFO, logger="leanworker.serve.access"):
        server.client.post("/api/check", json=snippets("theorem secret_proof : True := sorry", "ERROR"),
                           headers={"X-API-Key": "sekret-key-123"})
        server.client.post("/api/check", json=snippets("x"))
    lines = [r.getMessage() for r in caplog.records if r.name == "leanworker.serve.access"]
    assert len(lines) == 2
    assert "key=team" in lines[0] and "items=2" in lines[0] and "error=1,sorry=1" in lines[0] and " 200 " in lines[0]
    assert " 401 " in lines[1]
    assert not any("secret_proof" in line or "sekret" in line for line in lines)


def _raw_request(sock: socket.socket, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on an open connection; the status, headers and body of its answer."""
    sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (path.encode(), len(body), body))
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(rest) < int(headers.get("content-length", 0)):
        rest += sock.recv(65536)
    return int(lines[0].split()[1]), headers, rest


def test_the_drain_refuses_new_requests_lets_those_in_flight_finish_and_answers_the_rest_503(serve: Any) -> None:
    server = serve(capacity=3, grace=1.5)
    answers: dict[str, httpx.Response] = {}
    stream_lines: list[dict[str, Any]] = []

    def post(name: str, body: Any) -> None:
        answers[name] = httpx.post(server.url + "/api/check", json=body, timeout=30, verify=TLS)

    def stream() -> None:
        items = [{"id": "quick", "code": "theorem q : True := trivial"}, {"id": "held", "code": "HOLD b"}]
        with httpx.stream("POST", server.url + "/v1/check", json=items, timeout=30, verify=TLS) as response:
            for line in response.iter_lines():
                stream_lines.append(json.loads(line))

    held = threading.Thread(target=post, args=("held", snippets("HOLD a")))
    held.start()
    server.wait_holding(1)
    streaming = threading.Thread(target=stream)
    streaming.start()
    server.wait_holding(1)
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as idle:  # a kept-alive connection, open before the drain
        assert _raw_request(idle, "/api/check", json.dumps(snippets("x")).encode())[0] == 200
        gated = threading.Thread(target=post, args=("gated", snippets("GATE 1", "GATE 2")))
        gated.start()
        deadline = time.monotonic() + 10
        while server.state.admission.items < 4:  # held, the stream's held item, both gated items
            assert time.monotonic() < deadline
            time.sleep(0.01)
        server.server.should_exit = True  # what SIGTERM does
        while not server.state.lifecycle.draining:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        status, headers, body = _raw_request(idle, "/api/check", json.dumps(snippets("late")).encode())
        assert status == 503 and headers["retry-after"] == "1" and headers["connection"] == "close"
        assert "stopping" in json.loads(body)["detail"]
    server.checker.open_gate()  # in flight when the drain began, done within the grace
    with pytest.raises(httpx.ConnectError):  # no new connection is accepted
        httpx.post(server.url + "/api/check", json=snippets("later"), timeout=5, verify=TLS)
    for thread in (held, streaming, gated):
        thread.join(20)
    assert [r["id"] for r in answers["gated"].json()["results"]] == ["s0", "s1"]  # in flight: finished
    refused = answers["held"]  # still held when the grace ended: a typed 503
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json() == {"detail": "the service is stopping: 1 of 1 items were not checked; send the request "
                                        "again later"}
    assert [(line["id"], line["status"]) for line in stream_lines] == [("quick", "ok"), ("held", "unchecked")]
    assert stream_lines[1]["error"].startswith("the service is stopping")
    server.thread.join(20)
    assert not server.thread.is_alive()
    assert not any(b in server.checker.bodies for b in ("late", "later"))
