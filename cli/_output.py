"""What the command line prints: exit statuses, one-line errors, JSON, tables that fit the terminal, plain words.

Human output never shows ``None``, a Python repr or a traceback; ``--json`` keeps every figure in full.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

# The exit statuses, the same for every command (README, Exit statuses).
EXIT_OK = 0  # everything asked was done
EXIT_FAILED = 1  # some work could not be done
EXIT_USAGE = 2  # bad usage, nothing to do, or a set-up that cannot work, found before any work
EXIT_INTERRUPTED = 130  # Ctrl-C

ELLIPSIS = "…"


class UsageError(Exception):
    """Bad usage or a set-up that cannot work, found before any work: one line on stderr, exit status 2."""


class StdoutFailed(OSError):
    """Stdout cannot take the output (a full disk, a device error): one line on stderr, exit status 1."""


def emit_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout (the stable machine-readable output of every command); nothing
    where the command has no stdout (started with it closed), as ``print`` writes nothing there."""
    import json

    if sys.stdout is None:
        return
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def terminal_width() -> int:
    """The width to fit: ``$COLUMNS``, else the terminal's, else 80."""
    return max(40, shutil.get_terminal_size((80, 24)).columns)


@contextmanager
def spinner(args: argparse.Namespace, text: str) -> Iterator[None]:
    """A spinner on stderr while ``text`` happens, on a terminal only (never with --json)."""
    if args.json or not sys.stderr.isatty():
        yield
        return
    try:
        from rich.console import Console
    except ImportError:
        yield
        return
    with Console(stderr=True).status(text):
        yield


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 batch``, ``2 batches``, ``0 modules``."""
    if count == 1:
        return f"1 {word}"
    return f"{count} {many or (word + 'es' if word.endswith(('s', 'x', 'ch', 'sh')) else word + 's')}"


def human(value: Any) -> str:
    """A figure in plain words: no ``None``, no reprs (dicts as ``key value, ...``, lists comma-separated)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{key} {human(item)}" for key, item in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(human(item) for item in value) or "-"
    return str(value)


def elide(text: str, width: int) -> str:
    """``text`` cut in the middle to ``width`` characters (an ellipsis marks the cut)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    head = (width - 1) - (width - 1) // 2
    tail = (width - 1) // 2
    return text[:head] + ELLIPSIS + (text[len(text) - tail:] if tail else "")


def fit_widths(natural: Sequence[int], minimum: Sequence[int], budget: int) -> list[int]:
    """Column widths that sum to at most ``budget``: the widest columns give way first, none below its minimum."""
    widths = list(natural)
    while sum(widths) > budget:
        shrinkable = [i for i, w in enumerate(widths) if w > minimum[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        others = [widths[i] for i in shrinkable if i != widest]
        target = max(max(others, default=0), minimum[widest], widths[widest] - (sum(widths) - budget))
        widths[widest] = target if target < widths[widest] else widths[widest] - 1
    return widths


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None) -> str:
    """A plain-text table at most ``width`` columns wide (the terminal's by default): the widest cells are cut in
    the middle with an ellipsis when it would not fit, and a last line says so (``--json`` has every cell)."""
    limit = terminal_width() if width is None else width
    gap = 2
    natural = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    minimum = [min(n, max(len(h), 8)) for n, h in zip(natural, headers)]
    widths = fit_widths(natural, minimum, limit - gap * (len(headers) - 1))
    cut = widths != natural

    def line(cells: Sequence[str]) -> str:
        return (" " * gap).join(elide(c, w).ljust(w) for c, w in zip(cells, widths)).rstrip()

    lines = [line(headers), (" " * gap).join("-" * w for w in widths)]
    lines += [line(row) for row in rows]
    if cut:
        import textwrap

        lines += textwrap.wrap(f"({ELLIPSIS} marks text cut to fit {limit} columns; --json has it all)", limit)
    return "\n".join(lines)


def wrap_figures(figures: Sequence[str], width: int) -> list[str]:
    """``figures`` joined with "; " and wrapped at ``width``, breaking between figures (or after a comma inside
    one), never inside a word unless it is longer than a line."""
    import textwrap

    # textwrap does not break at U+00A0: a figure breaks only after its commas, and only when it must
    glued = "; ".join(figure.replace(" ", "\xa0").replace(",\xa0", ", ") for figure in figures)
    lines = textwrap.wrap(glued, max(20, width), break_on_hyphens=False)
    return [line.replace("\xa0", " ").strip() for line in lines] or [""]
