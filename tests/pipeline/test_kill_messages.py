"""A kill's messages as the engine renders them for a map's configured targets: what the map's
``discord`` settings say about the form of a kill notification."""

from __future__ import annotations

from tests.pipeline.test_rules_filters import NOW, OTHER, PILOT, WH, index, kill, party, settings
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
