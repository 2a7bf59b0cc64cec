"""``FrozenRecord``: what ``@dataclass(frozen=True)`` gives a record (equality, hash, repr, no assignment), written out.

The worker host's records (``SessionSpec``, ``CommandInfo``) are made with it instead of ``dataclasses``, which loads
``inspect`` and ``ast`` with it: about a fifth of a worker process's start-up, for two small classes.
"""

from __future__ import annotations

from typing import Any, Final, Self

FRESH_DICT: Final[Any] = object()
"""The default of a dict field: the record gets a new empty dict (a dataclass's ``field(default_factory=dict)``)."""


class FrozenRecord:
    """A base for immutable records whose fields are named, in order, by ``__match_args__``; ``__init__`` calls
    :meth:`_fill`. Compared, hashed and shown by those fields, as a frozen dataclass is; copied with changes by
    ``copy.replace``. Not a dataclass: ``dataclasses.replace``, ``fields`` and ``asdict`` do not apply."""

    __match_args__: tuple[str, ...] = ()

    def _fill(self, *values: object) -> None:
        for name, value in zip(self.__match_args__, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, FrozenRecord)
        return _values(self) == _values(other)

    def __hash__(self) -> int:
        return hash(_values(self))

    def __replace__(self, **changes: Any) -> Self:
        """A copy with ``changes`` made to some fields: what ``copy.replace`` calls (Python 3.13), as on a dataclass."""
        build: Any = type(self)  # a subclass's __init__ takes its fields by name
        made: Self = build(**{name: getattr(self, name) for name in self.__match_args__} | changes)
        return made

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__qualname__}({fields})"


def _values(record: FrozenRecord) -> tuple[object, ...]:
    return tuple(getattr(record, name) for name in record.__match_args__)
