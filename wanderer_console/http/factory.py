"""Build a service's :class:`HttpClient` with the middleware chain configured for it."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import httpx

from wanderer_console.domain.clock import Clock, SystemClock
from wanderer_console.http.client import HttpClient
from wanderer_console.http.middleware import BreakerEvent, build_chain
from wanderer_console.http.settings import HttpServiceSettings, settings_for
from wanderer_console.http.telemetry import http_metrics
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["build_client"]


def build_client(
    service: str,
    settings: HttpServiceSettings | None = None,
    *,
    metrics: Metrics,
    headers: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    base_url: str = "",
    on_breaker_transition: Callable[[BreakerEvent], None] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    rng: random.Random | None = None,
) -> HttpClient:
    """An :class:`HttpClient` for ``service`` whose every call passes the middleware chain.

    ``settings`` defaults to the service's entry in ``DEFAULT_SERVICE_SETTINGS``. ``transport``
    replaces the network transport at the bottom of the chain (tests inject faults with it).
    """
    resolved = settings or settings_for(service)
    chain = build_chain(
        service,
        resolved,
        metrics=http_metrics(metrics),
        clock=clock or SystemClock(),
        inner=transport,
        on_transition=on_breaker_transition,
        rng=rng,
    )
    return HttpClient(
        service,
        base_url=base_url,
        timeout=resolved.timeout_seconds,
        headers=headers,
        metrics=metrics,
        chain=chain,
    )
