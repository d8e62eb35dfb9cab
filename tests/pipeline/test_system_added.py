"""A system added to a map: what its notification says, and whether it is sent, when the map
event alone does not tell everything (a manual add carries no name)."""

from __future__ import annotations

from typing import Any

from tests.pipeline.test_rules_filters import NOW, index, settings
from wanderer_console.domain.map_events import MapEnvelope, parse_payload
from wanderer_console.domain.notification import Notification
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.map_updates import MapHooks
from wanderer_console.store.base import Store
from wanderer_console.telemetry.metrics import Metrics

ADDED = 31000777
STATIC = {"solar_system_id": ADDED, "solar_system_name": "J100777", "security": "-1.0"}


def engine(store: Store, tracking: TrackingIndex | None = None, **filters: Any) -> Engine:
    clock = [NOW.timestamp()]
    tracked = tracking or index()
    eng = Engine(settings(**filters), store, tracked, Metrics(), clock=lambda: clock[0])

    async def static_info(system_id: int) -> dict[str, Any] | None:
        return dict(STATIC) if system_id == ADDED else None

    async def refresh() -> None:
        return None

    eng.set_hooks("home", MapHooks(static_info, refresh))
    clock[0] += 60  # past start-up suppression
    return eng


async def added(eng: Engine, payload: dict[str, Any]) -> list[Notification]:
    envelope = MapEnvelope(
        id="01KEMZ0000AAAAAAAAAAAAAAAA", type="add_system", timestamp=NOW, payload=payload
    )
    return await eng.map_notifications("home", envelope, parse_payload(envelope))


async def test_a_priority_system_added_without_a_name_still_pings(store: Store) -> None:
    """``priority_system_names = ["J100777"]``: a system added by hand (no ``name`` in the
    event) is known by its EVE name from static info, and pings as a priority system."""
    (note,) = await added(
        engine(store, priority_system_names=["J100777"]), {"solar_system_id": ADDED}
    )
    assert note.body["embeds"][0]["title"] == "New System Tracked: J100777"
    assert note.body["content"].startswith("@here")
    assert note.body["allowed_mentions"]["parse"] == ["everyone"]


async def test_a_priority_system_added_without_a_name_passes_a_system_switch_off(
    store: Store,
) -> None:
    """System notifications off on the map: a priority system is still notified (PARITY.md
    §2.2), also when the event names it only by id."""
    eng = engine(store, priority_system_names=["j100777"])
    eng.settings.maps["home"].notifications.system = False
    (note,) = await added(eng, {"solar_system_id": ADDED})
    assert note.body["content"].startswith("@here")
    assert await added(eng, {"solar_system_id": 31000778}) == []  # not a priority one


async def event(eng: Engine, type: str, payload: dict[str, Any], n: int) -> list[Notification]:
    envelope = MapEnvelope(
        id=f"01KEMZ0000AAAAAAAAAAAAAAA{n}", type=type, timestamp=NOW, payload=payload
    )
    return await eng.map_notifications("home", envelope, parse_payload(envelope))


async def test_a_system_added_back_keeps_its_eve_name_and_its_custom_name(store: Store) -> None:
    """Wanderer keeps a removed system's custom name and sends it as ``name`` when the system
    comes back (its temporary name is cleared): the tracking keeps the EVE name from static
    info apart from the custom name, as a map load would."""
    tracking = index()
    eng = engine(store, tracking=tracking)
    await event(eng, "add_system", {"solar_system_id": ADDED, "name": "J100777"}, 1)
    renamed = {"solar_system_id": ADDED, "name": "Home", "temporary_name": "Staging"}
    await event(eng, "system_metadata_changed", renamed, 2)
    await event(eng, "deleted_system", {"solar_system_id": ADDED, "name": None}, 3)
    await event(eng, "add_system", {"solar_system_id": ADDED, "name": "Home"}, 4)
    system = tracking.map("home").systems[ADDED]
    assert (system.name, system.custom_name, system.temporary_name) == ("J100777", "Home", None)
    await event(eng, "system_metadata_changed", {"solar_system_id": ADDED, "name": "J100777"}, 5)
    assert (system.name, system.custom_name, system.display_name) == ("J100777", None, "J100777")


async def test_a_priority_system_added_back_under_its_custom_name_still_pings(
    store: Store,
) -> None:
    """``priority_system_names = ["J100777"]``: the system comes back under its custom name
    ("Home"); it is still the priority system by its EVE name, and the message shows the name
    the map shows."""
    eng = engine(store, priority_system_names=["J100777"])
    (note,) = await added(eng, {"solar_system_id": ADDED, "name": "Home"})
    assert note.body["embeds"][0]["title"] == "New System Tracked: Home"
    assert note.body["content"].startswith("@here")
