"""The pytest plugin as a user meets it: docs/testing.md's example files, written to a folder outside the repository
and run with plain ``pytest`` in a subprocess (the plugin comes in through its entry point, nothing is configured),
then a failing chaos test that must print its replay, and a worker descendant that outlives ``lw_pool``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(180)


def doc_files() -> dict[str, str]:
    """The ```python file=NAME blocks of docs/testing.md."""
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    return dict(re.findall(r"```python file=(\S+)\n(.*?)```", text, re.S))


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PYTEST", "LEANWORKER"))}
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--strict-markers",
                           *args], cwd=folder, env=env, capture_output=True, text=True, timeout=170)


FAILING = '''
import pytest
import leanworker as lw

FAULTS = lw.SessionKey("leanworker.fixtures.faults:capability")


@pytest.mark.lw_chaos(rate=1.0, seed=3, kinds=["crash"])
def test_chaos_that_fails(lw_pool):
    with lw_pool.lease(FAULTS) as lease:
        lease.call("echo", 1)


@pytest.fixture
def lw_pool_config():
    return lw.PoolConfig(max_workers=1, worker=lw.WorkerConfig(containment="group", request_timeout=5.0))


def test_a_descendant_that_escapes_the_worker(lw_pool):
    with lw_pool.lease(FAULTS) as lease:
        stream = lease.stream("escapee", {"ignore_cancel": False})
        next(stream)
        stream.cancel()
'''


def test_the_documented_example_passes_with_plain_pytest_outside_the_repository_and_failures_say_why(
        tmp_path: Path) -> None:
    files = doc_files()
    assert set(files) == {"mytool.py", "test_mytool.py"}
    assert not tmp_path.is_relative_to(ROOT)
    for name, source in files.items():
        (tmp_path / name).write_text(source, encoding="utf-8")
    (tmp_path / "test_failing.py").write_text(FAILING, encoding="utf-8")  # one run: pytest starts once
    result = run_pytest(tmp_path, "-rA")
    out = result.stdout
    assert result.returncode == 1, out[-6000:] + result.stderr[-3000:]
    assert "1 failed, 7 passed, 1 error" in out, out[-3000:]
    assert re.findall(r"PASSED test_mytool.py::(\w+)", out) == re.findall(r"^def (test_\w+)", files["test_mytool.py"],
                                                                          re.M), "every documented test passes"
    assert out.count("leanworker faults") >= 4, "each lw_faults test reports its plan and fired faults"
    assert "fired: 1\n  1. crash(how='exit', code=3) at 'check' request 1 of mytool:capability" in out
    assert "lw_chaos seed=29" in out
    replay = out[out.index("leanworker chaos (replay)"):]
    assert "lw_chaos seed=3" in replay and "FaultPlan.from_json(" in replay
    assert "crash(how=" in replay and "'echo' request 1 of leanworker.fixtures.faults:capability" in replay
    assert "worker processes outlived lw_pool's shutdown" in out and "import time; time.sleep(600)" in out


def test_the_readmes_examples_are_the_documented_tests_that_run_above() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Testing your tool under faults"):readme.index("## Benchmarks")]
    [example] = re.findall(r"```python\n(.*?)```", section, re.S)
    documented = doc_files()["test_mytool.py"]
    for block in example.split("\n\n\n"):  # imports, the key, and each test: each is in the file run above
        assert block.strip() in documented, block[:200]


MISUSED = '''
import pytest


@pytest.mark.lw_chaos(rate=0.1, sed=4)
def test_a_misspelt_seed():
    pass


@pytest.mark.lw_chaos(rate=0.1, kinds="crash")
def test_kinds_as_a_string():
    pass


@pytest.mark.lw_chaos(rate=0.1, seed=1.5)
def test_a_seed_that_is_no_int():
    pass
'''


def test_a_misused_chaos_marker_is_an_error_that_says_what_is_wrong(tmp_path: Path) -> None:
    # A misspelt seed= ran seed 0 and passed: the run it claimed to replay was never run.
    (tmp_path / "test_misused.py").write_text(MISUSED, encoding="utf-8")
    out = run_pytest(tmp_path, "-rE").stdout
    assert "3 errors" in out, out[-3000:]
    assert "lw_chaos takes keyword arguments only: rate=..., seed=..., kinds=... (not sed)" in out
    assert "chaos kinds is a list of kinds, not the string 'crash'" in out
    assert "FaultPlan seed must be an int, got 1.5" in out


BESIDE = '''
import pytest
import leanworker as lw

KEY = lw.SessionKey("leanworker.fixtures.throughput:capability")


@pytest.fixture(scope="session")
def shared_pool():
    with lw.WorkerPool(lw.PoolConfig(max_workers=1)) as pool:
        yield pool


def test_lw_pool_beside_a_pool_that_lives_on(lw_pool, shared_pool):
    with lw_pool.lease(KEY) as lease:
        lease.call("echo", 1)
    with shared_pool.lease(KEY) as lease:  # its worker starts now, and lives on after lw_pool
        lease.call("echo", 2)


def test_the_pool_that_lives_on_still_has_its_worker(shared_pool):
    with shared_pool.lease(KEY) as lease:
        assert lease.call("echo", 3) == 3
'''


def test_lw_pool_judges_its_own_workers_not_those_of_a_pool_that_lives_on(tmp_path: Path) -> None:
    # It took every worker of the test process started during the test for its own: a session-scoped pool's worker
    # was reported as outliving lw_pool, and killed, so the next test that used it failed too.
    (tmp_path / "test_beside.py").write_text(BESIDE, encoding="utf-8")
    out = run_pytest(tmp_path).stdout
    assert "2 passed" in out and "outlived" not in out, out[-3000:]
