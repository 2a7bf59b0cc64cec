"""``leanworker.testing``'s decisions as pure policy, without processes: rules, the seed's draws, what a plan claims,
what it sends and records, and its plain-data forms (docs/testing.md). Real worker processes: test_fault_kit.py,
test_chaos_runs.py, test_pytest_plugin.py."""

from __future__ import annotations

import json
import pickle
import threading
from pathlib import Path

import pytest

import leanworker as lw
import leanworker.testing
from leanworker.actors.core import intercept
from leanworker.actors.run import ambient_faults
from leanworker.actors.slot.gate_state import GateState
from leanworker.testing import Fault, FaultPlan, FiredFault
from leanworker.testing.firing import may_grow
from leanworker.testing.wire import ENVELOPE, OPEN_OPTION, unwrap

KEY = lw.SessionKey("mytool:capability")
OTHER = lw.SessionKey("mytool:capability", imports=("Other",))


def requests_hook(plan: FaultPlan, key: lw.SessionKey, pid: int = 4242) -> intercept.RequestHook:
    intercepted = plan.intercept(plan.wrap(key), pid)
    assert intercepted is not None and intercepted.requests is not None
    return intercepted.requests


def faulted(hook: intercept.RequestHook, count: int, command: str = "check") -> list[int]:
    """The request numbers (from 1) that ``hook`` sent with a fault."""
    return [n for n in range(1, count + 1) if unwrap(hook(command, {"n": n}))[0] is not None]


def test_a_rule_checks_its_kind_and_params() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")
    with pytest.raises(ValueError, match="takes no parameter"):
        Fault("crash", seconds=1)
    with pytest.raises(ValueError, match="how"):
        Fault("crash", how="melt")
    with pytest.raises(ValueError, match="no command"):
        Fault("session_fail", command="check")
    with pytest.raises(ValueError, match="after_rows"):
        Fault("garbage", after_rows=-1)
    with pytest.raises(ValueError, match="probability"):
        Fault("slow", probability=1.5)
    with pytest.raises(ValueError, match="nth"):
        Fault("hang", nth=0)


def test_nth_every_command_and_key_filter_the_requests_of_a_key() -> None:
    plan = FaultPlan([Fault("crash", nth=2), Fault("slow", every=3, command="check", key=OTHER)])
    assert faulted(requests_hook(plan, KEY), 7) == [2]
    other = requests_hook(plan, OTHER)
    assert faulted(other, 7) == [2, 3, 6], "nth counts each key from 1; every=3 matched OTHER's 3rd and 6th"
    assert [f.kind for f in plan.fired()] == ["crash", "crash", "slow", "slow"]
    assert faulted(requests_hook(FaultPlan([Fault("slow", command="index")]), KEY), 3, "check") == []


def test_the_first_matching_rule_fires_and_its_directive_carries_its_params_and_the_request() -> None:
    plan = FaultPlan([Fault("hang", nth=1, ignore_cancel=True), Fault("crash", nth=1)])
    sent = requests_hook(plan, KEY)("check", {"items": [1]})
    directive, request = unwrap(sent)
    assert request == {"items": [1]} and set(sent) == {ENVELOPE, "request"}
    assert directive is not None and directive["kind"] == "hang" and directive["params"] == {"ignore_cancel": True}
    assert directive["nth"] == 1 and directive["record"] == 0


def test_a_request_without_a_fault_is_sent_unchanged_and_built_ins_are_never_seen() -> None:
    request = {"items": ["a"]}
    assert requests_hook(FaultPlan([Fault("crash", nth=5)]), KEY)("check", request) is request


def test_probability_draws_depend_on_seed_key_and_number_only_not_on_interleaving() -> None:
    rules = [Fault("crash", probability=0.3)]
    alone = faulted(requests_hook(FaultPlan(rules, seed=9), KEY), 200)
    plan = FaultPlan(rules, seed=9)
    mine, other = requests_hook(plan, KEY), requests_hook(plan, OTHER)
    interleaved = []
    for n in range(1, 201):
        faulted(other, 3)  # another key's requests in between shift nothing
        if unwrap(mine("check", n))[0] is not None:
            interleaved.append(n)
    assert interleaved == alone and 30 <= len(alone) <= 90, len(alone)
    assert faulted(requests_hook(FaultPlan(rules, seed=10), KEY), 200) != alone, "another seed, other draws"


