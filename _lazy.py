"""A package's public names, each imported from its module on first use (PEP 562), so that importing the package
costs nothing more: a worker process imports ``leanworker`` (and ``leanworker.testing``) first and stays cheap to
start. Each package keeps its table of names beside a ``TYPE_CHECKING`` twin of plain imports for type checkers."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str],
                 namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` whose ``exports`` map each public name to the module that
    defines it; a name, once loaded, is kept in ``namespace`` (the package's ``globals()``)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
