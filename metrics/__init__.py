"""Prometheus metrics for a pool (extra ``leanworker[metrics]``): ``PoolCollector(pool)``; docs/metrics.md lists every
metric and what it means."""

from leanworker.metrics.collector import PoolCollector

__all__ = ["PoolCollector"]
