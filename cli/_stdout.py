"""Stdout while a command runs, with its own failures told apart from the command's.

A write or flush that stdout cannot take (a full disk, a device error) raises :class:`StdoutFailed`, so that the
command says so in one line (exit status 1) instead of reporting an internal error. A reader that stopped reading
still raises ``BrokenPipeError``, which is not a failure of ours (cli/_main.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from leanworker.cli._output import StdoutFailed


class CheckedStdout:
    """Stands in for ``sys.stdout``: forwards everything to it; a failed write or flush raises ``StdoutFailed``."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        try:
            return self.inner.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutFailed(exc.errno, exc.strerror) from exc

    def flush(self) -> None:
        try:
            self.inner.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutFailed(exc.errno, exc.strerror) from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@contextmanager
def checked_stdout() -> Iterator[None]:
    """``sys.stdout`` is a :class:`CheckedStdout` inside the block (unless there is none: a command started with its
    standard output closed, where Python's ``print`` writes nothing, as it still does)."""
    inner = sys.stdout
    if inner is None:
        yield
        return
    sys.stdout = CheckedStdout(inner)
    try:
        yield
    finally:
        sys.stdout = inner


def discard_stdout() -> None:
    """Send the rest of stdout, what it still holds included, to the null device: nothing fails again at exit, when
    Python flushes it."""
    stream = sys.stdout.inner if isinstance(sys.stdout, CheckedStdout) else sys.stdout
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, stream.fileno())
    finally:
        os.close(null)
