"""Restart intensity per session key, across all of its workers, and the cool-downs it leads to: a pure policy the
pool actor consults (docs/semantics.md, Restart intensity per key)."""

from __future__ import annotations

from leanworker.actors.core.config import RestartPolicy, SessionKey
from leanworker.actors.slot import TRIED_AGAIN, RestartIntensity
from leanworker.errors import LeanWorkerError, RestartLimitExceeded


class KeyCooldowns:
    """Per key: unplanned restarts in a sliding window, and until when the key is refused."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.until: dict[SessionKey, tuple[float, str]] = {}  # until when, and why (without a time of its own)
        self._restarts: dict[SessionKey, RestartIntensity] = {}

    def __bool__(self) -> bool:
        return bool(self.until)

    def refusal(self, key: SessionKey, now: float) -> RestartLimitExceeded | None:
        """The error that refuses ``key`` now, or None (an expired cool-down is forgotten here)."""
        cooldown = self.until.get(key)
        if cooldown is None:
            return None
        until, reason = cooldown
        remaining = until - now
        if remaining > 0:
            return RestartLimitExceeded(f"{reason} (cool-down: try again in {remaining:.1f} s)", retry_after=remaining)
        del self.until[key]
        return None

    def restarted(self, key: SessionKey, now: float) -> RestartLimitExceeded | None:
        """Count an unplanned restart of a worker of ``key``; past the limit, the error its cool-down carries."""
        policy = self.policy
        intensity = self._restarts.get(key)
        if intensity is None:
            intensity = self._restarts[key] = RestartIntensity(policy.max_restarts, policy.restart_window)
        retry = intensity.record(now)
        if retry is None:
            return None
        error = RestartLimitExceeded(f"workers of {key.capability} restarted {intensity.count} times in "
                                     f"{policy.restart_window:g} s (limit {policy.max_restarts})", retry_after=retry)
        intensity.clear()
        return error

    def cool_down(self, key: SessionKey, seconds: float, error: LeanWorkerError, now: float) -> str:
        """Refuse ``key`` for ``seconds``, for the reason ``error`` gives; that reason, without the seconds left an
        exhausted slot's error ends with (true only as it was raised: each refusal says its own)."""
        reason = str(error).partition(TRIED_AGAIN)[0]
        self.until[key] = (now + seconds, reason)
        return reason

    def remaining(self, now: float) -> dict[SessionKey, float]:
        """Seconds left of each cool-down still running."""
        return {key: until - now for key, (until, _) in self.until.items() if until > now}
