"""The results cache: SQLite in WAL mode, only Lean verdicts kept, bounded in bytes, and still there after a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("starlette")

from leanworker.serve.cache import ResultCache, cache_key  # noqa: E402

ROW = {"status": "sorry", "messages": [], "sorries": [{"pos": {"line": 1, "column": 3}}], "elapsed_s": 0.01}


def test_a_verdict_is_kept_and_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "results.sqlite3"
    cache = ResultCache(path)
    key = cache_key("id", ("Mathlib",), "theorem t := sorry")
    assert cache.get(key) is None and cache.misses == 1
    assert cache.put(key, ROW)
    cache.close()
    reopened = ResultCache(path)
    try:
        assert reopened.get(key) == ROW and reopened.hits == 1
        assert reopened.stored_bytes > 0
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    finally:
        reopened.close()


def test_timeouts_crashes_and_unchecked_items_are_never_kept(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "c.sqlite3")
    try:
        for status in ("timeout", "crashed", "unchecked"):
            assert not cache.put(cache_key("id", (), status), {"status": status, "error": "x"})
        assert not cache.put(cache_key("id", (), "e"), {"status": "error", "error": "Unknown environment."})
        cache.flush()
        assert all(cache.get(cache_key("id", (), s)) is None for s in ("timeout", "crashed", "unchecked", "e"))
    finally:
        cache.close()


def test_the_cache_stays_within_its_byte_bound_evicting_the_least_recently_used(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "c.sqlite3", max_bytes=20_000)
    try:
        big = {**ROW, "messages": [{"data": "x" * 900}]}
        keys = [cache_key("id", (), f"body {i}") for i in range(10)]
        for key in keys[:10]:
            cache.put(key, big)
        cache.flush()
        assert cache.get(keys[0]) is not None  # recently used: kept past the next evictions
        for i in range(10, 22):  # about 22 KB in all: a few of the oldest must go
            cache.put(cache_key("id", (), f"body {i}"), big)
        cache.flush()
        assert cache.stored_bytes <= 20_000 and cache.evicted > 0
        assert cache.get(keys[0]) is not None
        assert cache.get(keys[1]) is None
    finally:
        cache.close()
