"""``leanworker.scaleout``: a plan on a two-node local Ray cluster gives what ``pool.run`` gives, with affinity,
backpressure, faults mapped to our types, a lost agent retried and replaced, and nothing left running (issue 11).

Real Ray nodes (``ray.cluster_utils.Cluster``) and real worker processes inside real agent actors; faults are a
real ``ray.kill`` and the mathlib-scale fixture's ``fail`` field."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

import leanworker as lw
from conftest import MATHLIB, wait_for

from leanworker.actors.core.env import AGENT_PID_ENV
from leanworker.testing import Fault, FaultPlan

if TYPE_CHECKING:
    from leanworker.scaleout import RayRunner
    from leanworker.scaleout.local_cluster import LocalCluster

# Ray (and leanworker.scaleout, which imports it) is imported by the tests that use it: importing it costs each test
# process that collects this module but runs none of its tests about half a second of CPU.
pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                 reason="Ray is not installed: pip install 'leanworker[ray]' (make test does)")]

WORKER = lw.WorkerConfig(startup_timeout=20, request_timeout=30, cancel_grace=0.5, kill_wait=3)
IMPORT = (("import_ms", 50),)


SHARED_AGENTS: set[int] = set()  # the pids of the shared runner's agents (fixture ``shared``) while it is open


def hosts() -> list[psutil.Process]:
    """The leanworker worker processes of this test session, but for the warm workers of the shared runner's agents:
    agents' workers are not children of the test process (and an orphan is nobody's), so they are found by the Ray
    temp dir in their environment, and their agent by the pid it leaves there."""
    mine = os.environ.get("RAY_TMPDIR")
    if mine is None:
        return []
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if "leanworker.host" in " ".join(process.info["cmdline"] or ()):
                environ = process.environ()
                if environ.get("RAY_TMPDIR") == mine and int(environ.get(AGENT_PID_ENV, "0")) not in SHARED_AGENTS:
                    found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    from leanworker.scaleout.local_cluster import local_cluster

    with local_cluster(nodes=2) as started:
        yield started
    assert wait_for(lambda: not started.processes(), timeout=30), \
        f"Ray processes left running: {[p.info['cmdline'][:2] for p in started.processes()]}"
    assert wait_for(lambda: not hosts(), timeout=30), "worker processes left running after the cluster stopped"


@pytest.fixture(scope="module")
def shared(cluster: LocalCluster) -> Iterator[RayRunner]:
    """One runner for the tests that neither lose an agent nor read a fresh pool's figures. Each agent is a Ray
    worker process, about half a second of CPU to start: shared, those tests start two agents instead of eight.
    Its agents' warm workers stay between tests; they are gone once it closes."""
    try:
        with runner(chunk_rows=1) as on_ray:  # one row a chunk: what the backpressure test counts
            SHARED_AGENTS.update(slot.pid for slot in on_ray.fleet.slots)
            yield on_ray
    finally:
        SHARED_AGENTS.clear()
    assert wait_for(lambda: not hosts(), timeout=30), f"workers left running: {[p.pid for p in hosts()]}"


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Ray keeps its own worker processes between tests: here the check is that no leanworker worker survives (but
    the warm workers of the shared runner, checked when it closes)."""
    yield
    assert wait_for(lambda: not hosts(), timeout=30), f"workers left running: {[p.pid for p in hosts()]}"


def runner_of(config: lw.PoolConfig, **options: Any) -> RayRunner:
    from leanworker.scaleout import RayRunner

    return RayRunner(config, **options)


def runner(**options: Any) -> RayRunner:
    workers = options.pop("max_workers", 1)
    return runner_of(lw.PoolConfig(max_workers=workers, worker=WORKER), **options)


def plan(modules: list[str], batch: int, imports: tuple[str, ...] = ("Mathlib",)) -> lw.ImportPlan:
    planner = lw.ImportPlanner(MATHLIB, imports, max_batch_modules=batch, options=IMPORT)
    return planner.plan([lw.WorkItem(m) for m in modules])


def committed(results: list[lw.BatchResult]) -> list[tuple[tuple[str, ...], tuple[lw.Row, ...]]]:
    return sorted((r.modules, r.rows) for r in results if r.committed)


def test_a_plan_on_two_nodes_commits_the_same_rows_as_a_local_pool(cluster: LocalCluster) -> None:
    the_plan = plan([f"Mathlib.A{i:02d}" for i in range(14)], 3)
    with lw.WorkerPool(lw.PoolConfig(max_workers=2, worker=WORKER)) as pool:
        local = list(pool.run(the_plan, "index"))
    with runner(chunk_rows=2) as on_ray, on_ray.run(the_plan, "index") as run:
        remote = list(run)
        nodes = on_ray.snapshot()
    final = on_ray.snapshot()  # after close: the figures each node's pool ended with
    assert set(final) == set(nodes) and all(s.workers == 0 and s.requests_ok > 0 for s in final.values())
    assert committed(remote) == committed(local) and len(remote) == len(the_plan.batches)
    summary = run.summary
    assert summary is not None and summary.batches_committed == len(the_plan.batches) and summary.retries == 0
    assert summary.rows == sum(len(r.rows) for r in local)
    assert len(nodes) == 2 and all(s.requests_ok > 0 for s in nodes.values()), "both nodes should have run batches"
    assert summary.sessions_opened == sum(s.sessions_opened for s in nodes.values())


def test_affinity_opens_fewer_sessions_than_round_robin_on_a_shuffled_plan(shared: RayRunner) -> None:
    batches = [b for name in ("Left", "Right", "Third")
               for b in plan([f"{name}.M{i:02d}" for i in range(12)], 2, (name,)).batches]
    random.Random(11).shuffle(batches)
    opened = {}
    # The shared runner has affinity and one worker per agent; no other test plans these keys (Left, Right, Third).
    assert shared.affinity and shared.pool.max_workers == 1
    with runner(affinity=False) as round_robin:
        for affinity, on_ray in ((True, shared), (False, round_robin)):
            summary = on_ray.run(batches, "index").wait()
            assert summary.batches_committed == len(batches)
            opened[affinity] = summary.sessions_opened
    assert opened[True] <= 3 + 2, opened  # each key once, plus at most one move per node
    assert opened[True] < opened[False], opened


def test_an_agent_killed_mid_batch_is_retried_replaced_and_its_rows_written_once(
        cluster: LocalCluster, tmp_path: Path) -> None:
    import ray

    the_plan = plan([f"Mathlib.K{i:02d}" for i in range(8)], 4)
    output = tmp_path / "rows.jsonl"
    with runner(chunk_rows=1) as on_ray:
        first = on_ray.fleet.slots[0]
        with on_ray.run(the_plan, "index", {"row_delay_ms": 150}, output=str(output)) as run:
            assert wait_for(lambda: ray.get(first.handle.in_flight.remote())[1] >= 2, timeout=60), \
                "the batch never started on the first agent"
            ray.kill(first.handle, no_restart=True)
            results = list(run)
        assert on_ray.fleet.slots[0].generation == 2 and not on_ray.fleet.slots[0].gone, "agent not replaced"
        assert len(on_ray.snapshot()) == 2
    summary = run.summary
    assert summary is not None and summary.retries >= 1 and summary.batches_committed == len(the_plan.batches)
    assert all(r.committed for r in results) and max(r.attempts for r in results) == 2
    written = [json.loads(line) for line in output.read_text().splitlines()]
    keys = [(w["batch"], w["stream"], w["seq"]) for w in written]
    assert len(keys) == len(set(keys)) == summary.rows, "a row is missing or written twice"
    with lw.WorkerPool(lw.PoolConfig(max_workers=2, worker=WORKER)) as pool:
        expected = sum(len(r.rows) for r in pool.run(the_plan, "index"))
    assert summary.rows == expected


def test_a_worker_killed_inside_an_agent_is_worker_crashed_on_the_driver(shared: RayRunner) -> None:
    the_plan = plan(["Mathlib.Fine", "Mathlib.Poison"], 1)
    results = list(shared.run(the_plan, "index", {"fail": {"Mathlib.Poison": "crash"}}, retries=0))
    failed = [r for r in results if not r.committed]
    assert [r.modules for r in failed] == [("Mathlib.Poison",)]
    assert isinstance(failed[0].error, lw.WorkerCrashed), repr(failed[0].error)
    assert failed[0].error.signal == 9 and failed[0].rows == ()
    assert [r.modules for r in results if r.committed] == [("Mathlib.Fine",)]


def test_an_injected_node_lost_kills_the_agent_from_its_worker_and_the_run_still_commits_once(
        cluster: LocalCluster, tmp_path: Path) -> None:
    the_plan = plan([f"Mathlib.N{i:02d}" for i in range(6)], 3)
    faults = FaultPlan([Fault("node_lost", nth=1, after_rows=2)])
    output = tmp_path / "rows.jsonl"
    with runner() as on_ray:
        agents = {slot.pid for slot in on_ray.fleet.slots}
        with on_ray.run(the_plan, "index", output=str(output), faults=faults) as run:
            results = list(run)
        assert sum(slot.generation for slot in on_ray.fleet.slots) == len(agents) + 1, "one agent replaced"
    summary = run.summary
    assert summary is not None and summary.retries == 1 and summary.injected == ()
    assert all(r.committed for r in results) and sorted(r.attempts for r in results) == [1, 2]
    [fired] = summary.faults
    assert (fired.kind, fired.nth, fired.pid) == ("node_lost", 1, None), "the driver does not know a node's pids"
    assert not any(psutil.pid_exists(pid) for pid in agents - {s.pid for s in on_ray.fleet.slots})
    written = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(written) == len({(w["batch"], w["stream"], w["seq"]) for w in written}) == summary.rows


def test_a_capability_error_arrives_as_command_error_with_its_fields(shared: RayRunner) -> None:
    results = list(shared.run(plan(["Mathlib.X"], 1), "no_such_command"))
    assert len(results) == 1 and not results[0].committed
    error = results[0].error
    assert isinstance(error, lw.CommandError) and error.code == "unknown_command", repr(error)


def test_backpressure_keeps_the_agent_a_few_chunks_ahead_of_a_slow_reader(shared: RayRunner) -> None:
    import ray

    from leanworker.scaleout.agent_run import start_attempt

    agent = shared.fleet.slots[0].handle  # one row a chunk
    key = plan(["Mathlib.B"], 1).batches[0].key
    request = {"modules": [f"Mathlib.B{i:03d}" for i in range(300)]}
    stream = start_attempt(agent, "bp-1", key, "index", request, 60.0, 2)
    first = ray.get(next(stream))
    assert first[0] == "rows"
    assert wait_for(lambda: ray.get(agent.chunks_sent.remote("bp-1")) >= 2, timeout=30)
    time.sleep(1.0)  # time for an unbounded producer to run hundreds of chunks ahead
    ahead = ray.get(agent.chunks_sent.remote("bp-1"))
    assert ahead <= 1 + 2 + 1, f"the agent ran {ahead} chunks ahead of a reader that took 1"
    rest = [ray.get(ref) for ref in stream]
    rows = 1 + sum(len(item[1]) for item in rest if item[0] == "rows")
    assert rest[-1][0] == "done" and rows == rest[-1][1].total_rows > ahead


def test_closing_the_runner_ends_a_run_nobody_reads(cluster: LocalCluster) -> None:
    the_plan = plan([f"Mathlib.U{i:02d}" for i in range(16)], 1)

    def run_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("leanworker-run-")}
    before = run_threads()
    on_ray = runner()
    try:
        run = on_ray.run(the_plan, "index")  # never read, never cancelled
        mine = run_threads() - before
        # two agents of one worker: two runners and a queue of four, full and both runners waiting at six results
        assert len(mine) == 2 and wait_for(lambda: run.progress.batches_done >= 6, timeout=60)
    finally:
        on_ray.close()
    assert not any(t.is_alive() for t in mine), "the runner closed under a run that waits for its reader"
    results = list(run)  # what was final stays readable
    summary = run.summary
    assert summary is not None and summary.cancelled
    assert len(results) + summary.batches_cancelled == len(the_plan.batches)


def test_a_runner_without_a_ray_connection_says_how_to_connect() -> None:
    from leanworker.scaleout import NotConnected

    code = ("import leanworker.scaleout as s\n"
            "try:\n    s.RayRunner()\nexcept s.NotConnected as e:\n    print('refused:', e)\n")
    env = {**os.environ, "RAY_ENABLE_AUTO_CONNECT": "0", "RAY_ADDRESS": ""}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("refused: RayRunner needs a Ray connection: call ray.init("), done.stderr
    assert issubclass(NotConnected, lw.LeanWorkerError)


def test_importing_leanworker_never_imports_ray() -> None:
    code = ("import sys, leanworker as lw\n"
            "lw.WorkerPool, lw.PlanRun, lw.NodeLost, lw.ImportPlanner\n"
            "import leanworker.cli, leanworker.cli._run\n"
            "print('ray' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_leanworker_run_with_ray_gives_the_summary_of_a_local_run(cluster: LocalCluster, tmp_path: Path) -> None:
    import leanworker.fixtures

    project = Path(leanworker.fixtures.__file__).parent / "lake" / "toml_multi"
    base = [sys.executable, "-m", "leanworker", "run", str(project), "--capability", MATHLIB, "--command", "index",
            "--lib", "Beta", "--lib", "Gamma", "--max-batch-modules", "2", "--json"]
    outputs = {}
    for where in ("local", "ray"):
        output = tmp_path / f"{where}.jsonl"
        extra = ["--ray", cluster.address] if where == "ray" else []
        done = subprocess.run([*base, *extra, "--output", str(output)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)["summary"]
        assert summary["batches_committed"] == 3 and summary["rows"] == len(output.read_text().splitlines())
        outputs[where] = sorted((r["module_set"], r["stream"], r["seq"], json.dumps(r["payload"], sort_keys=True))
                                for r in map(json.loads, output.read_text().splitlines()))
    assert outputs["ray"] == outputs["local"]


DRIVER = """
import sys, ray, leanworker as lw
from leanworker.scaleout import RayRunner
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
plan = lw.ImportPlanner(sys.argv[2], ("Mathlib",), max_batch_modules=4).plan(
    [lw.WorkItem(f"Mathlib.D{i:02d}") for i in range(16)])
