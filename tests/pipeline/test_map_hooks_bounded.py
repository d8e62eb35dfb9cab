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
