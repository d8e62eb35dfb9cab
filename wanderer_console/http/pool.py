"""The engine's HTTP clients, one per service, built on first use and closed together."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from wanderer_console.http.client import HttpClient
from wanderer_console.http.factory import build_client
from wanderer_console.http.settings import resolve_settings
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["ClientPool"]


class ClientPool:
    """Shared clients by service name (``map``, ``esi``, ``discord``, ``killstream``, ...)."""

    def __init__(
        self,
        overrides: Callable[[str], Mapping[str, float | int] | None],
        user_agent: Callable[[], str],
        metrics: Metrics,
    ) -> None:
        self._overrides = overrides
        self._user_agent = user_agent
        self._metrics = metrics
        self._clients: dict[str, HttpClient] = {}

    def get(self, service: str, *, timeout: float | None = None) -> HttpClient:
        """The service's client with its retry, rate-limit and breaker chain (``[http.<s>]``)."""
        client = self._clients.get(service)
        if client is None:
            overrides = self._overrides(service)
            http_settings = resolve_settings(
                service, None if overrides is None else dict(overrides)
            )
            if timeout is not None:
                http_settings = http_settings.model_copy(update={"timeout_seconds": timeout})
            client = self._clients[service] = build_client(
                service,
                http_settings,
                metrics=self._metrics,
                headers={"user-agent": self._user_agent()},
            )
        return client

    def plain(self, service: str, name: str, *, user_agent: str) -> HttpClient:
        """A client without the middleware chain, for a caller that owns every wait itself."""
        client = self._clients[service] = HttpClient(
            name, headers={"user-agent": user_agent}, metrics=self._metrics
        )
        return client

    def breakers(self) -> dict[str, Any]:
        """Every circuit breaker's state by ``service:host``."""
        return {
            f"{name}:{host}": state
            for name, client in self._clients.items()
            for host, state in client.breakers_snapshot().items()
        }

    async def aclose(self) -> None:
        """Close every client."""
        for client in self._clients.values():
            await client.aclose()
