"""OpenTelemetry spans for leanworker (extra ``leanworker[otel]``): ``OpenTelemetryTracer``, accepted as
``PoolConfig(trace=...)`` alone or beside other tracers (docs/tracing.md, OpenTelemetry)."""

from leanworker.telemetry.otel import OpenTelemetryTracer

__all__ = ["OpenTelemetryTracer"]
