"""``--chaos RATE --seed S`` for ``run`` and ``check``: rehearse the whole job under random injected faults
(``leanworker.testing.FaultPlan.chaos``; docs/testing.md). The output stays exactly once; the summary lists the
faults that fired and counts the work lost to them apart from real failures."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from typing import Any

from leanworker.cli._output import UsageError, plural
from leanworker.cli._values import non_negative_int


def rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def add_chaos_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chaos", type=rate, default=None, metavar="RATE",
                        help="inject random faults into about RATE of the requests (0 to 1): crashes, hangs, memory "
                             "growth, malformed output, slow answers, failed session opens, and on Ray lost nodes; "
                             "the summary lists them and counts what they cost apart from real failures "
                             "(docs/testing.md) (default: off)")
    parser.add_argument("--seed", type=non_negative_int, default=None, metavar="S",
                        help="the seed of --chaos: the same seed injects the same faults (default: 0)")


def chaos_plan(args: argparse.Namespace) -> Any:
    """The fault plan of ``--chaos``, or None. Raises :class:`UsageError` for ``--seed`` alone."""
    if args.chaos is None:
        if args.seed is not None:
            raise UsageError("--seed needs --chaos")
        return None
    from leanworker.testing import FaultPlan

    return FaultPlan.chaos(args.chaos, seed=args.seed or 0)


def chaos_json(args: argparse.Namespace, plan: Any, lost: Sequence[str]) -> dict[str, Any]:
    """The ``chaos`` entry of a ``--json`` summary: the plan (its JSON replays it), every fault fired, and what was
    lost to them."""
    import json

    return {"rate": args.chaos, "seed": plan.seed, "plan": json.loads(plan.to_json()),
            "faults": [fault.as_dict() for fault in plan.fired()], "lost": list(lost)}


def chaos_line(args: argparse.Namespace, plan: Any, lost: int, what: str) -> str:
    """One line for a terminal: the faults that fired, by kind, and what they cost."""
    kinds = Counter(fault.kind for fault in plan.fired())
    fired = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "none"
    return (f"chaos (rate {args.chaos:g}, seed {plan.seed}): faults injected: {fired}; {plural(lost, what)} lost to "
            f"them (not counted as real failures; --json lists every fault)")
