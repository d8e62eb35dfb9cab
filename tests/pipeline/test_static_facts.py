"""The kill filters' static facts (wormhole class, region, security) for systems loaded with
the map (its REST system list carries none): fetched from the map's static info when a filter
asks, kept in the tracked system, fetched again after a reload of the map."""

from __future__ import annotations

from typing import Any

from tests.pipeline.test_rules_filters import NOW, STEALTH_BOMBER, WH, index, kill, settings
from wanderer_console.delivery.formatting import static_data
from wanderer_console.domain.tracking import TrackedCharacter, TrackedSystem, TrackingIndex
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.esi import EsiClient
from wanderer_console.enrich.kills import CacheSystemInfo
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.items import KillItem
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.map_updates import MapHooks, apply_static_info
from wanderer_console.sim import AppServer
from wanderer_console.sim.esi import FakeEsi
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.store.base import Store
from wanderer_console.telemetry.metrics import Metrics

STATIC = {"solar_system_id": WH, "system_class": 5, "region_id": 11000024, "security": "-1.0"}


def engine(
    store: Store, asked: list[int], answer: dict[str, Any] | None, idx: TrackingIndex
) -> Engine:
    clock = [NOW.timestamp()]
    eng = Engine(
        settings(include_security_classes=["c5"]), store, idx, Metrics(), clock=lambda: clock[0]
    )

    async def static_info(system_id: int) -> dict[str, Any] | None:
        asked.append(system_id)
        return answer

    async def refresh() -> None:
        return None

    eng.set_hooks("home", MapHooks(static_info, refresh))
    clock[0] += 60  # past start-up suppression
    return eng


async def run_kill(eng: Engine, killmail_id: int) -> None:
    km = kill(WH, killmail_id=killmail_id)
    await eng.process_batch([KillItem(km, km.model_dump_json(), "killstream")])


def queued(store: Store) -> list[str]:
    return sorted(row.dedup_key for row in store.due_outbox(float("inf"), limit=100))


async def test_a_class_filter_matches_a_system_loaded_with_the_map(store: Store) -> None:
    asked: list[int] = []
    idx = index()
    eng = engine(store, asked, STATIC, idx)
    await run_kill(eng, 1)
    assert queued(store) == ["kill:1:system_kill"]
    await run_kill(eng, 2)  # kept in the tracked system: not asked again
    assert asked == [WH]
    # A reload of the map (its resync) replaces the systems: asked again, still matched.
    idx.replace("home", [TrackedSystem(WH, "J154624")], [TrackedCharacter(1, "P")])
    await run_kill(eng, 3)
    assert queued(store) == ["kill:1:system_kill", "kill:2:system_kill", "kill:3:system_kill"]
    assert asked == [WH, WH]


async def test_a_map_without_static_info_is_not_asked_for_every_kill(store: Store) -> None:
    asked: list[int] = []
    eng = engine(store, asked, None, index())
    await run_kill(eng, 1)
    await run_kill(eng, 2)
    assert asked == [WH]
    assert queued(store) == []  # the class stays unknown: the filter does not match


async def test_a_group_clause_behind_a_class_clause_is_looked_up_too(store: Store) -> None:
    """``include_security_classes`` then ``require_victim_ship_groups``: the class clause
    stops the first decision, so the victim's type was never asked for; after the static info
    came the group was unknown and the kill was dropped. Each round now looks up what the next
    clause asks (here the type, from ESI)."""
    async with AppServer(FakeEsi(DataGenerator()).app) as esi:
        http = HttpClient("esi")
        try:
            info = CacheSystemInfo(CacheFacade(EsiClient(http, esi.url, "tests")))
            clock = [NOW.timestamp()]
            filters = settings(
                include_security_classes=["c5"], require_victim_ship_groups=[STEALTH_BOMBER]
            )
            eng = Engine(
                filters, store, index(), Metrics(), clock=lambda: clock[0], system_info=info
            )

            async def static_info(system_id: int) -> dict[str, Any] | None:
                return STATIC

            async def refresh() -> None:
                return None

            eng.set_hooks("home", MapHooks(static_info, refresh))
            clock[0] += 60  # past start-up suppression
            await run_kill(eng, 1)
        finally:
            await http.aclose()
    assert queued(store) == ["kill:1:system_kill"]


def test_the_static_info_answer_reads_the_same_wrapped_or_not() -> None:
    """The map client hands on the answer's ``data``; the whole answer gives the same facts
    to the tracking and to the system embed (one helper reads both)."""
    tracked = []
    for answer in (STATIC, {"data": STATIC}):
        system = TrackedSystem(WH, "J154624")
        apply_static_info(system, answer)
        tracked.append((system.system_class, system.region_id, system.security))
        assert static_data(answer) == STATIC
    assert tracked == [(5, 11000024, -1.0)] * 2
