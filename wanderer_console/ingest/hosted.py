"""Hosted / API multi-map mode: pull the maps' configuration from the map server, keep it applied.

:class:`HostedMaps` asks ``GET {origin}/api/plugins/notifier/config`` (Bearer
``PLUGIN_NOTIFIER_API_KEY``) at start, every ``hosted.refresh_seconds`` (5 minutes by default, as
the notifier) and whenever the console asks (:meth:`HostedMaps.refresh`), turns the answer into
maps (:func:`~wanderer_console.config.hosted.parse_notifier_config`) and hands them to the
runtime, which starts, changes and stops maps by difference without touching the others. A
refresh that fails (the server down, a refused key, an answer that is not a list, or one with
no usable map while hosted maps run) changes nothing: running maps keep running on what they
had, and the failure is logged, counted (``wc_hosted_refresh_total{outcome}``) and shown in the
snapshot. Likewise a running map whose entry alone comes back unusable (its slug still listed)
keeps running on the settings it had: only a map no longer listed is stopped.

Each map's key is the one kept for its ``map_id`` (:class:`HostedKeys`: the store, shared by the
engines of one database and kept across restarts), given when the map is first seen: a map
renamed on the map server keeps its key, its feed restarted on the new slug.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import Counter

from wanderer_console.config.hosted import (
    HostedConfig,
    HostedMapsDiff,
    hosted_key,
    read_notifier_config,
)
from wanderer_console.config.live import LiveSettings
from wanderer_console.config.model import HostedSettings, MapSettings, Settings
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.ingest.map_rest import api_origin
from wanderer_console.store.writes import StoreWriteError
from wanderer_console.telemetry.metrics import Metrics

__all__ = [
    "CONFIG_PATH",
    "PROBLEMS_SHOWN",
    "START_RETRY_MAX",
    "HostedKeys",
    "HostedMaps",
    "HostedRefresh",
]

log = logging.getLogger(__name__)

CONFIG_PATH = "/api/plugins/notifier/config"
"""Where the map server serves the per-map notifier configuration."""

START_RETRY_MAX = 60.0
"""Longest wait between two refreshes until one has applied since the start (1 s, doubling):
the hosted maps run only once one has, so a map server down at the start is not left for a
whole ``refresh_seconds``."""

PROBLEMS_SHOWN = 20
"""Entries left out that a refresh names (logged and in the snapshot); the rest are counted."""

Apply = Callable[[dict[str, MapSettings]], Awaitable[HostedMapsDiff]]
"""The runtime's side: make these the hosted maps; returns what changed."""


class HostedKeys(Protocol):
    """Where the hosted maps' keys are kept (the store: shared by the engines of one database,
    kept across restarts)."""

    def hosted_map_keys(self) -> dict[str, str]: ...

    def keep_hosted_map_keys(self, keys: Mapping[str, tuple[str, str]]) -> dict[str, str]: ...


@dataclass(slots=True)
class HostedRefresh:
    """One refresh: what it did."""

    ok: bool
    source: str
    """``start``, ``timer`` or ``console``."""
    at: float
    error: str | None = None
    maps: list[str] = field(default_factory=list)
    """The hosted maps after it (unchanged on an error)."""
    problems: list[str] = field(default_factory=list)
    """Entries of the answer left out, with why."""
    diff: HostedMapsDiff | None = None

    def as_json(self) -> dict[str, Any]:
        """A JSON-safe dict for the snapshot and the console."""
        return {
            "ok": self.ok,
            "source": self.source,
            "at": self.at,
            "error": self.error,
            "maps": list(self.maps),
            "problems": list(self.problems),
            "diff": None if self.diff is None else self.diff.as_json(),
        }


