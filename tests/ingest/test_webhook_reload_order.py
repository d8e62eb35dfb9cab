"""Map events delivered by the map's webhook around a REST reload of the map: one that arrived
before the reload began is older than what the reload found and must not undo it; one that
arrived while the reload was asking the map server must not be taken for older (real map
server and webhook endpoint on 127.0.0.1, the real map feeds, queue, engine and pipeline
worker, SQLite)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support import wait_for
from wanderer_console.config.model import Settings
from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.ingest.items import Item
from wanderer_console.ingest.map_bootstrap import MapFeeds
from wanderer_console.ingest.map_sse import MapSseSource
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.map_updates import MapHooks
from wanderer_console.pipeline.queue import BoundedPriorityQueue, item_queue
from wanderer_console.pipeline.worker import PipelineWorker
from wanderer_console.server.webhook import WebhookEndpoint, sign
from wanderer_console.sim.map_server import FakeMapServer
from wanderer_console.sim.server import AppServer
from wanderer_console.sim.ulid import new_ulid
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.timeout(60)

MAP_ID = "5d0f7c2e-8a41-4c55-9f0b-2b6c1e7d9a10"
SECRET = "webhook-secret-for-tests"
KEPT, GONE, LATER = 31_000_001, 31_000_002, 31_000_003
PILOT = 2_112_000_001


class _Held:
    """The map server's answers on paths ending with ``suffix`` wait while :attr:`open` is
    clear (``/tracked-characters``: a reload caught between its two requests, its systems
    already read; ``/system-static-info``: the pipeline's look-up for a system added)."""

    def __init__(self, app: ASGIApp, suffix: str) -> None:
        self._app = app
        self._suffix = suffix
        self.open = asyncio.Event()
        self.open.set()
        self.held = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        held = scope["type"] == "http" and scope["path"].endswith(self._suffix)
        if held and not self.open.is_set():
            self.held += 1
            await self.open.wait()
        await self._app(scope, receive, send)


class _HeldReply:
    """Once :meth:`arm`ed, the next answer on a path ending with ``suffix`` is read from the
    map's state at once but sent only when :attr:`open` is set (a look-up answered with the
    map as it was, arriving late); later requests are answered as usual."""

    def __init__(self, app: ASGIApp, suffix: str) -> None:
        self._app = app
        self._suffix = suffix
        self._armed = False
        self.open = asyncio.Event()
        self.held = 0

    def arm(self) -> None:
        self._armed = True
        self.open.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        held = self._armed and scope["type"] == "http" and scope["path"].endswith(self._suffix)
        if not held:
            await self._app(scope, receive, send)
            return
        self._armed = False
        reply: list[Any] = []

        async def keep(message: Any) -> None:
            reply.append(message)

        await self._app(scope, receive, keep)
        self.held += 1
        await self.open.wait()
        for message in reply:
            await send(message)


class _Surface:
    """The part of the engine surface the webhook endpoint uses, over the real queue and index
    (as :class:`~wanderer_console.runtime.Runtime` has it)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        queue: BoundedPriorityQueue[Item],
        index: TrackingIndex,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._queue = queue
        self._index = index

    def offer(self, items: Sequence[Item]) -> bool:
        return self._queue.offer(items)

    def works_map(self, tenant: str) -> bool:
        return True

    def map_generation(self, tenant: str) -> int:
        return self._index.arrival(tenant)


def _settings(url: str) -> Settings:
    return Settings.model_validate(
        {
            "console": {"startup_suppression_seconds": 0, "dry_run": True},
            "esi": {"enabled": False},
            "maps": {
                "cut": {
                    "url": url,
                    "api_key": "key",
                    "name": "Fault Map",
                    "webhook_secret": SECRET,
                    "discord": {"webhook_url": "https://discord.com/api/webhooks/1/token"},
                }
            },
        }
    )


@dataclass
class Rig:
    server: FakeMapServer
    gate: _Held
    info_gate: _Held
    reply_gate: _HeldReply
    source: MapSseSource
    index: TrackingIndex
    queue: BoundedPriorityQueue[Item]
    store: SqliteStore
    worker: PipelineWorker
    metrics: Metrics
    hook: httpx.AsyncClient

    async def deliver(self, solar_system_id: int) -> str:
        """The map's webhook delivers an ``add_system`` (signed); its event id."""
        envelope: dict[str, Any] = {
            "id": new_ulid(),
            "type": "add_system",
            "map_id": MAP_ID,
            "timestamp": "2026-01-01T00:00:00.000000Z",
            "payload": {"solar_system_id": solar_system_id, "name": f"J{solar_system_id}"},
        }
        await self.post(envelope)
        return str(envelope["id"])

    async def post(self, envelope: dict[str, Any]) -> None:
        """The map's webhook delivers ``envelope`` (signed now, as a retry is)."""
        body = orjson.dumps(envelope)
        stamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "x-wanderer-timestamp": stamp,
            "x-wanderer-signature": sign(SECRET, stamp, body),
        }
        response = await self.hook.post("/api/v1/maps/cut/webhook", content=body, headers=headers)
        assert response.status_code == 202, response.text

    async def reconnect(self) -> None:
        """End the stream: its reconnect reloads the map (``resync_after`` 0)."""
        self.server.clear_buffer()
        self.server.drop_connections()


