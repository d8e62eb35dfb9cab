"""What each alert rule measures, read from the engine's own state.

:class:`Measurer` reads the parts of a running engine (sources and the bot's gateway, outbox,
dispatcher, breakers, queue, cache, data directory) and returns, per rule, one :class:`Measure`
per subject. Rates (failures and 429s per minute, the cache hit ratio) are differences of the
engine's counters over a sliding window of the measurer's own samples, so nothing here keeps a
second copy of a count.

A measure that cannot be taken (free space on a file system gone or refused) leaves its rule out
of the result and says why in :attr:`Measurer.unmeasured`: not knowing is not "healthy", so the
alert engine keeps that rule's alerts as they are (logged, and counted in
``wc_errors_total{component="alerts:<rule>"}``).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from wanderer_console.config.live import LiveSettings
from wanderer_console.config.routing import OPS_TENANT, ops_target
from wanderer_console.delivery.dispatcher import Dispatcher
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.http.pool import ClientPool
from wanderer_console.ingest.gateway import DiscordGateway
from wanderer_console.ingest.items import Item
from wanderer_console.ingest.kill_sources import KillSources
from wanderer_console.ingest.map_bootstrap import MapFeeds
from wanderer_console.pipeline.queue import BoundedPriorityQueue
from wanderer_console.store.base import DatabaseUrl, Store
from wanderer_console.store.writes import unavailable
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["Measure", "Measurer", "Watched"]

log = logging.getLogger(__name__)

_RATE_LIMITED = "rate_limited"
"""The ``reason`` of ``wc_delivery_failures`` for a 429 (``delivery.discord.Outcome``)."""


class Watched(Protocol):
    """The runtime's parts the measures read (the runtime satisfies it)."""

    data_dir: Path
    live: LiveSettings
    metrics: Metrics
    store: Store
    queue: BoundedPriorityQueue[Item]
    dispatcher: Dispatcher
    cache: CacheFacade
    clients: ClientPool
    maps: MapFeeds
    kills: KillSources
    gateway: DiscordGateway | None


@dataclass(frozen=True, slots=True)
class Measure:
    """One rule's measure for one subject."""

    subject: str
    value: float
    detail: str = ""
    """A few words for the banner and the message (``state reconnecting: 503``)."""


@dataclass(frozen=True, slots=True)
class _Sample:
    at: float
    failures: float
    rate_limited: float
    hits: int
    misses: int


def _scrubbed(store: Store, exc: BaseException) -> str:
    """The database's error, its password masked (a PostgreSQL message may quote the URL)."""
    location = store.path
    text = str(exc) or type(exc).__name__
    return location.scrub(text) if isinstance(location, DatabaseUrl) else text


