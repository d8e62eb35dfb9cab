"""The kill feeds: killstream sockets, REST fallback and gap backfill, and zKillboard R2Z2.

A killstream socket is opened per mode as soon as the tracking index has something for it to
follow (``systems``, ``characters``); the systems socket brings the REST poller with it, which
covers the socket's outages and backfills every gap after a join. R2Z2 runs when enabled. Every
part is a supervised task; each reports its own connection health.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from wanderer_console.config.model import Settings
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.fallback import BackfillPolicy, FallbackPoller
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.ingest.items import Item
from wanderer_console.ingest.killstream import KillstreamSource
from wanderer_console.ingest.r2z2 import R2z2Source, R2z2Timing
from wanderer_console.ingest.recent import RecentIds
from wanderer_console.store.base import Store
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["KillSources"]

log = logging.getLogger("wanderer_console.runtime")

Spawn = Callable[[str, Callable[[], Awaitable[None]]], None]
Mode = Literal["systems", "characters"]


class KillSources:
    """Starts the kill feeds the settings and the tracking index call for."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        index: TrackingIndex,
        store: Store,
        sink: Callable[[Item], Awaitable[None]],
        metrics: Metrics,
        *,
        client: Callable[[str], HttpClient],
        spawn: Spawn,
        resume_from: float | None,
        mark_seen: Callable[[float], None],
    ) -> None:
        self._settings = settings
        self._index = index
        self._store = store
        self._sink = sink
        self._metrics = metrics
        self._client = client
        self._spawn = spawn
        self.resume_from = resume_from
        """The previous run's killstream watermark (the first gap backfill starts there)."""
        self._mark_seen = mark_seen
        self.started = False
        """Set by the runtime once its tasks run: sockets open only from then on."""
        self.recent = RecentIds()
        """Killmail ids the sockets saw lately: repeats are dropped before parsing."""
        self.sockets: dict[str, KillstreamSource] = {}
        self.fallback: FallbackPoller | None = None
        """REST polling for the tracked systems while the killstream socket is down."""
        self.r2z2: R2z2Source | None = None
        """The zKillboard R2Z2 poller, while ``[r2z2] enabled``."""
        self.r2z2_timing = R2z2Timing()
        """The R2Z2 poller's waits; tests shrink them before the start."""

    def tracking_changed(self) -> None:
        """The index changed: resubscribe the open sockets and open the ones now needed."""
        for source in self.sockets.values():
            source.refresh()
        self.ensure()

    def ensure(self) -> None:
        """Open the sockets (and the fallback poller) the index calls for, once each."""
        ks = self._settings().killstream
        if not ks.enabled or not self.started:
            return
        wanted: dict[Mode, bool] = {
            "systems": bool(self._index.all_system_ids()),
            "characters": bool(self._index.all_character_ids()),
        }
        for mode, needed in wanted.items():
            if needed and mode not in self.sockets:
                source = KillstreamSource(
                    mode,
                    ks.websocket_url,
                    self._index.all_system_ids
                    if mode == "systems"
                    else self._index.all_character_ids,
                    self._sink,
                    self._metrics,
                    client_identifier=ks.client_identifier,
                    heartbeat_seconds=ks.heartbeat_seconds,
                    recent=self.recent,
                    max_frame_bytes=ks.max_frame_bytes,
                )
                self.sockets[mode] = source
                self._spawn(f"killstream:{mode}", source.run)
        if "systems" in self.sockets and self.fallback is None:
            self._start_fallback()

    def _start_fallback(self) -> None:
        settings = self._settings()
        ks = settings.killstream
        self.fallback = FallbackPoller(
            self._client("killstream"),
            ks.rest_url,
            self._index.all_system_ids,
            self._socket_up,
            self._sink,
            self._metrics,
            after=ks.fallback_after_seconds,
            interval=ks.fallback_interval_seconds,
            # Every new join may follow a gap: backfill it, from the previous run's watermark at
            # the first join (restarts lose nothing).
            joins=self._joins,
            resume_from=self.resume_from,
            mark_seen=self._mark_seen,
            policy=BackfillPolicy(
                overlap=ks.backfill_overlap_seconds,
                max_age=settings.console.max_killmail_age_seconds,
                limit=ks.backfill_limit_per_system,
                timeout=ks.backfill_timeout_seconds,
            ),
        )
        self._spawn("killstream:fallback", self.fallback.run)

    def _socket_up(self) -> bool:
        source = self.sockets.get("systems")
        return source is None or source.health.state is ConnectionState.CONNECTED

    def _joins(self) -> int:
        source = self.sockets.get("systems")
        return 0 if source is None else source.joins

    def start_r2z2(self, http: HttpClient) -> None:
        """Start the R2Z2 poller when enabled (``http``: a plain client, no retry layer)."""
        r2 = self._settings().r2z2
        if not r2.enabled or self.r2z2 is not None:
            return
        self.r2z2 = R2z2Source(
            http,
            self._store,
            self._index,
            self._sink,
            self._metrics,
            url=r2.url,
            user_agent=r2.user_agent,
            max_age_hours=r2.max_age_hours,
            timing=self.r2z2_timing,
        )
        self._spawn("r2z2", self.r2z2.run)
