"""``python -m leanworker.serve --simulator`` as a user runs it: real worker processes, the REPL SIMULATOR, HTTP on a
port it picks, SIGTERM at the end (exit 0, nothing left behind); and Kimina's own client from PyPI against it, in the
Python 3.12 venv ``make test`` builds (``.venv/kimina-client``; the test skips, saying why, where there is none)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from conftest import pid_gone, wait_for  # noqa: E402
from serve_harness import TLS  # noqa: E402

CHECKOUT = Path(__file__).resolve().parent.parent
KIMINA_CLIENT_VENV = CHECKOUT / ".venv" / "kimina-client"  # made by `make test` (Makefile, $(KIMINA_CLIENT))
KIMINA_PEER_VENV = Path(os.environ.get("LEANWORKER_KIMINA_PEER", CHECKOUT.parent / "kimina-peer")) / "venv"


def kimina_python() -> Path:
    """A Python with Kimina's client: the venv ``make test`` builds, else the bench peer's; skip, saying why."""
    for venv in (KIMINA_CLIENT_VENV, KIMINA_PEER_VENV):
        if (venv / "bin" / "python").exists():
            return venv / "bin" / "python"
    skipped = KIMINA_CLIENT_VENV.parent / "kimina-client.skip"
    why = skipped.read_text().strip() if skipped.exists() else "run `make test`, which builds it"
    pytest.skip(f"no venv with Kimina's client (kimina-ast-client) at {KIMINA_CLIENT_VENV}: {why}")


class Service:
    """A ``leanworker serve`` process and the URL its start line names."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.stderr_path = tmp_path / f"serve-{os.getpid()}-{id(self)}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "leanworker.serve", "--simulator", "--port", "0", "--log-level", "warning",
             *args], stdout=subprocess.PIPE, stderr=self.stderr_path.open("wb"), text=True,
            env={**os.environ, **(env or {})})
        assert self.process.stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(30)
        assert line and ("listening on http://" in line[0] or line[0].startswith('{"status": "listening"')), \
            f"no start line: {line} {self.stderr()}"
        self.start_line = line[0]
        self.url = json.loads(line[0])["url"] if line[0].startswith("{") else next(  # --json: one JSON object
            w for w in line[0].split() if w.startswith("http://"))
        self.client = httpx.Client(base_url=self.url, timeout=30, verify=TLS)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, then the exit status (the test fails on a hang)."""
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            assert self.process.stdout is not None
            self.process.stdout.close()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Any]:
    started: list[Service] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Service:
        started.append(Service(tmp_path, *args, env=env))
        return started[-1]

    yield start
    for service in started:
        service.stop()


def test_every_endpoint_over_real_workers_and_the_simulator(services: Any, tmp_path: Path) -> None:
    imports_log = tmp_path / "imports.log"
    # unsandboxed: the simulator's import log is written where the test can read it
    service = services("--no-cache", "--workers", "1", "--sandbox", "none",
                       env={"LEANWORKER_REPL_SIM_LOG": str(imports_log)})
    assert "REPL SIMULATOR" in service.start_line and "no API keys (loopback only)" in service.start_line
    assert service.client.get("/health").json() == {"status": "ok", "server": "leanworker",
                                                    "version": service.client.get("/health").json()["version"],
                                                    "simulated": True}
    header = "import Mathlib\n"
    for i in range(3):  # one header, three requests: the REPL imports it once
        answer = service.client.post("/api/check", json={"snippets": [
            {"id": f"t{i}", "code": f"{header}theorem t{i} : True := trivial"}]})
        assert answer.json()["results"][0]["response"] == {}
    assert imports_log.read_text().splitlines() == ["import Mathlib"]

    answer = service.client.post("/api/check", json={"timeout": 1, "snippets": [
        {"id": "sorry", "code": f"{header}theorem s : True := sorry"},
        {"id": "error", "code": f"{header}theorem e : True := ERROR"},
        {"id": "crash", "code": f"{header}theorem c : True := CRASH"},
        {"id": "hang", "code": f"{header}theorem h : True := HANG"},
        {"id": "after", "code": f"{header}theorem a : True := trivial"}]})
    assert answer.status_code == 200
    results = {r["id"]: r for r in answer.json()["results"]}
    assert list(results) == ["sorry", "error", "crash", "hang", "after"]
    assert results["sorry"]["response"]["sorries"][0]["pos"] == {"line": 1, "column": 20}
    assert results["error"]["response"]["messages"][0]["data"] == "unknown identifier 'ERROR'"
    assert results["crash"]["error"].startswith("Lean REPL crashed: the REPL exited with status 1")
    assert results["hang"] == {"id": "hang", "time": 1.0, "error": "Lean REPL command timed out in 1.0 seconds"}
    assert results["after"]["response"] == {}

    verify = service.client.post("/verify", json={"codes": [{"custom_id": 7, "proof": f"{header}theorem v : True "
                                                              ":= sorry"}], "timeout": 5}).json()
    assert verify["results"][0]["custom_id"] == "7" and "time" in verify["results"][0]["response"]

    lines = service.client.post("/v1/check?timeout=5", json=[{"id": 1, "code": f"{header}theorem n : True := "
                                                                                "sorry"}]).text.splitlines()
    native = json.loads(lines[0])
    assert native["status"] == "sorry" and native["simulated"] is True and native["sorries"][0]["pos"]["line"] == 2

    assert service.stop() == 0


def test_kiminas_own_client_works_unchanged_with_a_key(services: Any) -> None:
    python = kimina_python()
    service = services("--no-cache", "--sandbox", "none", env={"LEANWORKER_API_KEYS": "client-key"})
    assert "API keys required (1)" in service.start_line
    script = textwrap.dedent("""
        import json, sys
        from kimina_client import KiminaClient, Snippet
        url = sys.argv[1]
        client = KiminaClient(api_url=url, api_key="client-key", n_retries=1)  # sends Authorization: Bearer
        assert client.health()["status"] == "ok"
        codes = {"valid": "theorem a : True := trivial", "sorry": "theorem b : True := sorry",
                 "lean_error": "theorem c : True := ERROR", "timeout_error": "theorem d : True := HANG",
                 "crash": "theorem e : True := CRASH"}
        response = client.check([Snippet(id=k, code="import Mathlib\\n" + v) for k, v in codes.items()],
                                timeout=1, show_progress=False)
        verdicts = {r.id: r.analyze().status.value for r in response.results}
        wrong = KiminaClient(api_url=url, api_key="wrong", n_retries=1).check(  # logs the 401 on stdout
            [Snippet(id="x", code="theorem x : True := trivial")], timeout=1, show_progress=False)
        print(json.dumps({"verdicts": verdicts, "refused": wrong.results[0].error}))
    """)
    done = subprocess.run([str(python), "-c", script, service.url], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["verdicts"] == {"valid": "valid", "sorry": "sorry", "lean_error": "lean_error",
                               "timeout_error": "timeout_error", "crash": "server_error"}  # its client's word
    assert "failed" in out["refused"] and "401 Unauthorized" in done.stdout, done.stdout[-1000:]
    assert service.stop() == 0


@pytest.mark.parametrize("sandbox", ["default", "none"])
def test_a_client_that_connects_the_moment_the_start_line_appears_is_not_refused(services: Any, sandbox: str) -> None:
    service = services(*(("--sandbox", "none") if sandbox == "none" else ()))
    host, port = service.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as connection:  # refused if not listening yet
        connection.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        assert connection.recv(64).startswith(b"HTTP/1.1 "), "the service answered nothing"


def test_the_cache_survives_a_restart(services: Any, tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite3"
    code = "import Mathlib\ntheorem c : True := sorry"
    first = services("--cache", str(cache))  # sandboxed where bubblewrap is installed: the default
    assert ("sandbox: bubblewrap" if shutil.which("bwrap") else "sandbox: NONE") in first.start_line
    assert json.loads(first.client.post("/v1/check", json=[{"id": 1, "code": code}]).text).get("cached") is None
    assert first.stop() == 0
    second = services("--cache", str(cache))
    again = json.loads(second.client.post("/v1/check", json=[{"id": 2, "code": code}]).text)
    assert again["cached"] is True and again["status"] == "sorry" and again["id"] == 2
    debug = second.client.post("/api/check", json={"debug": True, "snippets": [{"id": "k", "code": code}]})
    assert debug.json()["results"][0]["diagnostics"] == {"status": "sorry", "cached": True, "simulated": True}


def _metric(service: Service, name: str) -> float:
    for line in service.client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return -1


def test_sigterm_mid_load_finishes_what_is_in_flight_answers_the_rest_503_and_leaves_no_process(
        services: Any) -> None:
    # sandboxed where bubblewrap is installed (the default): bubblewrap, its namespace's init, the worker, the REPL
    service = services("--no-cache", "--grace", "5")
    answers: dict[str, httpx.Response] = {}

    def post(name: str, body: dict[str, Any]) -> None:
        answers[name] = httpx.post(service.url + "/api/check", json=body, timeout=60)

    hanging = {"timeout": 60, "snippets": [{"id": "hang", "code": "import Hang\ntheorem h : True := HANG"}]}
    threads = [threading.Thread(target=post, args=("hang", hanging))]
    threads[0].start()
    # one REPL hangs from now on
    assert wait_for(lambda: _metric(service, 'leanworker_workers{state="busy"}') == 1, timeout=30)
    threads += [threading.Thread(target=post, args=(f"slow{i}", {"snippets": [
        {"id": f"slow{i}", "code": f"import Slow\ntheorem s{i} : True := by SLOW700"}]})) for i in range(3)]
    for thread in threads[1:]:
        thread.start()
    # all admitted and none answered: the other REPL starts, then takes 0.7 s per slow item, 2.1 s in all
    assert wait_for(lambda: _metric(service, "leanworker_serve_queue_items") == 4, timeout=30)
    tree = psutil.Process(service.process.pid).children(recursive=True)
    assert tree
    service.process.send_signal(signal.SIGTERM)  # four requests in flight, one of them never ending
    assert wait_for(lambda: not _accepts(service.url), timeout=10)  # it stops accepting at once
    for thread in threads:
        thread.join(60)
    for i in range(3):  # in flight and done within the grace: answered
        assert answers[f"slow{i}"].status_code == 200
        assert answers[f"slow{i}"].json()["results"][0]["response"] == {}
    refused = answers["hang"]  # still running when the grace ended: a typed 503
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json()["detail"].startswith("the service is stopping: 1 of 1 items were not checked")
    assert service.process.wait(30) == 0
    assert wait_for(lambda: all(pid_gone(p.pid) for p in tree), timeout=10), "a process outlived the service"


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed here; .ci/run "
                                                          "installs it (apt-get install bubblewrap)")
def test_code_that_loops_forever_or_takes_too_much_memory_costs_its_item_in_a_sandboxed_service(
        services: Any) -> None:
    service = services("--no-cache", "--workers", "1", "--max-worker-memory-mib", "300")
    assert "memory ceiling 300 MiB a worker" in service.start_line and "sandbox: bubblewrap" in service.start_line
    header = "import Mathlib\n"
    def check(items: list[dict[str, str]], timeout: float) -> dict[str, Any]:
        answer = service.client.post(f"/v1/check?timeout={timeout:g}", json=items, timeout=90)
        return {line["id"]: line for line in map(json.loads, answer.text.splitlines())}

    lines = check([{"id": "loop", "code": f"{header}theorem l : True := by LOOP"}], timeout=2)
    assert lines["loop"]["status"] == "timeout"  # its REPL was killed at the deadline
    # A deadline of its own: on a loaded machine, writing 800 MiB and the sample that sees it can take past 2 s.
    lines = check([{"id": "memory", "code": f"{header}theorem m : True := by MEMORY800"},
                   {"id": "after", "code": f"{header}theorem a : True := trivial"}], timeout=30)
    assert lines["memory"]["status"] == "crashed", lines["memory"]  # past the ceiling: killed, not the machine's
    assert lines["after"]["status"] == "ok"
    repls = [p for p in psutil.Process(service.process.pid).children(recursive=True)
             if "repl_sim" in " ".join(p.cmdline())]
    assert len(repls) <= 1, "a REPL that looped forever outlived its item"
    assert service.stop() == 0


def _accepts(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


def test_a_cache_that_cannot_be_opened_is_exit_2_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "not-a-database").write_text("garbage\n")
    (tmp_path / "a-file").write_text("")
    for cache, says in ((tmp_path / "not-a-database", "file is not a database"),
                        (tmp_path / "a-file" / "cache.sqlite3", "File exists")):  # its directory: a file
        done = subprocess.run([sys.executable, "-m", "leanworker", "serve", "--simulator", "--port", "0",
                               "--sandbox", "none", "--cache", str(cache)], capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert done.stderr.splitlines() == [f"leanworker serve: cannot open the cache {cache}: {says}"], done.stderr


def test_with_json_the_start_line_and_a_start_error_are_one_json_object(services: Any, tmp_path: Path) -> None:
    service = services("--json", "--no-cache", "--sandbox", "none")
    start = json.loads(service.start_line)
    assert start == {"status": "listening", "url": service.url, "simulated": True, "repl": None, "workers": 2,
                     "max_worker_memory_mib": start["max_worker_memory_mib"], "api_keys": 0, "insecure": False,
                     "cache": None, "sandbox": "none (--sandbox none: untrusted code can reach this machine)"}
    assert service.client.get("/health").json()["status"] == "ok"
    assert service.stop() == 0
    for command in (["-m", "leanworker", "serve"], ["-m", "leanworker.serve"]):  # both ways
        done = subprocess.run([sys.executable, *command, "--simulator", "--port", "0", "--json", "--workers", "0"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.splitlines() == ["leanworker serve: --workers must be >= 1"], \
            done.stderr
        assert json.loads(done.stdout) == {"status": "error", "error": "StartError",
                                           "message": "--workers must be >= 1"}


def test_a_repl_that_is_not_there_is_exit_2_in_one_line_that_says_what_to_pass(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no repl, no lake on PATH
    env.pop("LEANWORKER_REPL", None)
    missing = tmp_path / "no-such-repl"
    for args, says in (([], "no Lean REPL found (searched $LEANWORKER_REPL, the workspace's built REPL under lake "
                            "env, and 'repl' on PATH): pass --repl COMMAND, or --simulator to try the service "
                            "without Lean (docs/serve.md)"),
                       (["--repl", str(missing)], f"the REPL command from --repl, '{missing}': '{missing}' is not an "
                                                  f"executable file (looked in {tmp_path})")):
        done = subprocess.run([sys.executable, "-m", "leanworker", "serve", "--port", "0", "--sandbox", "none",
                               "--no-cache", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert done.stderr.splitlines() == [f"leanworker serve: {says}"], done.stderr


def test_it_refuses_a_non_loopback_address_without_keys_and_a_bad_option_with_exit_2() -> None:
    for args, says in ((["--host", "0.0.0.0"], "without API keys"), (["--timeout", "0"], "--timeout"),
                       (["--workers", "0"], "--workers must be >= 1"), (["--api-key-file", "/nonexistent"],
                                                                        "cannot read the API key file")):
        command = ["-m", "leanworker", "serve"] if "0.0.0.0" in args else ["-m", "leanworker.serve"]  # both ways
        done = subprocess.run([sys.executable, *command, "--simulator", *args],
                              capture_output=True, text=True, timeout=60, env={**os.environ, "LEANWORKER_API_KEYS": ""})
        assert done.returncode == 2 and says in done.stderr and done.stdout == ""


# The service sends itself a signal the moment it starts to import $SIGNAL_ON_IMPORT, and says so in "signalled"
# beside this module: a moment of its start-up found without timing.
SIGNAL_ON_IMPORT = """
import os
import signal
import sys
from pathlib import Path

class SignalOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["SIGNAL_ON_IMPORT"]:
            (Path(__file__).parent / "signalled").write_text(name)
            os.kill(os.getpid(), getattr(signal, os.environ["SIGNAL_NAME"]))
        return None

if not os.environ.get("LEANWORKER_PARENT_PID"):  # the service, not its workers
    sys.meta_path.insert(0, SignalOnImport())
"""


def processes_started_by(pid: int) -> list[psutil.Process]:
    """The live processes that name ``pid`` as the leanworker process that started them (its workers)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("LEANWORKER_PARENT_PID") == str(pid) and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize("moment", ["leanworker.serve.app", "uvicorn.loops.auto"],
                         ids=["while_it_sets_up", "before_uvicorn_handles_signals"])
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_a_stop_signal_while_the_service_starts_is_kept_it_drains_and_exits_0(tmp_path: Path, moment: str,
                                                                              stop: str) -> None:
    """SIGTERM or Ctrl-C while the service is still starting (before its server exists, or before uvicorn has put its
    own signal handlers in place) is not lost and does not kill it half-way: it exits 0, no traceback, no worker
    left."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SIGNAL_ON_IMPORT)
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    process = subprocess.Popen(
        [sys.executable, "-m", "leanworker.serve", "--simulator", "--port", "0", "--no-cache", "--sandbox", "none",
         "--workers", "1", "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": path, "SIGNAL_ON_IMPORT": moment, "SIGNAL_NAME": stop},
        start_new_session=True)
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{stop} while it started was lost: the service still ran 60 s later") from None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert (hook / "signalled").read_text() == moment
    assert process.returncode == 0, (process.returncode, out, err)
    assert "Traceback" not in err, err
    assert processes_started_by(process.pid) == []
