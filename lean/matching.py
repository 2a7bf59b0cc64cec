"""Matching each of the REPL's answers to its question: a pure policy, from the REPL's source.

The REPL has no request ids and answers strictly in order (docs/lean_repl_protocol.md, sections 2 and 6). Two
facts of its source make answers checkable:

1. **Environments are numbered.** ``State.cmdStates`` is an array; every command or file request that is answered
   (Lean errors included) pushes one snapshot and answers with its index, counting from 0 per process
   (``recordCommandSnapshot``, Main:86-90); so does ``unpickleEnvFrom``. ``pickleTo`` with an ``env`` answers that
   same ``env``. An error object (``{"message": ...}``) allocates nothing. So the ``env`` an answer must carry is
   known before it arrives (:class:`EnvLedger`).
2. **A fence can be asked that only this client can answer.** A ``path`` request for a file that cannot be read is
   answered with an error object carrying Lean's error text, which names the file (``processFile`` catches the read
   error and answers ``e.toString``, Main:344-349; Lean's ``IO.Error`` for a missing file is ``no such file or
   directory (error code: 2)\\n  file: <path>``). It allocates no env. Each request is followed by a fence whose
   path holds a fresh random nonce (under ``/proc/self/``, where no file can be created), so the answers between two
   fences are the answers to exactly one request: no answer that arrives out of turn (a stray process writing to the
   REPL's stdout, a REPL that answers twice or not at all) can be taken for another question's answer, and nobody
   who cannot read our requests can forge a fence.

An answer is accepted only when it is the one answer between its request and that request's fence, and its ``env``
is the expected one. Anything else is a doubt: the driver replaces the REPL and the item in doubt gets no answer.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, TypeGuard

FENCE_PREFIX = "/proc/self/leanworker-fence-"

# Request kinds, in the order the REPL's ``parse`` tries them (Main:393-413): the first match wins.
TACTIC, PICKLE_ENV, UNPICKLE_ENV, PICKLE_PROOF, UNPICKLE_PROOF, COMMAND, FILE, INVALID = (
    "tactic", "pickle_env", "unpickle_env", "pickle_proof_state", "unpickle_proof_state", "command", "file",
    "invalid")


def is_env_number(value: object) -> bool:
    """A Lean ``Nat`` as JSON: a non-negative integer (not a bool, not a float such as 1.0 or 1e30)."""
    return type(value) is int and value >= 0


def _optional_nat(request: dict[str, Any], key: str) -> bool:
    return request.get(key) is None or is_env_number(request[key])


def request_kind(request: dict[str, Any]) -> str:
    """Which of the REPL's request kinds ``request`` parses as (``INVALID``: none; the REPL dies on it)."""
    def text(key: str) -> bool:
        return isinstance(request.get(key), str)

    if is_env_number(request.get("proofState")) and text("tactic"):
        return TACTIC
    if is_env_number(request.get("env")) and text("pickleTo"):
        return PICKLE_ENV
    if text("unpickleEnvFrom"):
        return UNPICKLE_ENV
    if is_env_number(request.get("proofState")) and text("pickleTo"):
        return PICKLE_PROOF
    if text("unpickleProofStateFrom") and _optional_nat(request, "env"):
        return UNPICKLE_PROOF
    if text("cmd") and _optional_nat(request, "env"):
        return COMMAND
    if text("path") and _optional_nat(request, "env"):
        return FILE
    return INVALID


@dataclass(frozen=True)
class Expectation:
    """What the answer to one request must look like: its kind, and the ``env`` it must carry (None: no env)."""

    kind: str
    env: int | None
    allocates: bool


def is_error_object(answer: object) -> TypeGuard[dict[str, str]]:
    """The REPL's ``Error``: exactly ``{"message": <text>}``."""
    return isinstance(answer, dict) and len(answer) == 1 and isinstance(answer.get("message"), str)


class EnvLedger:
    """The ``env`` numbers one REPL process has handed out (``next_env`` is the next one it will)."""

    def __init__(self) -> None:
        self.next_env = 0

    def expect(self, request: dict[str, Any]) -> Expectation:
        kind = request_kind(request)
        if kind in (COMMAND, FILE, UNPICKLE_ENV):
            return Expectation(kind, self.next_env, True)
        if kind == PICKLE_ENV:
            return Expectation(kind, request["env"], False)
        return Expectation(kind, None, False)

    def settle(self, expectation: Expectation, answer: object) -> str | None:
        """Check ``answer`` against ``expectation`` and count the env it allocated; the doubt, or None."""
        if not isinstance(answer, dict):
            return f"the answer is JSON but not an object ({type(answer).__name__})"
        if is_error_object(answer):
            return None  # an error object allocates nothing
        if "message" in answer:
            return "the answer mixes an error message with other fields"
        if expectation.kind == INVALID:
            return "the REPL answered a request it cannot parse (it exits on those)"
        if expectation.env is None:
            if "env" in answer:
                return f"an answer with env {_json(answer['env'])} to a {expectation.kind} request, which has none"
            return None
        env = answer.get("env")
        if not is_env_number(env):
            return (f"the answer's env is {_json(env)}, not an environment number (a non-negative integer)"
                    if "env" in answer else "the answer has no env")
        if env != expectation.env:
            return f"the answer carries env {env}, but this request's answer must carry env {expectation.env}"
        if expectation.allocates:
            self.next_env += 1
        return None


def _json(value: object) -> str:
    try:
        return json.dumps(value)[:40]
    except (TypeError, ValueError):
        return repr(value)[:40]


def new_fence() -> tuple[dict[str, str], str]:
    """A fence request and its nonce."""
    nonce = os.urandom(16).hex()  # what secrets.token_hex does, without loading secrets (hmac, random)
    return {"path": FENCE_PREFIX + nonce}, nonce


def is_fence_answer(answer: object, nonce: str) -> bool:
    """The REPL's answer to the fence with this nonce: an error object naming the fence's file."""
    return is_error_object(answer) and (FENCE_PREFIX + nonce) in answer["message"]


def looks_like_fence_answer(answer: object) -> bool:
    """An answer to some fence (this one or not): never a real answer to an item."""
    return is_error_object(answer) and FENCE_PREFIX in answer["message"]
