"""Plain data: the one definition of what may travel in a frame, shared by the parent and the worker host.

A plain value is ``None``, a bool, an int in [-2**64, 2**64 - 1] (CBOR's native range: no bignum tags), a float,
text (encodable as UTF-8), bytes, a list or tuple (sent as an array, received as a list) of plain values, or a dict
whose keys are text, ints (same range), bytes, bools, ``None`` or floats and whose values are plain. A message nests
at most :data:`MAX_DEPTH` levels of containers, its own map included (so a request or result may nest 63, a row
62). Anything else (sets, ``Decimal``, datetimes, custom objects, bigger ints, deeper nesting) is refused before
encoding, with the path of the offending value, and nothing is sent.
"""

from __future__ import annotations

from typing import Any, Final

from leanworker.errors import UnencodableType, UnencodableValue

MAX_DEPTH: Final = 64
INT_MIN: Final = -(2**64)
INT_MAX: Final = 2**64 - 1

_LEAVES: Final = frozenset({type(None), bool, float, bytes})
_KEY_TYPES: Final = frozenset({str, int, bytes, bool, type(None), float})


def check_plain(value: Any, where: str = "value", max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`UnencodableType` or :class:`UnencodableValue` unless ``value`` is plain data.

    ``where`` names the value in the message (``"request"``, ``"result"``, ...); the error extends it with the path
    to the offending part, e.g. ``request['modules'][3]``.
    """
    _check(value, where, max_depth)


def _check(value: Any, path: str, budget: int) -> None:
    kind = type(value)
    if kind in _LEAVES:
        return
    if kind is str:
        _check_text(value, path)
        return
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise UnencodableValue(f"{path} is an int outside [-2**64, 2**64-1] (CBOR has no plain form for it)",
                                   path=path)
        return
    if kind is list or kind is tuple:
        if budget <= 0:
            raise UnencodableValue(f"{path} nests deeper than {MAX_DEPTH} levels in all", path=path)
        for index, item in enumerate(value):
            item_kind = type(item)
            if item_kind in _LEAVES:
                continue
            _check(item, f"{path}[{index}]", budget - 1)
        return
    if kind is dict:
        if budget <= 0:
            raise UnencodableValue(f"{path} nests deeper than {MAX_DEPTH} levels in all", path=path)
        for key, item in value.items():
            key_kind = type(key)
            if key_kind not in _KEY_TYPES:
                raise UnencodableType(f"{path} has a key of type {key_kind.__name__} ({key!r:.60}); map keys must "
                                      "be text, int, bytes, bool, None or float", path=path)
            if key_kind is str:
                _check_text(key, f"{path} key")
            elif key_kind is int:
                _check(key, f"{path} key", budget)
            if type(item) in _LEAVES:
                continue
            _check(item, f"{path}[{key!r:.40}]", budget - 1)
        return
    raise UnencodableType(f"{path} is of type {kind.__name__}, which is not plain data (None, bool, int, float, "
                          "str, bytes, list, tuple, dict)", path=path)


def _check_text(value: str, path: str) -> None:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UnencodableValue(f"{path} is text that cannot be encoded as UTF-8 (a lone surrogate)",
                                   path=path) from None
