"""The parent-side runtime: child, supervisor, pool and lease actors; policies; tracing."""
