"""Prometheus metrics of the scoring service: requests, errors by kind, latency, clips scored.

Each app has its own registry, so several apps in one process (tests) do not share counters.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["ServiceMetrics", "MetricsMiddleware"]

# Seconds; one clip on a CPU takes tens of milliseconds, a full batch of long clips seconds.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServiceMetrics:
    """The instruments, registered in a private `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("asdlab_requests", "HTTP requests by endpoint, method and status",
                                ("endpoint", "method", "status"), registry=self.registry)
        self.errors = Counter("asdlab_errors", "Refused or failed requests by kind (too_large, not_audio, "
                              "unusable_audio, unknown_machine, bad_request, internal)", ("kind",),
                              registry=self.registry)
        self.latency = Histogram("asdlab_request_duration_seconds", "Request latency by endpoint", ("endpoint",),
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.clips = Counter("asdlab_clips_scored", "Clips scored, by machine and decision",
                             ("machine", "decision"), registry=self.registry)
        self.skipped = Counter("asdlab_clips_skipped", "Uploaded clips that could not be scored", registry=self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware counting every HTTP request and timing it, refusals by other middleware included.

    Args:
        app: the wrapped ASGI app.
        metrics: where to count.
        endpoints: known paths; others are counted as "other" so stray URLs cannot grow the label set.
    """

    def __init__(self, app, *, metrics: ServiceMetrics, endpoints: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoints = endpoints

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = scope["path"] if scope["path"] in self.endpoints else "other"
        status = 500
        start = time.perf_counter()

        async def recording_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
            self.metrics.requests.labels(endpoint, scope["method"], str(status)).inc()
            if status >= 500:
                self.metrics.errors.labels("internal").inc()
