"""A hypothesis state machine drives random acquire/release/crash/timeout sequences against a simple model:

- capacity: a lease is granted at once while fewer than ``max_workers`` leases are held, and refused with
  ``QueueTimeout`` when all are held (stale leases still hold their capacity until released);
- validity: a lease is valid until released or until its worker crashes or times out; then every use raises
  ``StaleLease`` (or, for the failing call itself, the typed error of the failure).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import leanworker as lw
from conftest import FAST, FAULTS, THROUGHPUT, wait_for

MAX_WORKERS = 2
KEYS = [lw.SessionKey(FAULTS), lw.SessionKey(FAULTS, imports=("Other",)), lw.SessionKey(THROUGHPUT)]


class PoolModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pool = lw.WorkerPool(lw.PoolConfig(max_workers=MAX_WORKERS, queue_wait_timeout=30.0, worker=FAST))
        self.held: list[lw.Lease] = []
        self.stale: set[int] = set()  # lease ids whose worker generation ended
        self.released: list[lw.Lease] = []

    @rule(key=st.sampled_from(KEYS))
    def acquire(self, key: lw.SessionKey) -> None:
        if len(self.held) < MAX_WORKERS:
            lease = self.pool.lease(key, timeout=30)
            assert lease.valid and lease.key == key
            self.held.append(lease)
        else:
            with pytest.raises(lw.QueueTimeout):
                self.pool.lease(key, timeout=0.05)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        lease = data.draw(st.sampled_from(self.held))
        lease.release()
        self.held.remove(lease)
        self.released.append(lease)

    @precondition(lambda self: any(l.key.capability == FAULTS for l in self.held))
    @rule(data=st.data(), how=st.sampled_from(["crash", "timeout"]))
    def fail_the_worker(self, data: st.DataObject, how: str) -> None:
        lease = data.draw(st.sampled_from([l for l in self.held if l.key.capability == FAULTS]))
        if lease.lease_id in self.stale:
            with pytest.raises(lw.StaleLease):
                lease.call("echo", 1)
            return
        if how == "crash":
            with pytest.raises(lw.WorkerCrashed):
                lease.call("crash", {"how": "exit"})
        else:
            with pytest.raises(lw.RequestTimeout):
                lease.call("hang", timeout=0.2)
        assert wait_for(lambda: not lease.valid, timeout=10)
        self.stale.add(lease.lease_id)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def use(self, data: st.DataObject) -> None:
        lease = data.draw(st.sampled_from(self.held))
        if lease.lease_id in self.stale:
            with pytest.raises(lw.StaleLease):
                lease.call("echo", 1)
        else:
            assert lease.call("echo", "x") == "x"

    @precondition(lambda self: self.released)
    @rule(data=st.data())
    def use_after_release(self, data: st.DataObject) -> None:
        lease = data.draw(st.sampled_from(self.released))
        assert not lease.valid
        with pytest.raises(lw.StaleLease, match="released"):
            lease.call("echo", 1)
        lease.release()  # idempotent

    @invariant()
    def capacity_matches_the_model(self) -> None:
        snapshot = self.pool.snapshot()
        assert snapshot.leases == snapshot.busy == len(self.held)
        assert snapshot.workers == snapshot.idle + snapshot.busy
        assert snapshot.workers + snapshot.starting + snapshot.stopping <= MAX_WORKERS

    def teardown(self) -> None:
        for lease in self.held:
            lease.release()
        self.pool.shutdown()


# Admission itself is checked rule by rule without processes (test_policy_admission.py); this model checks the
# promises to lease holders over real workers, crashes and timeouts.
TestPoolModel = PoolModel.TestCase
TestPoolModel.settings = settings(max_examples=10, stateful_step_count=12, deadline=None,
                                  suppress_health_check=[HealthCheck.too_slow])