def test_a_keys_draws_do_not_depend_on_where_its_project_or_programs_lie_on_disk() -> None:
    # A seed from one checkout (CI's clone, a colleague's machine) replays the same faults in another.
    rules = [Fault("crash", probability=0.3)]
    here = lw.SessionKey("mytool:capability", "/home/a/proj", ("Mathlib",), None, "v4", (("repl", "/home/a/repl"),))
    there = lw.SessionKey("mytool:capability", "/ci/clone/proj", ("Mathlib",), None, "v4",
                          (("repl", "/ci/clone/.venv/bin/repl"),))
    drawn = faulted(requests_hook(FaultPlan(rules, seed=9), here), 100)
    assert drawn and faulted(requests_hook(FaultPlan(rules, seed=9), there), 100) == drawn
    other = lw.SessionKey("mytool:capability", "/home/a/proj", ("Std",), None, "v4", (("repl", "/home/a/repl"),))
    assert faulted(requests_hook(FaultPlan(rules, seed=9), other), 100) != drawn, "other imports, other draws"


def test_numbers_are_given_in_admission_order_once_each_under_concurrency() -> None:
    plan = FaultPlan([Fault("crash", every=4)])
    hook = requests_hook(plan, KEY)
    threads = [threading.Thread(target=lambda: [hook("check", None) for _ in range(50)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(f.nth for f in plan.fired()) == list(range(4, 201, 4))


def test_a_session_open_can_fail_and_opens_are_counted_apart_from_requests() -> None:
    plan = FaultPlan([Fault("session_fail", nth=2)])
    key = plan.wrap(KEY)
    first, second = plan.intercept(key, 10), plan.intercept(key, 11)
    assert first is not None and OPEN_OPTION not in first.options
    assert second is not None and json.loads(second.options[OPEN_OPTION])["kind"] == "session_fail"
    assert plan.fired() == [FiredFault("session_fail", None, KEY, 2, 11, 0,
                                       {"message": "injected session open failure"})]


def test_a_plan_claims_the_keys_it_wrapped_and_everywhere_every_key_it_can_wrap() -> None:
    plan, other_plan = FaultPlan(), FaultPlan()
    assert plan.intercept(KEY, 1) is None and plan.intercept(other_plan.wrap(KEY), 1) is None
    assert plan.intercept(plan.wrap(KEY), 1) is not None
    with plan.everywhere():
        assert intercept.intercept(KEY, 1) is not None and ambient_faults() is plan
        assert plan.intercept(lw.SessionKey("x:y", command=("my-worker",)), 1) is None, "not a leanworker host"
        assert plan.intercept(other_plan.wrap(OTHER), 1) is None, "another plan's key stays the other plan's"
    assert ambient_faults() is None and all(i is not plan for i in intercept.installed())
    with pytest.raises(ValueError, match="own worker host"):
        plan.wrap(lw.SessionKey("x:y", command=("my-worker",)))


def test_a_rule_keyed_on_the_wrapped_key_is_keyed_on_the_key_it_wraps() -> None:
    # plan.wrap(KEY) adds options (the plan's token among them): a rule given that key never matched, and its repr
    # carried a token of this process that no replay owns.
    plan = FaultPlan()
    wrapped = plan.wrap(KEY)
    rule = Fault("crash", key=wrapped, nth=1)
    assert rule == Fault("crash", key=KEY, nth=1) and "leanworker." not in repr(rule)
    assert faulted(requests_hook(plan.add(rule), KEY), 3) == [1]
    plan.uninstall()


def test_a_runs_attempts_are_decided_by_the_run_and_the_worker_pid_is_recorded_as_it_is_sent() -> None:
    plan = FaultPlan([Fault("crash", nth=1), Fault("node_lost", nth=2), Fault("node_lost", nth=3)])
    first = plan.attempt(KEY, "index", {"modules": ["A"]}, remote=False)
    assert first.fault is not None and first.fault.kind == "crash" and first.fault.pid is None
    assert unwrap(first.request)[1] == {"modules": ["A"]} and first.key != KEY
    assert plan.attempt(KEY, "index", {}, remote=False).fault is None, "node_lost fires only on Ray"
    assert plan.attempt(KEY, "index", {}, remote=True).fault.kind == "node_lost"
    intercepted = plan.intercept(first.key, 77)
    assert intercepted is not None and intercepted.requests is not None
    assert intercepted.requests("index", first.request) is first.request, "the run decided: sent as it is"
    assert plan.fired()[0].pid == 77
    assert plan.explains(first.fault, lw.WorkerCrashed("x")) and not plan.explains(first.fault, lw.CommandError("c", "m"))
    assert plan.explains(None, lw.CommandError("injected_session_fail", "m"))
    assert not plan.explains(None, lw.WorkerCrashed("x"))


def test_a_runs_draws_depend_on_the_attempt_not_on_the_order_its_runners_admit_attempts() -> None:
    # A run's runners take batches in an order timing decides: the same seed must lose the same batches anyway.
    rules = [Fault("crash", probability=0.3), Fault("session_fail", probability=0.2)]
    batches = [{"modules": [f"M{n}"]} for n in range(60)]

    def decided(order: list[int], tries: int = 2) -> dict[tuple[int, int], str | None]:
        plan, found = FaultPlan(rules, seed=5), {}
        for attempt in range(1, tries + 1):
            for n in order:
                plan.attempt(OTHER, "index", {"modules": ["X"]}, remote=False)  # another batch's attempt between
                done = plan.attempt(KEY, "index", batches[n], remote=False)
                found[n, attempt] = done.fault.kind if done.fault is not None else None
        return found

    forward = decided(list(range(60)))
    assert decided(list(reversed(range(60)))) == forward, "the same attempt, the same fault, in any order"
    assert set(forward.values()) == {None, "crash", "session_fail"}
    assert any(forward[n, 1] != forward[n, 2] for n in range(60)), "a retry is an attempt of its own"


def test_a_session_open_failed_in_a_run_is_the_attempts_own_fresh_worker_and_opens_are_not_drawn() -> None:
    plan = FaultPlan([Fault("session_fail", nth=2)])
    first = plan.attempt(KEY, "index", {"modules": ["A"]}, remote=False)
    second = plan.attempt(KEY, "index", {"modules": ["B"]}, remote=False)
    assert first.fault is None and second.fault is not None and second.fault.kind == "session_fail"
    assert second.request == {"modules": ["B"]}, "the open fails: the request is never sent"
    assert second.key != first.key and json.loads(second.key.options_dict()[OPEN_OPTION])["kind"] == "session_fail"
    assert (second.fault.command, second.fault.nth) == (None, 2)
    for opened in range(3):  # a run key's opens are not counted: nth=2 of the opens never fires
        intercepted = plan.intercept(first.key, 100 + opened)
        assert intercepted is not None and OPEN_OPTION not in intercepted.options
    assert plan.intercept(second.key, 7) is not None and plan.fired()[0].pid == 7, "the worker whose open failed"
    on_ray = FaultPlan([Fault("session_fail")]).attempt(KEY, "index", {}, remote=True)
    assert on_ray.fault is None, "on Ray the opens happen in the agents"


def test_a_plan_is_plain_data_its_json_and_its_repr_replay_it() -> None:
    plan = FaultPlan([Fault("crash", command="check", key=KEY, nth=2, after_rows=3, how="abort"),
                      Fault("memory", key="mytool:capability", every=5, mib=300, hold=0.5),
                      Fault("slow", probability=0.25, seconds=0.1)], seed=7)
    assert FaultPlan.from_json(plan.to_json()) == plan
    assert eval(repr(plan), {"Fault": Fault, "FaultPlan": FaultPlan, "SessionKey": lw.SessionKey}) == plan
    assert FaultPlan.from_repr(repr(plan)) == plan
    assert FaultPlan.from_json(plan.to_json()) != FaultPlan(plan.rules, seed=8)
    replayed = FaultPlan.from_json(plan.to_json())
    assert faulted(requests_hook(replayed, KEY), 40) == faulted(requests_hook(plan, KEY), 40)


def test_a_repr_is_read_never_run(tmp_path: Path) -> None:
    # eval without builtins is no sandbox: this text reaches os.system through object's subclasses.
    marker = tmp_path / "ran"
    escape = ("FaultPlan([Fault('crash')], seed=[c for c in ().__class__.__base__.__subclasses__() "
              "if c.__name__ == '_wrap_close'][0].__init__.__globals__['system']('touch " + str(marker) + "') * 0)")
    for text in (escape, "__import__('os').getpid()", "Fault", "FaultPlan([Fault('crash')], seed=1 + 1)",
                 "FaultPlan(*[[Fault('crash')]])", "FaultPlan([Fault('crash', **{'nth': 1})])", "FaultPlan([",
                 "Fault('crash')", "FaultPlan([Fault('crash', nth=0)])", "FaultPlan([Fault(kind=3)])",
                 "[" * 100_000 + "]" * 100_000):
        with pytest.raises(ValueError):
            FaultPlan.from_repr(text)
    assert not marker.exists(), "the repr ran code"
    key = lw.SessionKey("mytool:capability", "/w", ("A",), None, "v4", (("n", -3), ("f", 0.5), ("b", True)))
    plan = FaultPlan([Fault("crash", key=key, nth=2, how="abort"), Fault("slow", probability=0.25, seconds=-0.0)],
                     seed=-7)
    assert FaultPlan.from_repr(repr(plan)) == plan and FaultPlan.from_repr(f"  {plan!r}\n") == plan


def test_a_plan_pickles_as_its_data_and_the_copy_is_a_plan_of_its_own() -> None:
    plan = FaultPlan([Fault("crash", key=KEY, every=2), Fault("slow", probability=0.5, seconds=0.1)], seed=3)
    wrapped = plan.wrap(KEY)
    faulted(requests_hook(plan, KEY), 4)
    copy = pickle.loads(pickle.dumps(plan))
    assert copy == plan and repr(copy) == repr(plan) and copy.fired() == []
    assert pickle.loads(pickle.dumps(plan.fired())) == plan.fired() != []
    with pytest.raises(ValueError, match="another fault plan"):
        copy.wrap(wrapped)  # the original owns the keys it wrapped; the copy owns none of them
    plan.uninstall()


def test_nonsense_rules_and_plans_are_refused_with_the_field_named() -> None:
    with pytest.raises(TypeError, match="command"):
        Fault("crash", command=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hold"):
        Fault("memory", hold=True)
    for text in ('{"rules": [{"nth": 1}]}', '{"rules": ["crash"]}', '{"rules": [{"kind": "crash", "params": []}]}',
                 '{"rules": [], "seed": "3"}', '{"rules": [], "seed": 1.5}', '{"rules": [{"kind": "crash", '
                 '"command": 3}]}', '[]', '{"rules": {}}'):
        with pytest.raises(ValueError):
            FaultPlan.from_json(text)


def test_a_memory_fault_leaves_the_machine_its_floor() -> None:
    assert may_grow(16, None, None), "unknown memory: grow"
    assert may_grow(16, (4096, 8192), None) and not may_grow(16, (1030, 8192), None), "1 GiB kept by default"
    assert not may_grow(16, (20_000, 400_000), None), "or 5% of a large machine"
    assert may_grow(16, (100, 8192), 50) and not may_grow(16, (60, 8192), 50), "keep_free_mib sets the floor"
    with pytest.raises(ValueError, match="keep_free_mib"):
        Fault("memory", keep_free_mib=-1)


def test_a_chaos_plan_spreads_its_rate_over_every_kind_and_replays() -> None:
    plan = FaultPlan.chaos(0.2, seed=3)
    assert {rule.kind for rule in plan.rules} == set(leanworker.testing.KINDS)
    count = len(faulted(requests_hook(plan, KEY), 2000))
    assert 0.12 * 2000 <= count <= 0.24 * 2000, count  # about 8/9 of the rate: node_lost needs Ray
    assert FaultPlan.chaos(0.2, seed=3) == plan and FaultPlan.from_repr(repr(plan)) == plan
    assert {r.kind for r in FaultPlan.chaos(0.1, kinds=["crash"]).rules} == {"crash"}


def test_the_gate_withdraws_an_admitted_request_whose_frame_could_not_be_built() -> None:
    state = GateState()
    state.open(1, None)
    assert state.admit(3)
    state.withdraw(3)
    assert state.admissible(None) and not state.admit(3) and state.admit(4), "ids still rise"
