"""Hostile clients over HTTP (uvicorn on a real socket, the scripted checker in the test process): JSON that Python's
json module lets through, echoes of huge inputs, heads and bodies that trickle in (slow-loris), a head without end,
and a client that goes away while its only item runs. Each was found by attacking a running ``leanworker serve``;
each must cost a typed 4xx or nothing, never a 5xx, a stuck connection or a REPL held for nobody."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

import serve_harness  # noqa: E402
from serve_harness import serve, snippets  # noqa: E402, F401  (serve: the fixture)

from leanworker.serve.keys import KeyRing, parse_keys  # noqa: E402

KIMINA, NATIVE = 422, 400  # the status of malformed JSON on Kimina's endpoints (as FastAPI) and on the native one


def _post(server: Any, path: str, body: bytes) -> httpx.Response:
    return server.client.post(path, content=body, headers={"Content-Type": "application/json"})


def test_json_that_the_json_module_lets_through_is_refused_typed_and_never_a_5xx(serve: Any) -> None:
    server = serve()
    deep = b"[" * 100_000 + b"]" * 100_000
    cases = {  # body -> the status (400 where FastAPI, and so the Kimina server, cannot parse it) and what it says
        b'{"snippets": ' + deep + b"}": (400, "nested too deeply"),
        b'{"snippets": [{"id": "a", "code": "x"}], "timeout": NaN}': (KIMINA, "NaN is not JSON"),  # Kimina: 500
        b'{"snippets": [{"id": "a", "code": "x"}], "timeout": Infinity}': (KIMINA, "Infinity is not JSON"),
        b'{"snippets": [{"id": "a", "code": "x"}], "timeout": 1e400}': (KIMINA, "out of range"),
        b'{"snippets": [{"id": "a", "code": "x"}], "timeout": ' + b"9" * 5000 + b"}": (400, "5000 digits"),
    }
    for body, (status, says) in cases.items():
        for path in ("/api/check", "/verify"):
            answer = _post(server, path, body)
            assert answer.status_code == status, (path, body[:60], answer.text[:300])
            assert says in json.dumps(answer.json()["detail"])
    native_cases = {deep: "nested too deeply", b'[{"id": 1e400, "code": "x"}]': "out of range",
                    b'[{"id": ' + b"9" * 5000 + b', "code": "x"}]': "5000 digits",
                    b'[{"id": NaN, "code": "x"}]': "NaN is not JSON"}
    for body, says in native_cases.items():
        answer = _post(server, "/v1/check", body)
        assert answer.status_code == NATIVE and says in json.dumps(answer.json()["detail"]), answer.text[:300]
    lines = server.client.post("/v1/check", content=b'{"id": 1, "code": "x"}\n' + deep + b"\n",
                               headers={"Content-Type": "application/x-ndjson"})
    assert lines.status_code == NATIVE and lines.json()["detail"][0]["loc"] == ["body", "line 2"]
    assert server.checker.bodies == []  # nothing of it reached a REPL


def test_a_lone_surrogate_is_refused_where_it_stands_and_a_surrogate_pair_is_a_character(serve: Any) -> None:
    server = serve()
    code_with = b'{"snippets": [{"id": "a", "code": "theorem t : True := trivial -- \\ud800"}]}'
    refused = _post(server, "/api/check", code_with)
    assert refused.status_code == KIMINA
    assert refused.json()["detail"][0]["loc"] == ["body", "snippets", 0, "code"]
    native_id = _post(server, "/v1/check", b'[{"id": "\\udfff", "code": "x"}]')  # was a stream cut short
    assert native_id.status_code == NATIVE and native_id.json()["detail"][0]["loc"] == ["body", 0, "id"]
    verify_key = _post(server, "/verify", b'{"codes": [{"custom_id": 1, "code": "x", "\\ud800": 1}]}')
    assert verify_key.status_code == KIMINA
    pair = _post(server, "/api/check", b'{"snippets": [{"id": "\\ud83d\\ude00", "code": "theorem t : True := '
                                       b'trivial"}]}')
    assert pair.status_code == 200 and pair.json()["results"][0]["id"] == "\U0001F600"


def test_a_refusal_echoes_a_huge_input_in_brief(serve: Any) -> None:
    server = serve()
    huge = json.dumps({"snippets": "x" * 1_000_000}).encode()
    answer = _post(server, "/api/check", huge)
    assert answer.status_code == KIMINA and len(answer.content) < 2000
    assert answer.json()["detail"][0]["input"].endswith("(1000000 characters)")
    nested = json.dumps({"snippets": [{"id": "a", "code": [[[[[[[[[[["deep"]]]]]]]]]]]}]}).encode()
    assert "a list of 1 items" in _post(server, "/api/check", nested).json()["detail"][0]["input"]
    long_id = json.dumps([{"id": "i" * 100_000, "code": "x"}, {"id": "i" * 100_000, "code": "y"}]).encode()
    duplicate = _post(server, "/v1/check", long_id)
    assert duplicate.status_code == 422 and len(duplicate.content) < 2000


def _connect(server: Any) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    sock.settimeout(30)  # a bound on every wait below, never a measure
    return sock


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer else 0


def test_a_head_that_trickles_in_is_answered_408_and_its_connection_closed(serve: Any) -> None:
    server = serve(client_timeout=0.5)
    with _connect(server) as partial:
        partial.sendall(b"POST /api/check HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        answer = _until_closed(partial)
    assert _status(answer) == 408 and b"did not arrive within 0.5 s" in answer
    with _connect(server) as silent:  # a connection that sends nothing is closed, quietly
        assert _until_closed(silent) == b""
    with _connect(server) as kept:  # on a kept-alive connection, the next head is bounded too
        body = json.dumps(snippets("theorem t : True := trivial")).encode()
        kept.sendall(b"POST /api/check HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        kept.sendall(b"POST /api/check HTTP/1.1\r\n")
        answers = _until_closed(kept)
    assert _status(answers) == 200 and b"HTTP/1.1 408 " in answers
    assert server.client.get("/health").status_code == 200  # the service itself never noticed


def test_a_body_that_trickles_in_is_answered_408_and_its_bytes_are_given_back(serve: Any) -> None:
    server = serve(client_timeout=0.5)
    with _connect(server) as slow:
        slow.sendall(b"POST /api/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100000\r\n\r\n" + b'{"snippets": [' + b" " * 5000)
        answer = _until_closed(slow)
    assert _status(answer) == 408 and b"the request body did not arrive within 0.5 s" in answer
    assert server.state.reading == 0 and server.state.admission.items == 0
    assert server.checker.bodies == []


def test_a_head_over_its_bound_is_431_and_closed(serve: Any) -> None:
    server = serve()
    with _connect(server) as endless:
        endless.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        try:
            for number in range(200):  # 200 x 4 KiB: past the 64 KiB bound long before the end
                endless.sendall(b"X-Junk-%d: %s\r\n" % (number, b"j" * 4096))
        except OSError:  # the server closed it while we were still sending
            pass
        answer = _until_closed(endless)
    assert _status(answer) == 431 and b"over the limit of 65536 bytes" in answer
    assert server.client.get("/health").status_code == 200


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_a_call_whose_every_item_was_withdrawn_is_cancelled_and_one_still_wanted_is_not(serve: Any) -> None:
    server = serve(capacity=1)
    body = json.dumps([{"id": 1, "code": "theorem gone : True := HOLD"}]).encode()
    with _connect(server) as leaving:
        leaving.sendall(b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        server.wait_holding(1)  # its only item runs (the only REPL is busy with it)
    _wait(lambda: server.checker.cancelled == 1, "the call of a client that went away was not cancelled")
    assert server.state.service.batcher.abandoned == 1 and server.state.admission.items == 0
    assert server.client.post("/api/check", json=snippets("theorem next : True := trivial")).status_code == 200

    shared = json.dumps([{"id": 1, "code": "theorem shared : True := HOLD"}]).encode()
    answers: list[httpx.Response] = []
    staying = threading.Thread(target=lambda: answers.append(server.client.post("/v1/check", content=shared)))
    staying.start()
    server.wait_holding(1)
    with _connect(server) as leaving:  # the same item: it joins the flight in progress, then goes away
        leaving.sendall(b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(shared), shared))
        _wait(lambda: server.state.admission.items == 2, "the second request was not admitted")
    _wait(lambda: server.state.admission.items == 1, "the items of the client that went away were kept")
    server.checker.release()
    staying.join(20)
    assert json.loads(answers[0].text)["status"] == "ok"  # still wanted: it ran to its end
    assert server.checker.cancelled == 1 and server.state.service.batcher.abandoned == 1


def test_a_stream_whose_client_stops_reading_ends_and_gives_its_items_back(serve: Any) -> None:
    server = serve(client_timeout=0.5)
    items = [{"id": f"{i:06d}" + "i" * 2000, "code": f"theorem t{i} : True := trivial"} for i in range(3000)]
    body = json.dumps(items).encode()  # ~6 MB of answers: more than the socket buffers hold
    with socket.socket() as stalled:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.settimeout(30)
        stalled.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
        stalled.sendall(b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        _wait(lambda: server.state.admission.items > 0, "the request was not admitted")
        # it reads nothing from now on: the stream must end, and the queue's share come back
        _wait(lambda: server.state.admission.items == 0, "a client that stopped reading kept its items")
    assert server.client.post("/v1/check", json=[{"id": 1, "code": "theorem t : True := trivial"}]).status_code == 200


def test_a_client_that_leaves_a_native_stream_midway_has_the_rest_withdrawn(serve: Any) -> None:
    server = serve(capacity=1)
    items = [{"id": "first", "code": "theorem a : True := trivial"}, {"id": "held", "code": "theorem b : True := HOLD"},
             {"id": "never", "code": "theorem c : True := trivial"}]
    body = json.dumps(items).encode()
    with _connect(server) as leaving:
        leaving.sendall(b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        received = b""
        while b'"id":"first"' not in received:  # the first line has come: the client leaves mid-stream
            received += leaving.recv(65536)
        server.wait_holding(1)
    _wait(lambda: server.state.admission.items == 0, "the items left in a stream its client left were kept")
    _wait(lambda: server.checker.cancelled == 1, "the call running for a client that left was not cancelled")
    assert "theorem c : True := trivial" not in server.checker.bodies  # never checked: its call was cancelled first


def test_a_timeout_too_large_for_a_float_is_capped_like_any_other_not_a_5xx(serve: Any) -> None:
    server = serve(timeout=5.0, max_timeout=7.0)
    huge = b"1" + b"0" * 400  # 401 digits: within the 1,000 a body may hold, past what a float can
    for path, body in (("/api/check", b'{"snippets": [{"id": "a", "code": "theorem t : True := trivial"}], '
                                      b'"debug": true, "timeout": ' + huge + b"}"),
                       ("/verify", b'{"codes": [{"custom_id": "a", "code": "theorem t : True := trivial"}], '
                                   b'"timeout": ' + huge + b"}")):
        answer = _post(server, path, body)
        assert answer.status_code == 200, (path, answer.text[:300])
        assert "error" not in answer.json()["results"][0], answer.text[:300]
    assert server.checker.timeouts == [7.0, 7.0]  # capped at --max-timeout, as any timeout over it


def test_a_stream_that_stalls_before_its_first_line_still_gives_its_items_back(serve: Any) -> None:
    # A client pipelines two requests on one connection and reads nothing: the first (Kimina's, a large answer)
    # fills the socket buffers, so the second (a native stream, admitted) cannot even write its head. Its stream
    # ends at the write deadline; its items must be given back then, though its body never began.
    server = serve(KeyRing(parse_keys(["big:key-big", "stalled:key-stalled"])), client_timeout=0.5)
    big = json.dumps({"snippets": [{"id": f"{i:06d}" + "i" * 2000, "code": "theorem t : True := trivial"}
                                   for i in range(3000)]}).encode()  # ~6 MB of answer: more than the buffers hold
    small = json.dumps([{"id": 1, "code": "theorem s : True := trivial"}]).encode()
    with socket.socket() as stalled:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.settimeout(30)
        stalled.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
        stalled.sendall(b"POST /api/check HTTP/1.1\r\nHost: x\r\nX-API-Key: key-big\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(big), big) + b"POST /v1/check HTTP/1.1\r\nHost: x\r\nX-API-Key: key-stalled\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(small), small))
        admission = server.state.admission
        _wait(lambda: admission.per_key.get("stalled") == 1, "the pipelined stream was not admitted")
        _wait(lambda: "stalled" not in admission.per_key, "a stream that stalled before its first line kept its items")
    _wait(lambda: admission.items == 0, "items were kept after the client left")


def test_an_answer_its_client_never_takes_is_dropped_and_its_connection_closed(serve: Any) -> None:
    # A Kimina answer is written whole into the connection's buffer at once; a client that takes none of it must
    # not hold that memory (megabytes an answer, any number of connections) for ever: nothing taken for
    # --client-timeout seconds closes the connection.
    server = serve(client_timeout=0.5)
    big = json.dumps({"snippets": [{"id": f"{i:06d}" + "i" * 2000, "code": "theorem t : True := trivial"}
                                   for i in range(3000)]}).encode()  # ~6 MB of answer: more than the buffers hold
    with socket.socket() as unread:
        unread.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        unread.settimeout(30)
        unread.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
        unread.sendall(b"POST /api/check HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big))
        connections = server.server.server_state.connections
        _wait(lambda: any(c.transport.get_write_buffer_size() > 0 for c in connections), "the answer was not held")
        _wait(lambda: not connections, "an answer its client never took was held, and its connection kept")
        received = b""
        try:
            while chunk := unread.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))[15:])
    assert len(body) < length  # cut short: the rest was dropped
    assert server.client.post("/api/check", json=snippets("theorem t : True := trivial")).status_code == 200


def _whole_answer(sock: socket.socket) -> bytes:
    """One answer (head and its Content-Length of body) read from ``sock``; what is read is taken at once."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection was closed after {len(data)} bytes of the answer's head"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))[15:])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"the connection was closed after {len(body)} of the answer's {length} bytes"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_client_that_took_one_answer_in_time_has_the_next_one_s_full_time_to_take_it(serve: Any) -> None:
    # A client takes a large answer at once, then on the same connection asks for a larger one and takes it within
    # --client-timeout of its being written. It has always taken its answer in time: it gets the second whole, not a
    # connection closed at the deadline the first answer set (when the client had taken it all, long before).
    timeout = 4.0
    server = serve(client_timeout=timeout)

    def request(count: int) -> bytes:  # an answer of ~2 KB an item: megabytes, more than the buffers hold
        body = json.dumps({"snippets": [{"id": f"{i:06d}" + "i" * 2000, "code": "theorem t : True := trivial"}
                                        for i in range(count)]}).encode()
        return b"POST /api/check HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    first, second = request(1500), request(3000)  # the second answer is the larger: more of it waits in the buffer
    connections = server.server.server_state.connections
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.settimeout(30)
        client.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
        client.sendall(first)
        _wait(lambda: any(c.transport.get_write_buffer_size() > 0 for c in connections), "the answer was not held")
        held = time.monotonic()  # the first answer fills the buffer: its deadline runs from (at most) now
        assert _status(_whole_answer(client)) == 200  # taken at once, whole
        time.sleep(max(0.0, held + timeout / 2 - time.monotonic()))
        client.sendall(second)  # half a deadline later: its answer is written and waits in the buffer
        _wait(lambda: any(c.transport.get_write_buffer_size() > 0 for c in connections), "the answer was not held")
        time.sleep(max(0.0, held + timeout * 5 / 4 - time.monotonic()))  # past the first deadline, within its own
        answer = _whole_answer(client)
    assert _status(answer) == 200 and answer.count(b'"id"') == 3000