@contextlib.asynccontextmanager
async def _rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """Map ``cut`` with its feed on a fake map server and its webhook endpoint served; every
    reconnect of the stream reloads the map. The pipeline worker is not started: the test
    starts it when the queue should drain."""
    server = FakeMapServer("cut", "key", MAP_ID)
    server.seed([KEPT], [PILOT])
    gate = _Held(server.app, "/tracked-characters")
    info_gate = _Held(gate, "/system-static-info")
    reply_gate = _HeldReply(info_gate, "/tracked-characters")
    maps = AppServer(reply_gate, on_stop=server.close)
    await maps.start()
    settings = _settings(maps.url)
    metrics = Metrics()
    store = SqliteStore(tmp_path / "db.sqlite")
    index = TrackingIndex()
    queue = item_queue(64, index, registry=metrics.registry)
    tasks: list[asyncio.Task[None]] = []
    feeds = MapFeeds(
        index,
        store,
        queue.put,
        metrics,
        spawn=lambda name, run: tasks.append(asyncio.create_task(run())),
        on_loaded=lambda tenant: None,
        resync_after=lambda: 0.0,
    )
    feeds.jitter_per_map = 0.0
    engine = Engine(settings, store, index, metrics)
    worker = PipelineWorker(queue, engine)
    endpoint = WebhookEndpoint(_Surface(settings, metrics, queue, index))  # type: ignore[arg-type]
    hooks = AppServer(
        Starlette(routes=[Route("/api/v1/maps/{map}/webhook", endpoint.receive, methods=["POST"])])
    )
    await hooks.start()
    http = HttpClient("map", timeout=10.0)
    hook = httpx.AsyncClient(base_url=hooks.url, timeout=10.0)
    try:
        rest = feeds.start("cut", settings.maps["cut"], http)
        # As the runtime wires them: the pipeline's own look-ups for a map event.
        engine.set_hooks(
            "cut", MapHooks(rest.static_info, functools.partial(feeds.refresh_characters, "cut"))
        )
        source = await wait_for(lambda: feeds.sources.get("cut"))
        await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
        assert set(index.map("cut").systems) == {KEPT}
        yield Rig(
            server, gate, info_gate, reply_gate, source, index, queue, store, worker, metrics, hook
        )
    finally:
        gate.open.set()
        info_gate.open.set()
        reply_gate.open.set()
        await cancel_and_wait(tasks)
        await hook.aclose()
        await http.aclose()
        await hooks.stop()
        await maps.stop()
        store.close()


@contextlib.asynccontextmanager
async def _draining(rig: Rig) -> AsyncIterator[None]:
    work = asyncio.create_task(rig.worker.run())
    try:
        yield
    finally:
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)


