"""Names a kill's embed shows when the killmail lacks them: looked up through the cache facade
(fake ESI over loopback), then rendered."""

from __future__ import annotations

from wanderer_console.delivery import embeds
from wanderer_console.domain.killmail import Killmail
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.kills import KillEnricher
from wanderer_console.sim.universe import STRUCTURE_TYPE_IDS

from .conftest import EsiEnv


async def test_a_structure_loss_names_its_corporation_when_only_the_ticker_came(
    esi_env: EsiEnv,
) -> None:
    """A structure has no pilot: the embed names its owner corporation. The killstream may send
    the corporation's ticker without its name (PROTOCOLS.md §4's example victim): the name is
    looked up, never shown as "Unknown Pilot"."""
    wire = esi_env.gen.make_killmail(victim_ship_type_id=min(STRUCTURE_TYPE_IDS))
    victim = wire["victim"]
    assert "character_id" not in victim
    corporation = esi_env.gen.corporations[victim["corporation_id"]]
    del victim["corporation_name"]
    km = Killmail.from_wire(wire)
    enricher = KillEnricher(CacheFacade(esi_env.client()))
    if not enricher.complete(km):
        await enricher.prefetch(km)
    story = embeds.kill_story(km, enricher.names(km))
    assert story.description.startswith(f"**[{corporation.name}](")
    assert "Unknown Pilot" not in story.description.split(" lost their ")[0]
