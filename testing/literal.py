"""Reading a plan's ``repr`` back without running it: Python literals and calls of a few named constructors.

``eval`` with no builtins is not a sandbox (``().__class__.__base__.__subclasses__()`` reaches every class of the
process, and from there ``os.system``), and a plan's repr is text a user copies out of a CI log. So the text is
parsed, and only literals (strings, numbers, booleans, None, tuples, lists, dicts, sets) and calls of the given
constructors with such arguments are built; anything else (a name, an attribute, a subscript, an operator, a
``*``/``**`` argument) is refused with :class:`ValueError`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

MAX_TEXT = 1 << 20  # characters: a plan's repr is small; a megabyte of text is not one


def read_literal(text: str, calls: Mapping[str, Callable[..., Any]]) -> Any:
    """The value ``text`` writes, built from literals and calls of ``calls`` (by name). Raises ValueError for
    anything else, or for text that a constructor refuses."""
    if not isinstance(text, str):
        raise TypeError(f"a repr is text, got {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise ValueError(f"a repr of {len(text)} characters is not a plan's")
    try:
        tree = ast.parse(text.strip(), mode="eval")
        return _build(tree.body, calls)
    except (SyntaxError, RecursionError, MemoryError) as exc:
        raise ValueError(f"not a plan's repr: {type(exc).__name__}: {exc}") from None
    except TypeError as exc:  # a constructor called with arguments it does not take
        raise ValueError(f"not a plan's repr: {exc}") from None


def _build(node: ast.expr, calls: Mapping[str, Callable[..., Any]]) -> Any:
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in calls:
            raise ValueError(f"not a plan's repr: only {', '.join(sorted(calls))} may be called, not "
                             f"{ast.unparse(node.func)[:80]}")
        if any(isinstance(arg, ast.Starred) for arg in node.args) or any(k.arg is None for k in node.keywords):
            raise ValueError("not a plan's repr: no * or ** arguments")
        args = [_build(arg, calls) for arg in node.args]
        kwargs = {keyword.arg: _build(keyword.value, calls) for keyword in node.keywords if keyword.arg}
        return calls[node.func.id](*args, **kwargs)
    if isinstance(node, ast.Tuple):
        return tuple(_build(element, calls) for element in node.elts)
    if isinstance(node, ast.List):
        return [_build(element, calls) for element in node.elts]
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise ValueError("not a plan's repr: no ** in a dict")
        return {_build(key, calls): _build(value, calls) for key, value in zip(node.keys, node.values)
                if key is not None}
    try:
        return ast.literal_eval(node)  # constants, negative numbers, sets of constants
    except ValueError:
        raise ValueError(f"not a plan's repr: {ast.unparse(node)[:80]!r} is not a literal") from None
