"""A map server that does not answer never holds the pipeline: the engine awaits a map event's
REST look-ups (static info, tracked characters) before the next event of any map, so each is
bounded by the map updates' own timeout, not the HTTP client's timeouts and retries."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.pipeline.test_rules_filters import NOW, index, settings
from wanderer_console.domain.map_events import MapEnvelope, parse_payload
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.map_updates import MapHooks
from wanderer_console.store.base import Store
from wanderer_console.telemetry.metrics import Metrics


def silent_engine(store: Store, asked: list[str]) -> tuple[Engine, asyncio.Event]:
    """An engine whose map hooks never answer (until ``release`` is set)."""
    release = asyncio.Event()
    clock = [NOW.timestamp()]
    eng = Engine(settings(), store, index(), Metrics(), clock=lambda: clock[0])

    async def static_info(system_id: int) -> dict[str, Any] | None:
        asked.append(f"static:{system_id}")
        await release.wait()
        return None

    async def refresh() -> None:
        asked.append("characters")
        await release.wait()

    eng.set_hooks("home", MapHooks(static_info, refresh))
    eng.map_updates.hook_timeout = 0.2
    clock[0] += 60  # past start-up suppression
    return eng, release


async def decide(eng: Engine, type_: str, payload: dict[str, Any]) -> list[Any]:
    envelope = MapEnvelope(
        id="01KEMZ0000AAAAAAAAAAAAAAAA", type=type_, timestamp=NOW, payload=payload
    )
    # A safety net only: the hooks' own bound must end the wait long before it.
    return await asyncio.wait_for(
        eng.map_notifications("home", envelope, parse_payload(envelope)), 30
    )


async def test_a_silent_static_info_does_not_hold_a_new_system(store: Store) -> None:
    asked: list[str] = []
    eng, release = silent_engine(store, asked)
    try:
        (note,) = await decide(eng, "add_system", {"solar_system_id": 31000777, "name": "J100777"})
    finally:
        release.set()
    assert asked == ["static:31000777"]
    assert note.body["embeds"][0]["title"] == "New System Tracked: J100777"


async def test_a_silent_characters_refresh_does_not_hold_a_new_character(store: Store) -> None:
    asked: list[str] = []
    eng, release = silent_engine(store, asked)
    try:
        (note,) = await decide(eng, "character_added", {"id": "uuid-new", "name": "New Pilot"})
    finally:
        release.set()
    assert asked == ["characters"]
    assert note.body["embeds"][0]["title"] == "New Character Tracked: New Pilot"


async def test_a_silent_map_server_opens_its_breaker_and_later_systems_do_not_wait(
    store: Store,
) -> None:
    """The bound cancelled each static-info request, and a cancelled request is no verdict for
    the host's breaker: a silent map server never opened it, and every new system waited the
    whole bound before the next event of any map. Its requests now end by the bound, so the
    breaker opens after a few and the next systems are notified at once."""
    from tests.enrich.test_enrichment_outage import SilentServer
    from wanderer_console.http.factory import build_client
    from wanderer_console.http.settings import settings_for
    from wanderer_console.ingest.map_rest import MapRestClient

    silent = SilentServer()
    await silent.start()
    metrics = Metrics()
    http = build_client(
        "map", settings_for("map").model_copy(update={"breaker_failures": 2}), metrics=metrics
    )
    try:
        map_settings = settings().maps["home"].model_copy(update={"url": silent.url})
        rest = MapRestClient(http, map_settings)
        clock = [NOW.timestamp()]
        eng = Engine(settings(), store, index(), Metrics(), clock=lambda: clock[0])

        async def refresh() -> None:
            return None

        eng.set_hooks("home", MapHooks(rest.static_info, refresh))
        eng.map_updates.hook_timeout = 0.5
        clock[0] += 60  # past start-up suppression
        for n in range(6):
            system = 31000700 + n
            (note,) = await decide(
                eng, "add_system", {"solar_system_id": system, "name": f"J{system - 30900000}"}
            )
            assert note.body["embeds"][0]["title"].startswith("New System Tracked")
        (breaker,) = http.breakers_snapshot().values()
        assert breaker["state"] == "open", breaker
        assert silent.requests == 2, silent.requests  # the rest failed at once
    finally:
        await http.aclose()
        await silent.stop()