async def test_a_webhook_event_queued_before_a_reload_does_not_undo_it(tmp_path: Path) -> None:
    """The webhook delivers a system added; the pipeline is behind, so it waits in the queue.
    The map deletes the system again and the stream's reconnect reloads the map without it.
    The queued event is then decided: the map stays as the reload found it and the system no
    longer on the map is not notified (before, the webhook's events carried no load of the
    map: the deleted system came back on the map and was notified as added)."""
    async with _rig(tmp_path) as rig:
        rig.server.state.add_system(GONE)
        added = await rig.deliver(GONE)
        await wait_for(lambda: rig.queue.qsize() == 1, what="the webhook's event queued")

        rig.server.state.remove_system(GONE)
        await rig.reconnect()
        await wait_for(lambda: rig.source.resyncs == 1, what="the reload")
        assert set(rig.index.map("cut").systems) == {KEPT}

        async with _draining(rig):
            await wait_for(lambda: rig.store.event_count() == 1, what="the event decided")
            assert set(rig.index.map("cut").systems) == {KEPT}
            assert not rig.store.has_notification("cut", f"system:{added}")
            filtered = rig.metrics.value(
                "wc_notifications_filtered_total", reason="superseded_by_reload"
            )
            assert filtered == 1


async def test_a_webhook_event_arriving_during_a_reload_is_not_older_than_it(
    tmp_path: Path,
) -> None:
    """The reload has read the map's systems and waits for its tracked characters when the
    webhook delivers a system added just now (the reload's systems do not have it). Decided
    after the reload, the event is newer than what the reload found: the system is tracked and
    notified (an event stamped with the load in force at its arrival was taken for older than
    the reload and dropped, the stream's copy then skipped as a duplicate)."""
    async with _rig(tmp_path) as rig:
        rig.gate.open.clear()
        await rig.reconnect()
        await wait_for(lambda: rig.gate.held == 1, what="the reload between its two requests")

        rig.server.state.add_system(LATER)
        added = await rig.deliver(LATER)
        await wait_for(lambda: rig.queue.qsize() == 1, what="the webhook's event queued")
        rig.gate.open.set()
        await wait_for(lambda: rig.source.resyncs == 1, what="the reload")
        assert set(rig.index.map("cut").systems) == {KEPT}

        async with _draining(rig):
            await wait_for(lambda: rig.store.event_count() == 1, what="the event decided")
            assert set(rig.index.map("cut").systems) == {KEPT, LATER}
            assert rig.store.has_notification("cut", f"system:{added}")


async def test_a_reload_ending_while_a_webhook_event_is_decided_keeps_the_system(
    tmp_path: Path,
) -> None:
    """The reload has read the map's systems and waits for its tracked characters when the
    webhook delivers a system added just now. The pipeline is not behind: it takes the event
    at once and asks the map for the system's static info, and the reload ends while it waits
    for the answer (its state without the system). The event is newer than what the reload
    read: once decided, the system is tracked and notified once, and the event is recorded
    (before, the reload swapped the map's state under the event: the system was gone when
    the answer came, the event failed with a KeyError logged as "pipeline failed on one
    event", nothing was recorded or notified and kills in the system were not followed)."""
    async with _rig(tmp_path) as rig, _draining(rig):
        rig.gate.open.clear()
        rig.info_gate.open.clear()
        await rig.reconnect()
        await wait_for(lambda: rig.gate.held == 1, what="the reload between its two requests")

        rig.server.state.add_system(LATER)
        added = await rig.deliver(LATER)
        await wait_for(lambda: rig.info_gate.held == 1, what="the event's static info asked")
        rig.gate.open.set()
        await wait_for(lambda: rig.source.resyncs == 1, what="the reload")
        assert set(rig.index.map("cut").systems) == {KEPT}
        rig.info_gate.open.set()

        await wait_for(lambda: rig.store.event_count() == 1, what="the event decided")
        assert set(rig.index.map("cut").systems) == {KEPT, LATER}
        assert rig.store.has_notification("cut", f"system:{added}")
        assert rig.metrics.value("wc_errors_total", component="pipeline") == 0


