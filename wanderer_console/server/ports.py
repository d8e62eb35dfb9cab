"""What the HTTP surface needs from the engine, and nothing more.

The endpoints read the settings, the metrics and the engine's readiness, and hand accepted
events to the pipeline; they never reach into the engine's parts. The runtime implements
:class:`EngineSurface`; a test can serve the app over any object that does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from wanderer_console.config.model import Settings
from wanderer_console.ingest.items import Item
from wanderer_console.store.base import StoreLocation
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["EngineSurface", "Readiness"]


@dataclass(frozen=True, slots=True)
class Readiness:
    """Why the engine is not ready (empty when it is), and the targets Discord refused."""

    reasons: list[str] = field(default_factory=list)
    down: bool = False
    """True when it cannot do its job (a source, the store); else at most degraded."""
    dead_targets: list[dict[str, str]] = field(default_factory=list)
    """Each dead mark once, ``{"map": ..., "target": ...}``: a target is dead per map, and a
    webhook two maps share may be dead for one of them only."""
    cluster: dict[str, Any] | None = None
    """With several instances on one database: this instance, its maps, the live instances."""

    @property
    def status(self) -> str:
        """``ok``, ``degraded`` (it runs, but something waits on an operator or on Discord) or
        ``down``."""
        if not self.reasons:
            return "ok"
        return "down" if self.down else "degraded"


class EngineSurface(Protocol):
    """The engine as the HTTP surface sees it."""

    @property
    def settings(self) -> Settings:
        """The running configuration."""

    @property
    def metrics(self) -> Metrics:
        """The engine's Prometheus registry and counters."""

    @property
    def started_at(self) -> float:
        """Unix time the engine started."""

    @property
    def database(self) -> StoreLocation:
        """The store's database (the ingest API's tenants live there)."""

    def outside_commits(self) -> int | None:
        """The store's :meth:`~wanderer_console.store.base.Store.outside_commits`: moves when
        another connection commits (the ingest API's tenant keys are cached while it stays)."""

    async def enqueue(self, item: Item) -> None:
        """Hand an accepted event to the pipeline (waits while the queue is full)."""

    def offer(self, items: Sequence[Item]) -> bool:
        """Queue all of ``items`` now if the queue has room for all of them; else none."""

    def works_map(self, tenant: str) -> bool:
        """True when this engine works map ``tenant`` now: always, alone; with several engines
        on one database, while it holds the map's lease."""

    def map_generation(self, tenant: str) -> int:
        """The load of map ``tenant`` to stamp on one of its events arriving now
        (:meth:`~wanderer_console.domain.tracking.TrackingIndex.arrival`): an event queued
        before a later reload of the map is judged against that reload's state."""

    def readiness(self) -> Readiness:
        """Whether the engine can do its job now, and why not."""

    def cache_report(self) -> dict[str, Any]:
        """The name cache's health: ``score`` (0-100), ``recommendations``, ``memory_bytes``."""

    def snapshot(self) -> dict[str, Any]:
        """The engine's state as the console reads it (Wanderer Notifier's ``/api/status``
        is built from it)."""
