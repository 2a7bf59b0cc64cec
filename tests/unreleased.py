"""A lease collected without ``release()``: the ``ResourceWarning`` it gives (test_pool.py, test_async_pool.py)."""

from __future__ import annotations

import gc
import warnings


def warned(caught: list[warnings.WarningMessage]) -> bool:
    """Collect garbage, then tell whether ``caught`` (warnings recorded) holds a lease's "without release()"
    ``ResourceWarning``. The lease actor that granted the lease holds it in a frame until its handler returns; on a
    loaded machine that can be after the lease's last call ended. The promise is about collection, whenever it
    comes: wait for this (bounded)."""
    gc.collect()
    return any(issubclass(w.category, ResourceWarning) and "without release()" in str(w.message)
               for w in caught)  # this lease's, not any object's the collections reach