async def test_a_webhook_event_decided_while_a_reload_reads_the_map_outlives_the_reload(
    tmp_path: Path,
) -> None:
    """The reload has read the map's systems (not the one added just now) and waits for its
    tracked characters when the webhook delivers that system, and the pipeline decides the
    event at once: the system is tracked and notified. The reload then ends with the state it
    read: the system stays tracked (before, the reload's state replaced the map's whole, and
    the system was gone, its kills not followed, until the next reload)."""
    async with _rig(tmp_path) as rig, _draining(rig):
        rig.gate.open.clear()
        await rig.reconnect()
        await wait_for(lambda: rig.gate.held == 1, what="the reload between its two requests")

        rig.server.state.add_system(LATER)
        added = await rig.deliver(LATER)
        await wait_for(lambda: rig.store.event_count() == 1, what="the event decided")
        assert set(rig.index.map("cut").systems) == {KEPT, LATER}
        assert rig.store.has_notification("cut", f"system:{added}")

        rig.gate.open.set()
        await wait_for(lambda: rig.source.resyncs == 1, what="the reload")
        assert set(rig.index.map("cut").systems) == {KEPT, LATER}
        assert rig.index.maps_for_system(LATER) == {"cut"}


async def test_old_map_events_redelivered_after_a_reload_are_not_notified_again(
    tmp_path: Path,
) -> None:
    """A system added, a pilot added and a rally come over the stream and are notified. The
    stream ends and its reconnect reloads the map (the server still holds the events, but
    the cursor is past them); then the map's webhook delivers all three again, late (a
    sender's retry). Each was notified once: the late copies are duplicates, notify nothing
    and leave the map as the reload found it."""
    async with _rig(tmp_path) as rig, _draining(rig):
        published = [
            rig.server.add_system(LATER),
            rig.server.add_character(PILOT + 1, "Late Pilot"),
            rig.server.add_rally(LATER),
        ]
        keys = [
            f"{kind}:{envelope['id']}"
            for kind, envelope in zip(("system", "character", "rally"), published, strict=True)
        ]
        await wait_for(lambda: rig.store.event_count() == 3, what="the stream's events decided")
        assert all(rig.store.has_notification("cut", key) for key in keys)

        rig.server.drop_connections()
        await wait_for(lambda: rig.source.resyncs == 1, what="the reload")
        assert set(rig.index.map("cut").systems) == {KEPT, LATER}
        for envelope in published:
            await rig.post(envelope)
        await wait_for(
            lambda: rig.metrics.value("wc_events_duplicate_total", source="webhook:cut") == 3,
            what="the late copies decided",
        )

        assert rig.store.event_count() == 3
        assert sum(rig.store.outbox_counts().values()) == 3
        assert set(rig.index.map("cut").systems) == {KEPT, LATER}
        assert rig.metrics.value("wc_errors_total", component="pipeline") == 0


async def test_a_pilot_refresh_answered_before_a_reload_and_read_after_it_keeps_the_reload(
    tmp_path: Path,
) -> None:
    """The webhook delivers a pilot added the index does not know; the pipeline refreshes the
    map's tracked pilots, and the map's answer (the pilot tracked) is slow to arrive. The map
    stops tracking the pilot and the stream's reconnect reloads the map without it; then the
    refresh's older answer arrives. The event arrived before the reload began: the map stays
    as the reload found it, and a pilot no longer tracked is not notified (before, the older
    answer was merged into the reload's state: the pilot was tracked again, its kills
    followed, and the event notified it as added)."""
    async with _rig(tmp_path) as rig, _draining(rig):
        entry = rig.server.state.track(PILOT + 7, "Brief Pilot", None, None, None, None)
        envelope: dict[str, Any] = {
            "id": new_ulid(),
            "type": "character_added",
            "map_id": MAP_ID,
            "timestamp": "2026-01-01T00:00:00.000000Z",
            "payload": {"id": entry.character_uuid, "name": entry.name},
        }
        rig.reply_gate.arm()
        await rig.post(envelope)
        await wait_for(lambda: rig.reply_gate.held == 1, what="the refresh answered, late")

        rig.server.state.untrack(entry.character_uuid)
        await rig.reconnect()
        await wait_for(lambda: rig.source.resyncs == 1, what="the reload")
        assert set(rig.index.map("cut").characters) == {PILOT}
        rig.reply_gate.open.set()

        await wait_for(lambda: rig.store.event_count() == 1, what="the event decided")
        assert set(rig.index.map("cut").characters) == {PILOT}
        assert not rig.store.has_notification("cut", f"character:{envelope['id']}")
        filtered = rig.metrics.value(
            "wc_notifications_filtered_total", reason="superseded_by_reload"
        )
        assert filtered == 1
