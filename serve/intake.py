"""A check request's way in, before any of its items runs: its key, its body, its admission.

- The key (serve/keys.py): none needed when no key is configured, else 401 without a valid one.
- The body: at most ``--max-body-mib`` (413), whole within ``--client-timeout`` seconds of its head (408: a client
  that trickles its body, slow-loris, holds nothing longer), and the bodies being read at once hold at most the
  queue's byte bound between them (429), so the memory held for requests is bounded in bytes however many clients
  send at once. The bytes are given back once a body is read: parsing and admission follow without an ``await`` in
  between, and admission counts the code it admits.
- Admission (serve/admission.py): the request's items come in whole, or it is refused whole (429 or 413); a
  request of more items than admission could ever hold is refused (413) as soon as they are counted, before they
  are read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from starlette.requests import ClientDisconnect, Request

from leanworker.serve.admission import ANONYMOUS, Refusal, Ticket, item_cost
from leanworker.serve.keys import presented_key
from leanworker.serve.refusals import HTTPRefusal
from leanworker.serve.state import ServiceState


def authorize(state: ServiceState, request: Request) -> str:
    """The id of the key the request presents (``ANONYMOUS`` when no key is configured); 401 without a valid one."""
    if not state.keys:
        return ANONYMOUS
    presented = presented_key(request.headers)
    if presented is None:
        raise HTTPRefusal(401, "Missing API key", {"WWW-Authenticate": "Bearer"})
    key_id = state.keys.identify(presented)
    if key_id is None:
        raise HTTPRefusal(401, "Invalid API key", {"WWW-Authenticate": "Bearer"})
    return key_id


async def read_body(state: ServiceState, request: Request) -> bytes:
    """The request's body, within its bounds (see the module docstring)."""
    limit = state.config.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPRefusal(413, f"the request body is {declared} bytes, over the limit of {limit} bytes",
                          {"Connection": "close"})
    chunks = []
    size = 0
    try:
        async with asyncio.timeout(state.config.client_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                state.reading += len(chunk)
                if size > limit:
                    raise HTTPRefusal(413, f"the request body is over the limit of {limit} bytes",
                                      {"Connection": "close"})
                if state.reading > state.admission.max_bytes:
                    raise HTTPRefusal(429, "too many request bytes are arriving at once",
                                      {"Retry-After": "1", "Connection": "close"})
                chunks.append(chunk)
    except TimeoutError:
        raise HTTPRefusal(408, f"the request body did not arrive within {state.config.client_timeout:g} s "
                               f"({size} bytes came)", {"Connection": "close"}) from None
    except ClientDisconnect:
        raise HTTPRefusal(400, "the client disconnected while sending the body") from None
    finally:
        state.reading -= size
    return b"".join(chunks)


def count_items(state: ServiceState, count: int) -> None:
    """413 for a request of ``count`` items that admission could never hold, before its items are read (reading a
    million of them would take seconds of the event loop and gigabytes only to refuse them)."""
    too_large = state.admission.never_fits(count, 0)
    if too_large is not None:
        state.admission.refused += 1
        raise HTTPRefusal(413, too_large)


def item_count(payload: Any, field: str) -> int:
    """How many items a Kimina body's list ``field`` holds (0 when it is no list: validation says what is wrong)."""
    items = payload.get(field) if isinstance(payload, dict) else None
    return len(items) if isinstance(items, list) else 0


def admit(state: ServiceState, key_id: str, codes: Sequence[str]) -> Ticket:
    """The admission ticket of a request of ``codes`` (give it back with ``state.admission.release``)."""
    size = sum(item_cost(code) for code in codes)
    decision = state.admission.admit(key_id, len(codes), size)
    if isinstance(decision, Refusal):
        headers = {"Retry-After": str(decision.retry_after)} if decision.retry_after is not None else {}
        raise HTTPRefusal(decision.status, decision.detail, headers)
    return decision