with RayRunner(lw.PoolConfig(max_workers=1)) as runner:
    with runner.run(plan, "index", {"row_delay_ms": 200}) as run:
        print("running", flush=True)
        for result in run:
            print("result", flush=True)
"""


def test_a_driver_killed_mid_run_leaves_no_worker_behind(cluster: LocalCluster) -> None:
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, cluster.address, MATHLIB], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert driver.stdout is not None and driver.stdout.readline().strip() == "running"
        assert wait_for(lambda: len(hosts()) == 2, timeout=60), "the agents' workers never started"
        driver.kill()
        driver.wait(30)
        assert wait_for(lambda: not hosts(), timeout=60), f"workers outlived their driver: {hosts()}"
    finally:
        driver.kill()
        driver.wait(30)
        if driver.stdout is not None:
            driver.stdout.close()


def test_a_node_lost_mid_batch_is_node_lost_and_the_batch_commits_on_the_others(cluster: LocalCluster) -> None:
    import ray

    extra = cluster.cluster.add_node(num_cpus=1, object_store_memory=80 * 1024**2)
    cluster.cluster.wait_for_nodes()
    the_plan = plan([f"Mathlib.N{i:02d}" for i in range(12)], 2)
    try:
        with runner(chunk_rows=1) as on_ray:
            index = next(i for i, s in enumerate(on_ray.fleet.slots) if s.node_id == extra.node_id)
            lost = on_ray.fleet.slots[index]
            with on_ray.run(the_plan, "index", {"row_delay_ms": 150}) as run:
                assert wait_for(lambda: ray.get(lost.handle.in_flight.remote())[1] >= 2, timeout=60)
                cluster.cluster.remove_node(extra)
                extra = None
                results = list(run)
            assert lost.gone and len(on_ray.snapshot()) == 2
    finally:
        if extra is not None:
            cluster.cluster.remove_node(extra)
    summary = run.summary
    assert summary is not None and summary.retries >= 1
    assert all(r.committed for r in results) and summary.batches_committed == len(the_plan.batches)
    assert sorted(m for r in results for m in r.modules) == sorted(m for b in the_plan.batches for m in b.modules)


def test_a_run_cancelled_while_an_agents_worker_opens_its_session_ends_without_waiting_for_the_open(
        cluster: LocalCluster, tmp_path: Path) -> None:
    """The agent's lease wait is withdrawn (docs/semantics.md, Running a plan: Cancel); the worker that was opening
    is killed when the runner's agents shut their pools down."""
    marker = tmp_path / "opening"
    planner = lw.ImportPlanner(MATHLIB, ("Mathlib",), max_batch_modules=2,
                               options=(("import_ms", 120_000), ("open_marker", str(marker))))
    the_plan = planner.plan([lw.WorkItem(f"Mathlib.M{i}") for i in range(4)])
    config = lw.PoolConfig(max_workers=1, worker=dataclasses.replace(WORKER, open_timeout=300))
    with runner_of(config) as ray_runner:
        run = ray_runner.run(the_plan, "index")
        assert wait_for(marker.exists, timeout=60), "no worker began its session open"
        run.cancel()
        ended = threading.Event()
        outcome: list[lw.BatchResult | BaseException] = []  # what the run gave: said if a batch was not cancelled

        def read() -> None:
            try:
                outcome.extend(run)
                run.wait()
            except BaseException as exc:
                outcome.append(exc)
            finally:
                ended.set()
        threading.Thread(target=read, daemon=True).start()
        assert ended.wait(30), "the cancelled run waited for the session open"
        summary = run.summary
        assert summary is not None and summary.cancelled and summary.batches_committed == 0, (summary, outcome)
        assert summary.batches_cancelled == len(the_plan.batches), (summary, outcome)
