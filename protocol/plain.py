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

from leanworker.errors import NotPlainData, UnencodableType, UnencodableValue

MAX_DEPTH: Final = 64
INT_MIN: Final = -(2**64)
INT_MAX: Final = 2**64 - 1

_LEAVES: Final = frozenset({type(None), bool, float, bytes})
_OTHER_KEY_TYPES: Final = frozenset({bytes, bool, type(None), float})


class _Refusal(Exception):
    """Raised deep in the walk; the path is assembled only on the way out (the happy path builds no strings)."""

    def __init__(self, error: type[NotPlainData], message: str) -> None:
        self.error = error
        self.message = message
        self.trail: list[object] = []


def check_plain(value: Any, where: str = "value", max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`UnencodableType` or :class:`UnencodableValue` unless ``value`` is plain data.

    ``where`` names the value (``"request"``, ``"message"``, ...); the error extends it with the path to the
    offending part, e.g. ``request['modules'][3]``, in ``str(error)`` and ``error.path``.
    """
    try:
        _walk(value, max_depth)
    except _Refusal as refusal:
        path = where + "".join(f"[{step!r:.40}]" for step in reversed(refusal.trail))
        raise refusal.error(f"{path} {refusal.message}", path=path) from None


def _walk(value: Any, budget: int) -> None:
    kind = type(value)
    if kind in _LEAVES:
        return
    if kind is str:
        if not value.isascii():
            _check_text(value)
        return
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise _Refusal(UnencodableValue, "is an int outside [-2**64, 2**64-1] (CBOR has no plain form for it)")
        return
    if kind is list or kind is tuple:
        if budget <= 0:
            raise _Refusal(UnencodableValue, f"nests deeper than {MAX_DEPTH} levels in all")
        budget -= 1
        for index, item in enumerate(value):
            item_kind = type(item)
            if item_kind in _LEAVES or (item_kind is str and item.isascii()) or (
                    item_kind is int and INT_MIN <= item <= INT_MAX):
                continue  # the common scalars, checked inline: no call, no string built
            if item_kind is dict and budget > 0 and _flat_plain_dict(item):
                continue  # the common row: a dict of scalars with text keys
            try:
                _walk(item, budget)
            except _Refusal as refusal:
                refusal.trail.append(index)
                raise
        return
    if kind is dict:
        if budget <= 0:
            raise _Refusal(UnencodableValue, f"nests deeper than {MAX_DEPTH} levels in all")
        budget -= 1
        for key, item in value.items():
            key_kind = type(key)
            if key_kind is not str or not key.isascii():
                _check_key(key, key_kind)
            item_kind = type(item)
            if item_kind in _LEAVES or (item_kind is str and item.isascii()) or (
                    item_kind is int and INT_MIN <= item <= INT_MAX):
                continue
            try:
                _walk(item, budget)
            except _Refusal as refusal:
                refusal.trail.append(key)
                raise
        return
    raise _Refusal(UnencodableType, f"is of type {kind.__name__}, which is not plain data (None, bool, int, float, "
                                    "str, bytes, list, tuple, dict)")


def _flat_plain_dict(value: dict[Any, Any]) -> bool:
    """True for a dict of ASCII text keys and plain scalar values (False: let the full walk decide)."""
    for key, item in value.items():
        if type(key) is not str or not key.isascii():
            return False
        kind = type(item)
        if kind in _LEAVES or (kind is str and item.isascii()) or (kind is int and INT_MIN <= item <= INT_MAX):
            continue
        return False
    return True


def _check_key(key: Any, key_kind: type) -> None:
    if key_kind is str:
        _check_text(key)
    elif key_kind is int:
        if not INT_MIN <= key <= INT_MAX:
            raise _Refusal(UnencodableValue, f"has an int key outside [-2**64, 2**64-1] ({key!r:.40})")
    elif key_kind not in _OTHER_KEY_TYPES:
        raise _Refusal(UnencodableType, f"has a key of type {key_kind.__name__} ({key!r:.60}); map keys must be "
                                        "text, int, bytes, bool, None or float")


def _check_text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Refusal(UnencodableValue, "is text that cannot be encoded as UTF-8 (a lone surrogate)") from None


_DECODED_SCALARS: Final = frozenset({type(None), bool, float, bytes, str, int})


def check_decoded(message: dict[str, Any]) -> None:
    """:func:`check_plain` for what cbor2 decoded with every tag refused: there, text is always valid and ints are
    always in range, so only types (``undefined``, simple values, array or map keys) and depth are left to check."""
    try:
        _walk_decoded(message, MAX_DEPTH)
    except _Refusal as refusal:
        path = "message" + "".join(f"[{step!r:.40}]" for step in reversed(refusal.trail))
        raise refusal.error(f"{path} {refusal.message}", path=path) from None


def _walk_decoded(value: Any, budget: int) -> None:
    if budget <= 0:
        raise _Refusal(UnencodableValue, f"nests deeper than {MAX_DEPTH} levels in all")
    budget -= 1
    if type(value) is dict:
        for key, item in value.items():
            if type(key) not in _DECODED_SCALARS:
                raise _Refusal(UnencodableType, f"has a key of type {type(key).__name__}")
            if type(item) not in _DECODED_SCALARS:  # a scalar needs no call (most of a message is scalars)
                _decoded_item(item, key, budget)
    else:
        for index, item in enumerate(value):
            if type(item) not in _DECODED_SCALARS:
                _decoded_item(item, index, budget)


def _decoded_item(item: Any, step: object, budget: int) -> None:
    kind = type(item)
    if kind in _DECODED_SCALARS:
        return
    if kind is not dict and kind is not list:
        raise _Refusal(UnencodableType, f"at [{step!r:.40}] is of type {kind.__name__}, which is not plain data")
    try:
        _walk_decoded(item, budget)
    except _Refusal as refusal:
        refusal.trail.append(step)
        raise