class HostedMaps:
    """The refresher of hosted maps (see the module docstring)."""

    def __init__(
        self,
        live: LiveSettings,
        client: Callable[[], HttpClient],
        apply: Apply,
        metrics: Metrics,
        *,
        keys: HostedKeys | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._live = live
        self._client = client
        self._apply = apply
        self._keys = keys
        self._clock = clock
        self._known: dict[str, str] = {}
        """The key of every hosted map seen, by ``map_id`` (the store's, when there is one)."""
        self._unkept: dict[str, str] = {}
        """Keys given to new maps while the store could not write them, by ``map_id``: used
        until a refresh keeps them."""
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.last: HostedRefresh | None = None
        self.maps: list[str] = []
        """The hosted maps now running (keys)."""
        self._applied: dict[str, MapSettings] = {}
        """The settings of the hosted maps last applied, kept for an entry that turns bad."""
        self.refreshes = 0
        """Refreshes done (any outcome)."""
        self.applied = False
        """A refresh's answer was applied since the start: until then the hosted maps are not
        known (their queued notifications wait for it rather than fail as unconfigured)."""
        self._counter = Counter(
            "wc_hosted_refresh",
            "Refreshes of the hosted maps' configuration, by outcome",
            ["outcome"],
            registry=metrics.registry,
        )
        live.subscribe(self._settings_changed)

    def _settings_changed(self, old: Settings, new: Settings) -> None:
        """A reload that changes ``[hosted]`` refreshes now: the maps take ``channel_id`` (and
        the map API key, the endpoint's key) only from a refresh, and a new ``refresh_seconds``
        times the next wait."""
        if new.hosted != old.hosted:
            self.wake()

    @property
    def url(self) -> str:
        """The notifier-config endpoint."""
        hosted = self._live.current.hosted
        return f"{api_origin(hosted.url or '')}{CONFIG_PATH}"

    async def run(self) -> None:
        """Refresh now, then every ``hosted.refresh_seconds`` (sooner when woken), until
        cancelled; until a refresh has applied, again after a backoff (1 s doubling to
        :data:`START_RETRY_MAX`) when that is sooner."""
        source = "start"
        retry = Backoff(1.0, START_RETRY_MAX)
        while True:
            self._wake.clear()  # before: a wake while a refresh is under way asks again after
            await self.refresh(source)
            wait = self._live.current.hosted.refresh_seconds
            if not self.applied:
                # No answer applied since the start (the map server down as the engine came
                # up): no hosted map runs, so every event and kill of theirs is being missed.
                wait = min(wait, retry.next_delay())
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass
            source = "timer"

    def wake(self) -> None:
        """Make the running loop refresh now (its next timer starts after)."""
        self._wake.set()

    async def refresh(self, source: str = "console") -> HostedRefresh:
        """Pull the configuration once and apply it; never raises for a bad answer."""
        async with self._lock:
            result = await self._refresh(source)
            self.refreshes += 1
            self.last = result
            self._counter.labels(outcome="ok" if result.ok else "error").inc()
            return result

    async def _refresh(self, source: str) -> HostedRefresh:
        hosted = self._live.current.hosted
        at = self._clock()
        key = "" if hosted.api_key is None else hosted.api_key.get_secret_value()
        headers = {"authorization": f"Bearer {key}", "accept": "application/json"}
        try:
            response = await self._client().get(self.url, headers=headers)
        except TransportError as exc:
            return self._failed(source, at, f"{self.url} did not answer ({exc})")
        if response.status in (401, 403):
            return self._failed(
                source,
                at,
                f"{self.url} refused the key ({response.status}): check"
                " PLUGIN_NOTIFIER_API_KEY (hosted.api_key)",
            )
        if not response.ok:
            return self._failed(source, at, f"{self.url} answered {response.status}")
        try:
            body = response.json()
            config = read_notifier_config(body, hosted, self._known)
        except ValueError as exc:
            return self._failed(source, at, f"{self.url}: {exc}")
        try:
            config = self._keyed(body, hosted, config)
        except Exception as exc:  # the store's own error (a database gone), said as it is
            return self._failed(
                source,
                at,
                f"the hosted maps' keys could not be read or kept in the store ({exc})",
            )
        maps, problems = config.maps, config.problems
        for key, map_settings in maps.items():
            before = self._applied.get(key)
            if before is not None and before.slug != map_settings.slug:
                log.info(
                    "hosted map renamed on the map server; its key is kept",
                    extra={"ctx": {"map": key, "from": before.slug, "to": map_settings.slug}},
                )
        # A running map listed with an unusable entry is still wanted (a server mid-deploy, a
        # field gone null): stopping it would drop its stream until the entry is fixed.
        kept = sorted((self._listed(body) & set(self._applied)) - set(maps))
        for key in kept:
            problems.append(f"{key}: its entry is unusable; kept running on its previous settings")
        if len(problems) > PROBLEMS_SHOWN:
            # A server bug can list thousands of bad entries: a line each, at every refresh
            # and in every snapshot, would flood the log and the consoles.
            more = len(problems) - PROBLEMS_SHOWN
            problems = [*problems[:PROBLEMS_SHOWN], f"... and {more} more entries left out"]
        for problem in problems:
            log.warning("hosted map left out", extra={"ctx": {"url": self.url, "problem": problem}})
        if not maps and self.maps:
            # Stopping every map on one bad answer (a changed schema, a server mid-deploy) does
            # far more harm than keeping them until a restart, which applies any answer.
            why = f"no usable map ({'; '.join(problems[:3])})" if problems else "listed no map"
            return self._failed(
                source,
                at,
                f"{self.url} {why}: the running hosted maps are kept (to stop them all, restart"
                " the engine)",
            )
        maps.update({key: self._applied[key] for key in kept})
        diff = await self._apply(maps)
        self.applied = True
        self._applied = dict(maps)
        self.maps = sorted(maps)
        if not diff.empty:
            log.info("hosted maps changed", extra={"ctx": {"source": source, **diff.as_json()}})
        return HostedRefresh(True, source, at, None, self.maps, problems, diff)

    def _keyed(self, body: Any, hosted: HostedSettings, config: HostedConfig) -> HostedConfig:
        """``config`` keyed by the keys the store keeps (see :class:`HostedKeys`): a map first
        seen gets its key kept there, once, so every engine of the database, and this one after
        a restart, gives a map the same key whatever its slug becomes. Without a store, the
        keys are this process's. A map whose key another engine kept for another map meanwhile
        waits for the next refresh."""
        if self._keys is None:
            self._known.update({map_id: key for key, map_id in config.map_ids.items()})
            return config
        stored = self._keys.hosted_map_keys()
        # Keys given while the store could not write them come next (the store's win).
        known = self._unkept | stored
        config = read_notifier_config(body, hosted, known)
        new = {m: kept for m, kept in config.new_keys.items() if m not in stored}
        if new:
            try:
                known = self._keys.keep_hosted_map_keys(new)
            except StoreWriteError as exc:
                # The store cannot write now (a full disk, a database held by another process):
                # the engine runs on, and so do these maps, under the keys just given (their
                # slug's, as every engine of the database would give them); each refresh tries
                # to keep them again. Failing the refresh ran no new map (at a start, none).
                log.warning(
                    "hosted maps' keys not kept (the store cannot write); kept at a later refresh",
                    extra={
                        "ctx": {
                            "maps": sorted(key for key, _slug in new.values()),
                            "error": str(exc),
                        }
                    },
                )
                self._unkept = {m: key for m, (key, _slug) in new.items()}
                self._known = known | self._unkept
                return config
            config = read_notifier_config(body, hosted, known)
        self._unkept = {}  # every map listed has its key in the store now
        for key, map_id in list(config.map_ids.items()):
            if known.get(map_id) != key:
                del config.maps[key], config.map_ids[key]
                config.problems.append(
                    f"{key} (map {map_id}): its key was taken by another map meanwhile;"
                    " asked again at the next refresh"
                )
        self._known = known
        return config

    def _listed(self, body: Any) -> set[str]:
        """The map keys of every entry of a notifier-config answer that names a slug, usable or
        not: its ``map_id``'s key, else a running map's of that slug, else its slug's."""
        entries = body.get("data", body.get("maps")) if isinstance(body, dict) else body
        if not isinstance(entries, list):
            return set()
        by_slug = {m.slug: key for key, m in self._applied.items()}
        keys = set()
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            slug, map_id = entry.get("slug"), entry.get("map_id")
            if isinstance(map_id, str) and map_id in self._known:
                keys.add(self._known[map_id])
            elif isinstance(slug, str) and slug:
                keys.add(by_slug.get(slug, hosted_key(slug)))
        return keys

    def _failed(self, source: str, at: float, error: str) -> HostedRefresh:
        log.error(
            "hosted maps refresh failed; the running maps are kept",
            extra={"ctx": {"source": source, "error": error}},
        )
        return HostedRefresh(False, source, at, error, list(self.maps))

    def snapshot(self) -> dict[str, Any]:
        """State for the runtime snapshot and the console."""
        return {
            "url": self.url,
            "refresh_seconds": self._live.current.hosted.refresh_seconds,
            "refreshes": self.refreshes,
            "maps": list(self.maps),
            "last": None if self.last is None else self.last.as_json(),
        }
