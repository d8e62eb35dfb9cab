"""``kill KILLMAIL_ID --hash H``: one ESI killmail through every map's rules, over real sockets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wanderer_console.config import Settings
from wanderer_console.pipeline.diagnose import DiagnoseError, diagnose_kill
from wanderer_console.sim import AppServer, Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def esi_app(kills: dict[tuple[int, str], dict[str, Any]]) -> Starlette:
    async def killmail(request: Request) -> JSONResponse:
        key = (int(request.path_params["id"]), request.path_params["hash"])
        if key not in kills:
            return JSONResponse({"error": "Invalid killmail_id and/or killmail_hash"}, 404)
        return JSONResponse(kills[key])

    return Starlette(routes=[Route("/killmails/{id}/{hash}/", killmail)])


def esi_shape(km: dict[str, Any]) -> dict[str, Any]:
    """The ESI form of a generated killmail: killmail_time, solar_system_id, no names or zkb."""
    strip = (
        "character_name",
        "corporation_name",
        "corporation_ticker",
        "alliance_name",
        "alliance_ticker",
        "ship_name",
    )
    return {
        "killmail_id": km["killmail_id"],
        "killmail_time": km["kill_time"],
        "solar_system_id": km["system_id"],
        "victim": {k: v for k, v in km["victim"].items() if k not in strip},
        "attackers": [{k: v for k, v in a.items() if k not in strip} for a in km["attackers"]],
    }


async def test_diagnosis_names_routes_and_reasons() -> None:
    async with Simulator(seed=4) as sim:
        gen = sim.generator
        week_old = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
        tracked = gen.make_killmail(
            system_id=sorted(sim.tracked_system_ids)[0],
            kill_time=week_old,
            exclude_character_ids=sim.tracked_character_ids,
        )
        elsewhere = gen.make_killmail(
            system_id=30002187, exclude_character_ids=sim.tracked_character_ids
        )
        kills = {
            (tracked["killmail_id"], "h1"): esi_shape(tracked),
            (elsewhere["killmail_id"], "h2"): esi_shape(elsewhere),
        }
        async with AppServer(esi_app(kills)) as esi:
            settings = Settings.model_validate(
                {
                    "esi": {"url": esi.url},
                    "maps": {
                        "demo": {
                            "url": sim.map_url,
                            "api_key": sim.map_api_key,
                            "discord": {"webhook_url": sim.webhook_url("primary")},
                        }
                    },
                }
            )
            verdict = await diagnose_kill(settings, tracked["killmail_id"], "h1")
            assert verdict["system_id"] == tracked["system_id"]
            demo = verdict["maps"]["demo"]
            assert demo["notify"] is True  # a week old, but the age gate is ignored
            assert demo["route"] == "system_kill"
            assert demo["target"] == f"webhook:{sim.webhook_id('primary')}"
            assert demo["embeds"][0]["url"].endswith(f"/kill/{tracked['killmail_id']}/")

            untracked = await diagnose_kill(settings, elsewhere["killmail_id"], "h2")
            assert untracked["maps"]["demo"] == {
                "notify": False,
                "reason": "untracked",
                "explanation": "no map tracks the system or any character on the kill",
            }

            with pytest.raises(DiagnoseError, match="not found"):
                await diagnose_kill(settings, 1, "nope")
    assert sim.discord.received == []  # a diagnosis never sends


async def test_diagnosis_explains_each_tracker() -> None:
    """``kill ID`` per tracker: matched and where it posts, or the first clause it failed; the
    jumps come from the fake ESI's stargate graph (Jita-Perimeter-Hek, Jita-Tama-Amamake-Rens)."""
    async with Simulator(seed=4) as sim:
        gen = sim.generator
        assert sim.esi is not None
        near = gen.make_killmail(
            system_id=30002053, exclude_character_ids=sim.tracked_character_ids
        )
        far = gen.make_killmail(system_id=30002510, exclude_character_ids=sim.tracked_character_ids)
        kills = {
            (near["killmail_id"], "h1"): esi_shape(near),
            (far["killmail_id"], "h2"): esi_shape(far),
        }
        app = Starlette(routes=[*esi_app(kills).routes, *sim.esi.app.routes])
        async with AppServer(app) as esi:
            settings = Settings.model_validate(
                {
                    "esi": {"url": esi.url},
                    "maps": {
                        "demo": {
                            "url": sim.map_url,
                            "api_key": sim.map_api_key,
                            "discord": {"webhook_url": sim.webhook_url("primary")},
                            "trackers": [
                                {
                                    "name": "near",
                                    "scope": "all",
                                    "origin_system_id": 30000142,
                                    "max_jumps": 2,
                                    "webhook_url": sim.webhook_url("caps"),
                                },
                                {"name": "off", "enabled": False},
                            ],
                        }
                    },
                }
            )
            hit = await diagnose_kill(settings, near["killmail_id"], "h1")
            missed = await diagnose_kill(settings, far["killmail_id"], "h2")
    trackers = hit["maps"]["demo"]["trackers"]
    assert trackers["near"] == {"matched": True, "target": f"webhook:{sim.webhook_id('caps')}"}
    assert trackers["default"]["reason"] == "untracked"
    assert trackers["off"]["reason"] == "tracker_disabled"
    assert missed["maps"]["demo"]["trackers"]["near"] == {
        "matched": False,
        "reason": "too_many_jumps",
        "explanation": "filters/tracker: more stargate jumps from origin_system_id than max_jumps",
    }
    assert sim.esi.hits["/route/30000142/30002053"] == 1
    assert sim.discord.received == []  # a diagnosis never sends


async def test_diagnosis_looks_up_what_the_engine_looks_up() -> None:
    """A map that wants the kill's region (map static info) and the victim's ship group (ESI
    types): the engine looks both up before it decides, and so does ``kill ID``; without them
    the diagnosis said "region unknown" for a kill the engine notified."""
    async with Simulator(seed=4) as sim:
        gen = sim.generator
        assert sim.esi is not None
        system = gen.system(sorted(sim.tracked_system_ids)[0])
        km = gen.make_killmail(system_id=system.id, exclude_character_ids=sim.tracked_character_ids)
        ship = gen.ship_types[km["victim"]["ship_type_id"]]
        kills = {(km["killmail_id"], "h1"): esi_shape(km)}
        app = Starlette(routes=[*esi_app(kills).routes, *sim.esi.app.routes])
        async with AppServer(app) as esi:
            settings = Settings.model_validate(
                {
                    "esi": {"url": esi.url},
                    "maps": {
                        "demo": {
                            "url": sim.map_url,
                            "api_key": sim.map_api_key,
                            "discord": {"webhook_url": sim.webhook_url("primary")},
                            "filters": {
                                "require_regions": [system.region_id],
                                "require_victim_ship_groups": [ship.group_id],
                            },
                        }
                    },
                }
            )
            verdict = await diagnose_kill(settings, km["killmail_id"], "h1")
    demo = verdict["maps"]["demo"]
    assert (demo["notify"], demo.get("reason")) == (True, None)
    assert sim.esi.hits[f"/universe/types/{ship.type_id}"] == 1
    assert sim.discord.received == []
