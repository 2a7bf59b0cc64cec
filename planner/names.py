"""Lean module names: identifier rules, the ``«»`` escape, splitting and ordering.

A module name is components joined by ``.``. A component is a Lean identifier (first character a letter, ``_`` or a
letter-like symbol; the rest also digits, ``'``, ``!``, ``?`` and subscripts), or any text without ``»`` written
between ``«`` and ``»``. These are the rules of Lean's ``isIdFirst``/``isIdRest``.
"""

from __future__ import annotations

from leanworker.errors import InvalidModuleName

ESCAPE_OPEN = "«"
ESCAPE_CLOSE = "»"


def _is_letter_like(code: int) -> bool:
    return (
        (0x3B1 <= code <= 0x3C9 and code != 0x3BB)  # lower Greek, but lambda
        or (0x391 <= code <= 0x3A9 and code not in (0x3A0, 0x3A3))  # upper Greek, but Pi and Sigma
        or 0x3CA <= code <= 0x3FB  # Coptic
        or 0x1F00 <= code <= 0x1FFE  # polytonic Greek
        or 0x2100 <= code <= 0x214F  # letter-like block
        or 0x1D49C <= code <= 0x1D59F  # script, double-struck, Fraktur latin
    )


def _is_subscript_alnum(code: int) -> bool:
    return 0x2080 <= code <= 0x2089 or 0x2090 <= code <= 0x209C or 0x1D62 <= code <= 0x1D6A


def is_id_first(char: str) -> bool:
    return ("a" <= char <= "z") or ("A" <= char <= "Z") or char == "_" or _is_letter_like(ord(char))


def is_id_rest(char: str) -> bool:
    return is_id_first(char) or ("0" <= char <= "9") or char in "'!?" or _is_subscript_alnum(ord(char))


def is_identifier(component: str) -> bool:
    """True when ``component`` can be written without ``«»``."""
    return bool(component) and is_id_first(component[0]) and all(is_id_rest(c) for c in component[1:])


def escape_component(component: str) -> str:
    """Write one component as Lean would: bare when it is an identifier, else between ``«`` and ``»``."""
    if is_identifier(component):
        return component
    if not component or ESCAPE_CLOSE in component:
        raise InvalidModuleName(f"component {component!r} cannot be written as a Lean name")
    return f"{ESCAPE_OPEN}{component}{ESCAPE_CLOSE}"


def join_components(components: tuple[str, ...] | list[str]) -> str:
    """The module name of raw (unescaped) components, escaping those that need it."""
    if not components:
        raise InvalidModuleName("a module name needs at least one component")
    return ".".join(escape_component(c) for c in components)


def split_module_name(name: str) -> tuple[str, ...]:
    """The raw components of a written module name; raise :class:`InvalidModuleName` if it is not one."""
    if not isinstance(name, str) or not name:
        raise InvalidModuleName(f"{name!r} is not a module name: it is empty")
    components: list[str] = []
    i, n = 0, len(name)
    while True:
        if i < n and name[i] == ESCAPE_OPEN:
            end = name.find(ESCAPE_CLOSE, i + 1)
            if end < 0:
                raise InvalidModuleName(f"{name!r}: '«' at {i} is never closed")
            component = name[i + 1:end]
            if not component:
                raise InvalidModuleName(f"{name!r}: empty «» component at {i}")
            i = end + 1
        else:
            start = i
            while i < n and name[i] != ".":
                i += 1
            component = name[start:i]
            if not is_identifier(component):
                raise InvalidModuleName(f"{name!r}: component {component!r} is not a Lean identifier (escape it "
                                        f"as «{component}»)")
        components.append(component)
        if i == n:
            return tuple(components)
        if name[i] != ".":
            raise InvalidModuleName(f"{name!r}: expected '.' after a component at {i}")
        i += 1
        if i == n:
            raise InvalidModuleName(f"{name!r} ends with '.'")


def validate_module_name(name: str) -> str:
    """Return ``name`` if it is a valid Lean module name, else raise :class:`InvalidModuleName`."""
    split_module_name(name)
    return name


def sort_key(name: str) -> tuple[str, ...]:
    """Order module names component by component (``A.B`` before ``A.B.C`` before ``A.BC``)."""
    return split_module_name(name)