def test_a_request_whose_import_headers_take_seconds_to_read_does_not_stop_the_service(serve: Any) -> None:
    # Reading an import header costs microseconds a character (planner/headers.py is Python): a request of headers
    # hundreds of KiB long (each item under the per-item limit) takes seconds of CPU. The event loop must go on
    # serving meanwhile: /health answers while that request's items are still being read (none reached the checker).
    server = serve()
    header = "import " + "A." * 150_000 + "A\n"  # one module name of 150,001 components: ~1 s to read
    body = json.dumps([{"id": i, "code": header + f"theorem t{i} : True := trivial"} for i in range(12)]).encode()
    with _connect(server) as hostile:
        hostile.sendall(b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        _wait(lambda: server.state.admission.items == 12, "the request was not admitted")
        assert server.client.get("/health", timeout=60).status_code == 200
        assert server.checker.bodies == []  # answered while the headers were still being read
    _wait(lambda: server.state.admission.items == 0, "the items of a client that left were kept")


def test_a_request_whose_body_arrives_after_the_grace_is_answered_503_whatever_its_size(serve: Any) -> None:
    # Its body was still on its way when the grace ended and the service stopped what was in flight: admitted after
    # that stop, it is answered as stopped (typed, 503), small or large (a large one's headers are read on the
    # service's split thread, stopped by then), never checked on a stopping service nor a 500.
    server = serve(grace=0.2, client_timeout=30)
    pending = []
    for size in (100, 20_000):
        body = json.dumps(snippets("theorem t : True := trivial --" + "x" * size)).encode()
        sock = _connect(server)
        sock.sendall(b"POST /api/check HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body[:10]))
        pending.append((sock, body))
    _wait(lambda: server.state.lifecycle.in_flight == 2, "the requests did not begin")
    server.server.should_exit = True  # what SIGTERM does
    _wait(lambda: server.state.lifecycle.stopping, "the grace did not end")
    for sock, body in pending:
        with sock:
            sock.sendall(body[10:])
            answer = _until_closed(sock)
            assert _status(answer) == 503 and b"the service is stopping: 1 of 1 items" in answer, answer[:300]
    assert server.checker.bodies == []


def test_a_request_whose_headers_are_still_being_read_when_the_grace_ends_is_answered_503(serve: Any) -> None:
    # Its import headers take minutes to read (on the service's split thread); the grace ends a moment after it
    # came: it must be answered as stopped then, not after the rest of those minutes, when the server, past its
    # bound after the drain, has closed the connection without an answer.
    server = serve(grace=0.2, client_timeout=60)
    header = "import " + "A." * 150_000 + "A\n"  # one module name of 150,001 components: ~1 s to read
    body = json.dumps(snippets(*(header + f"theorem t{i} : True := trivial" for i in range(100)))).encode()
    with _connect(server) as waiting:
        waiting.settimeout(60)
        waiting.sendall(b"POST /api/check HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        _wait(lambda: server.state.admission.items == 100, "the request was not admitted")
        server.server.should_exit = True  # what SIGTERM does
        answer = _until_closed(waiting)
    assert _status(answer) == 503 and b"the service is stopping: 100 of 100 items" in answer, answer[:300]
    assert server.checker.bodies == []


def test_a_list_of_bad_items_is_refused_for_its_first_bad_one_in_a_small_answer(serve: Any) -> None:
    # 50,000 items that are not items (100 KB of "0,"): one error each would be an answer of 8 MB and seconds of
    # the event loop; the refusal names the first and is small, as every refusal (docs/serve.md).
    server = serve()
    zeros = b",".join([b"0"] * 50_000)
    for path, body in (("/v1/check", b"[" + zeros + b"]"), ("/api/check", b'{"snippets": [' + zeros + b"]}"),
                       ("/verify", b'{"codes": [' + zeros + b"]}")):
        answer = _post(server, path, body)
        assert answer.status_code == 422 and len(answer.content) < 2000, (path, len(answer.content))
        assert answer.json()["detail"][0]["loc"][-1] == 0
    assert server.checker.bodies == []


def test_more_items_than_the_queue_could_ever_hold_are_refused_before_they_are_read(serve: Any) -> None:
    # Reading a million items (pydantic models) takes seconds of the event loop and gigabytes before admission
    # refuses them; the count alone decides: 413, whatever the items are (here not items at all, or a bad line
    # after the bound).
    server = serve(max_queue=1000)
    zeros = b",".join([b"0"] * 1001)
    for path, body in (("/v1/check", b"[" + zeros + b"]"), ("/api/check", b'{"snippets": [' + zeros + b"]}"),
                       ("/verify", b'{"codes": [' + zeros + b"]}")):
        answer = _post(server, path, body)
        assert answer.status_code == 413 and "split the request" in answer.text, (path, answer.text[:300])
    lines = b"".join(b'{"id": %d, "code": "x"}\n' % i for i in range(1001)) + b"not JSON\n"
    answer = server.client.post("/v1/check", content=lines, headers={"Content-Type": "application/x-ndjson"})
    assert answer.status_code == 413 and "split the request" in answer.text, answer.text[:300]
    assert _post(server, "/v1/check", b"[" + b",".join([b"0"] * 1000) + b"]").status_code == 422  # within: read
    assert server.checker.bodies == []


def test_a_one_snippet_request_waits_one_call_behind_a_large_one_whatever_their_headers(serve: Any) -> None:
    # A request of 30 items, each of its own header, is waiting when a one-snippet request of yet another header
    # comes: it must not wait for all 30 (with Lean, an import of seconds each) but take its turn after one call.
    server = serve(capacity=1)
    large = [{"id": i, "code": f"import A{i}\ntheorem a{i} : True := {'HOLD' if i == 0 else 'trivial'}"}
             for i in range(30)]
    small = [{"id": "small", "code": "import B\ntheorem small : True := trivial"}]
    threads = [threading.Thread(target=httpx.post, args=(server.url + "/v1/check",),
                                kwargs={"json": items, "timeout": 30, "verify": serve_harness.TLS})
               for items in (large, small)]
    threads[0].start()
    server.wait_holding(1)  # the large request's first item holds the only REPL; the rest waits
    threads[1].start()
    _wait(lambda: server.state.admission.items == 31, "the small request was not admitted")
    server.checker.release()
    for thread in threads:
        thread.join(30)
    position = next(i for i, body in enumerate(server.checker.bodies) if "theorem small" in body)
    assert position <= 2, position  # after the held item and at most one more of the large request's


def test_a_key_of_any_utf8_text_can_be_presented(serve: Any) -> None:
    # A header value reaches the app one character a byte (latin-1): a key of UTF-8 letters in the key file was
    # never matched (always 401), and one ending in "à" (UTF-8 C3 A0: \xa0, a Unicode space, once read so) was cut.
    server = serve(KeyRing(parse_keys(["accents:clé-secrète-à"])))
    key = "clé-secrète-à".encode()
    body = snippets("theorem t : True := trivial")
    for headers in ({"X-API-Key": key}, {"Authorization": b"Bearer " + key}, {"Authorization": key},
                    {"Authorization": b"Bearer\t" + key}):
        assert server.client.post("/api/check", json=body, headers=headers).status_code == 200, headers
    for wrong in ("clé-secrète-a".encode(), key[:-1], "clé-secrète-à".encode("latin-1")):
        assert server.client.post("/api/check", json=body, headers={"X-API-Key": wrong}).status_code == 401
