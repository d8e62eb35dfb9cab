"""Prometheus metrics of the HTTP layer, registered into the runtime's :class:`Metrics` registry.

The metric objects are created once per registry (several clients share one runtime registry).
"""

from __future__ import annotations

import weakref

from prometheus_client import CollectorRegistry, Counter, Histogram

from wanderer_console.telemetry.metrics import Metrics

__all__ = ["HttpMetrics", "http_metrics"]

_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, HttpMetrics] = (
    weakref.WeakKeyDictionary()
)


class HttpMetrics:
    """Request counts, durations, bytes, retries and breaker transitions by service."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.requests = Counter(
            "wc_http_requests",
            "Outbound HTTP requests by final status (or transport error kind)",
            ["service", "method", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "wc_http_request_seconds",
            "Time until response headers, retries and waits included",
            ["service"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.bytes_in = Counter(
            "wc_http_bytes_in", "Response body bytes read", ["service"], registry=r
        )
        self.bytes_out = Counter(
            "wc_http_bytes_out", "Request body bytes sent", ["service"], registry=r
        )
        self.retries = Counter(
            "wc_http_retries", "Retried attempts by reason", ["service", "reason"], registry=r
        )
        self.breaker_transitions = Counter(
            "wc_http_breaker_transitions",
            "Circuit breaker state changes",
            ["service", "to"],
            registry=r,
        )
        self.rate_limit_pauses = Counter(
            "wc_http_rate_limit_pauses",
            "Pauses imposed by response headers (Discord buckets, ESI error limit)",
            ["service", "reason"],
            registry=r,
        )


def http_metrics(metrics: Metrics) -> HttpMetrics:
    """The HTTP metrics of ``metrics``'s registry, created on first use."""
    found = _BY_REGISTRY.get(metrics.registry)
    if found is None:
        found = _BY_REGISTRY[metrics.registry] = HttpMetrics(metrics.registry)
    return found
