"""A kill's messages as the engine renders them for a map's configured targets: what the map's
``discord`` settings say about the form of a kill notification."""

from __future__ import annotations

from typing import Any

from tests.pipeline.test_rules_filters import NOW, OTHER, PILOT, WH, index, kill, party, settings
from wanderer_console.config.model import Settings
from wanderer_console.domain.tracking import TrackedSystem, TrackingIndex
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.kills import KillEnricher
from wanderer_console.pipeline.engine import Engine
from wanderer_console.store.base import Store
from wanderer_console.telemetry.metrics import Metrics

HOOK = "https://discord.com/api/webhooks/1/t"
CHAR_HOOK = "https://discord.com/api/webhooks/2/t"


def engine(store: Store, **discord: object) -> Engine:
    clock = [NOW.timestamp()]
    eng = Engine(
        settings(discord={"webhook_url": HOOK, **discord}),
        store,
        index(),
        Metrics(),
        clock=lambda: clock[0],
    )
    clock[0] += 60  # past start-up suppression
    return eng


def test_a_text_only_kill_route_gets_the_plain_text_form(store: Store) -> None:
    """``text_only = ["system_kill"]``: a kill in a tracked system arrives as text, as the
    setting says for every route it names (kills were always sent as embeds)."""
    (note,) = engine(store, text_only=["system_kill"]).kill_notifications(kill(WH))
    assert note.dedup_key == "kill:1:system_kill"
    assert "embeds" not in note.body
    assert note.body["content"].split("\n")[0].startswith("**")
    assert "destroyed in J154624**" in note.body["content"].split("\n")[0]
    assert "Killmail ID: 1" in note.body["content"]
    assert note.body["allowed_mentions"] == {"parse": []}


def test_text_only_applies_to_the_named_kill_route_only(store: Store) -> None:
    """``text_only = ["character_kill"]``: a tracked pilot's kill is text; a kill only the
    system tracks (system-kill route) keeps its embed."""
    eng = engine(store, text_only=["character_kill"], character_kill_webhook_url=CHAR_HOOK)
    attackers = [party(PILOT, 98000001, final_blow=True)]
    (pilot,) = eng.kill_notifications(kill(WH, attackers=attackers))
    assert pilot.dedup_key == "kill:1:character_kill"
    assert "embeds" not in pilot.body
    assert "destroyed in" in pilot.body["content"]
    (system,) = eng.kill_notifications(kill(WH))
    assert system.dedup_key == "kill:1:system_kill"
    assert len(system.body["embeds"]) == 1


def test_a_priority_system_by_name_pings_when_the_killmail_has_no_system_name(
    store: Store,
) -> None:
    """R2Z2 and ESI killmails carry ids only: a tracked pilot's kill in a system listed in
    ``priority_system_names`` (not on the map) is known by the name the enricher looked up, and
    pings as a priority system."""
    cache = CacheFacade()
    cache.put_with_ttl("name", OTHER, ("Amamake", "solar_system"), 3600)
    clock = [NOW.timestamp()]
    eng = Engine(
        settings(priority_system_names=["amamake"]),
        store,
        index(),
        Metrics(),
        clock=lambda: clock[0],
        enricher=KillEnricher(cache),
    )
    clock[0] += 60  # past start-up suppression
    km = kill(OTHER, attackers=[party(PILOT, 98000001, final_blow=True)])
    assert km.solar_system_name is None
    (note,) = eng.kill_notifications(km)
    assert note.dedup_key == "kill:1:character_kill"
    assert note.body["content"].startswith("@here")
    assert note.body["embeds"][0]["title"].endswith("destroyed in Amamake")


def test_a_kill_for_many_maps_is_each_map_s_message_built_alone(store: Store) -> None:
    """A kill notifying several maps is built once and re-footered per map (see
    ``MessageTemplate.with_footer``): each map's message is exactly the one the engine builds
    for that map alone, whatever its name (blank, padded, longer than a footer holds), its
    form (text only) or its system's custom name."""
    names = {
        "a": "Alpha",
        "b": "  Bravo  ",
        "c": "",
        "d": "D" * 2100,
        "e": "Echo",
        "f": "Foxtrot",
    }
    extra = {"e": {"text_only": ["system_kill"]}, "f": {}}

    def maps(only: str | None = None) -> Settings:
        return Settings.model_validate(
            {
                "maps": {
                    key: {
                        "url": "http://127.0.0.1:1",
                        "api_key": "k",
                        "name": name,
                        "discord": {"webhook_url": HOOK, **extra.get(key, {})},
                    }
                    for key, name in names.items()
                    if only in (None, key)
                }
            }
        )

    def tracked(only: str | None = None) -> TrackingIndex:
        idx = TrackingIndex()
        for key in names:
            if only in (None, key):
                custom = "Home sweet home" if key == "f" else None
                idx.replace(key, [TrackedSystem(WH, "J154624", custom_name=custom)], [])
        return idx

    def notes(only: str | None = None) -> dict[str, dict[str, Any]]:
        clock = [NOW.timestamp()]
        eng = Engine(maps(only), store, tracked(only), Metrics(), clock=lambda: clock[0])
        clock[0] += 60  # past start-up suppression
        return {note.tenant: note.body for note in eng.kill_notifications(kill(WH))}

    together = notes()
    assert sorted(together) == sorted(names)
    for key in names:
        assert together[key] == notes(key)[key], key
    # What differs is the map's own: its footer (and the form and title it asked for).
    assert together["a"]["embeds"][0]["footer"]["text"] == "Killmail ID: 1 • Map: Alpha"
    assert together["b"]["embeds"][0]["footer"]["text"] == "Killmail ID: 1 • Map: Bravo"
    assert together["c"]["embeds"][0]["footer"]["text"] == "Killmail ID: 1 • Map: c"
    assert together["d"]["embeds"][0]["footer"]["text"].endswith("…")
    assert "embeds" not in together["e"]
    assert "Home sweet home" in together["f"]["embeds"][0]["title"]