class Measurer:
    """Reads every rule's measures from ``parts`` (see the module docstring)."""

    def __init__(
        self,
        parts: Watched,
        *,
        clock: Callable[[], float] = time.time,
        disk_free: Callable[[Path], int] = lambda path: shutil.disk_usage(path).free,
    ) -> None:
        self._parts = parts
        self._clock = clock
        self._disk_free = disk_free
        self._samples: deque[_Sample] = deque(maxlen=100_000)
        self._failing_since: dict[str, float] = {}
        """Per breaker not closed, when it opened first: a failed probe opens it again (its
        ``opened_at`` with it) every cool-down, while the host has been failing all along."""
        self.lookups_in_window = 0
        """Cache look-ups in the last window (the hit ratio rule waits for enough of them)."""
        self.unmeasured: dict[str, str] = {}
        """Rules whose measure failed at the last :meth:`measure`, with why (not in its result)."""

    def measure(self, now: float, window: float) -> dict[str, list[Measure]]:
        """Every rule's measures now; rates are over the last ``window`` seconds."""
        parts = self._parts
        sample = self._sample(now)
        past = self._past(now - window)
        minutes = max((now - past.at) / 60.0, 1.0 / 60.0)
        out: dict[str, list[Measure]] = {
            "source_disconnected": [],
            "map_silent": [],
            "breaker_open": [],
        }
        for health in self._sources():
            snap = health.snapshot()
            down_since = health.disconnected_since
            name, state = str(snap["name"]), str(snap["state"])
            if state == "connected":
                out["source_disconnected"].append(Measure(name, 0.0))
                if snap["kind"] == "map_sse":
                    seen = max(float(snap["since"] or now), float(snap["last_event_at"] or 0.0))
                    out["map_silent"].append(
                        Measure(name, max(0.0, now - seen), "connected, no map event")
                    )
            else:
                why = f"state {state}" + (f": {snap['last_error']}" if snap["last_error"] else "")
                # Since it was last connected, not since its last state change: a source
                # refused at each retry goes failed, reconnecting, failed ... every minute.
                since = float(down_since if down_since is not None else (snap["since"] or now))
                out["source_disconnected"].append(Measure(name, max(0.0, now - since), why))
        breakers = parts.clients.breakers()
        for gone in self._failing_since.keys() - breakers.keys():
            del self._failing_since[gone]
        for name, breaker in breakers.items():
            opened = breaker.get("opened_at")
            state = str(breaker.get("state"))
            if state != "closed" and opened is not None:
                since = self._failing_since.setdefault(name, float(opened))
                what = "open" if state == "open" else "open, probing"
                out["breaker_open"].append(Measure(name, max(0.0, now - since), what))
            else:
                self._failing_since.pop(name, None)
                out["breaker_open"].append(Measure(name, 0.0))
        # The dispatcher's depth (counted at most once a second), without the alerts' own
        # messages to the operations webhook: they would keep the outbox alerts firing.
        targets = parts.dispatcher.snapshot()["targets"]
        ops = ops_target(parts.live.current)
        depth = sum(
            int(target["pending"])
            for key, target in targets.items()
            if ops is None or key != ops.key
        )
        failed: dict[str, str] = {}
        if parts.dispatcher.depth_error is not None:
            # The count is the last one taken: unknown now, neither fired nor resolved on it.
            failed["outbox_depth"] = f"cannot count the outbox: {parts.dispatcher.depth_error}"
        else:
            out["outbox_depth"] = [Measure("outbox", float(depth), "pending")]
        try:
            oldest = parts.store.oldest_pending_at(exclude_tenant=OPS_TENANT)
        except Exception as exc:
            # The database not answering (locked, the server gone) is an unknown measure, not
            # an empty outbox and not a reason to measure nothing else: the other rules (a
            # disconnected source, the disk) matter most exactly then.
            if not unavailable(exc):
                raise
            failed["outbox_oldest"] = f"cannot read the outbox: {_scrubbed(parts.store, exc)}"
        else:
            age = 0.0 if oldest is None else max(0.0, now - oldest)
            out["outbox_oldest"] = [Measure("outbox", age, "oldest pending")]
        failures = (sample.failures - past.failures) / minutes
        out["delivery_failures"] = [Measure("discord", round(failures, 3), "failed sends/min")]
        limited = (sample.rate_limited - past.rate_limited) / minutes
        out["rate_limited"] = [Measure("discord", round(limited, 3), "429 answers/min")]
        queue = parts.queue
        fill = queue.qsize() / queue.maxsize if queue.maxsize else 0.0
        out["queue_saturation"] = [Measure("queue", round(fill, 4), f"{queue.qsize()} queued")]
        hits, misses = sample.hits - past.hits, sample.misses - past.misses
        out["cache_hit_ratio"] = (
            [Measure("cache", round(hits / (hits + misses), 4), f"{hits + misses} look-ups")]
            if hits + misses
            else []
        )
        self.lookups_in_window = hits + misses
        try:
            free = self._disk_free(parts.data_dir) / (1024 * 1024)
        except OSError as exc:
            failed["disk_space"] = f"cannot measure free space on {parts.data_dir}: {exc}"
        else:
            out["disk_space"] = [
                Measure("data_dir", round(free, 1), f"MiB free on {parts.data_dir}")
            ]
        self._report(failed)
        return out

    def _report(self, failed: dict[str, str]) -> None:
        """Count every failed measure; log when a rule starts failing (or fails differently)
        and when it can be measured again, not at every evaluation."""
        for rule, why in failed.items():
            self._parts.metrics.errors.labels(component=f"alerts:{rule}").inc()
            if self.unmeasured.get(rule) != why:
                log.warning(
                    "alert rule cannot be measured; its alerts stay as they are",
                    extra={"ctx": {"rule": rule, "error": why}},
                )
        for rule in self.unmeasured.keys() - failed.keys():
            log.info("alert rule measured again", extra={"ctx": {"rule": rule}})
        self.unmeasured = failed

    def _sources(self) -> list[Any]:
        kills = self._parts.kills
        sources: list[Any] = [*self._parts.maps.sources.values(), *kills.sockets.values()]
        if kills.r2z2 is not None:
            sources.append(kills.r2z2)
        if self._parts.gateway is not None:
            sources.append(self._parts.gateway)  # the bot's gateway: slash commands, voice
        return [source.health for source in sources]

    def _sample(self, now: float) -> _Sample:
        metrics = self._parts.metrics
        failures = metrics.split(metrics.delivery_failures, "reason")
        limited = failures.pop(_RATE_LIMITED, 0.0)
        namespaces = self._parts.cache.telemetry.namespaces.values()
        sample = _Sample(
            at=now,
            failures=sum(failures.values()),
            rate_limited=limited,
            hits=sum(ns.hits for ns in namespaces),
            misses=sum(ns.misses for ns in namespaces),
        )
        self._samples.append(sample)
        return sample

    def _past(self, since: float) -> _Sample:
        """The oldest sample at or after ``since`` (the window's start), dropping older ones
        but the last one before it."""
        samples = self._samples
        while len(samples) > 1 and samples[1].at <= since:
            samples.popleft()
        return samples[0]
