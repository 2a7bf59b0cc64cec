"""Typed option values for the command line: each bad value is refused alone, by name, in one line (exit 2)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TypeVar

N = TypeVar("N", int, float)

FIXTURE_CAPABILITY = "leanworker.fixtures.mathlib_scale:capability"  # the default --capability of plan and doctor


def positive_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def _number(text: str, kind: Callable[[str], N], what: str) -> N:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None


def capability(text: str) -> str:
    module, sep, attribute = text.partition(":")
    if not sep or not module or not attribute:
        raise argparse.ArgumentTypeError(f"must be module:attribute (for example my_tool:capability), got {text!r}")
    return text


def existing_file(text: str) -> str:
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"is a directory, not a file: {text}")
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    if not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"not readable (permission denied): {text}")
    return text


def module_name(text: str) -> str:
    """A Lean module name (``Mathlib.Data.Nat``), as the planner will need it."""
    from leanworker.errors import InvalidModuleName
    from leanworker.planner.names import validate_module_name

    try:
        validate_module_name(text)
    except InvalidModuleName as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
