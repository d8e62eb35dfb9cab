"""Distance clauses over the simulator's stargate graph: ESI ``/route`` through the cache facade,
one call per origin/destination pair while the answer is fresh (issue 22)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from tests.enrich.conftest import EsiEnv
from wanderer_console.config import parse_settings_text
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.kills import CacheSystemInfo
from wanderer_console.ingest.items import KillItem
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.rules import judge_kill
from wanderer_console.sim.universe import stargate_route
from wanderer_console.store.base import Store
from wanderer_console.telemetry.metrics import Metrics

JITA, PERIMETER, HEK, RENS, AMARR, DODIXIE = (
    30000142,
    30000144,
    30002053,
    30002510,
    30002187,
    30002659,
)
J_SPACE = 31002238
HOOK = "https://discord.com/api/webhooks/100000000000000009/token"

CONFIG = f"""\
[console]
startup_suppression_seconds = 0

[maps.home]
url = "http://127.0.0.1:9"
api_key = "k"

[[maps.home.trackers]]
name = "near"
scope = "all"
origin_system_id = {JITA}
max_jumps = 2
webhook_url = "{HOOK}"

[[maps.home.trackers]]
name = "in range"
scope = "all"
origin_system_id = {JITA}
max_distance_ly = 4.0
webhook_url = "{HOOK}"
"""


def test_the_simulator_graph_answers_shortest_routes() -> None:
    assert stargate_route(JITA, HEK) == [JITA, PERIMETER, HEK]
    assert stargate_route(JITA, AMARR) == [JITA, DODIXIE, AMARR]
    assert stargate_route(JITA, JITA) == [JITA]
    assert stargate_route(JITA, J_SPACE) is None


async def test_esi_client_reads_routes(esi_env: EsiEnv) -> None:
    client = esi_env.client()
    found = await client.route(JITA, HEK)
    assert found.data == {"systems": [JITA, PERIMETER, HEK]}
    assert found.expires_at is not None
    missing = await client.route(JITA, J_SPACE)
    assert missing.data is None


def kill(killmail_id: int, system: int) -> KillItem:
    km = Killmail.from_wire(
        {
            "killmail_id": killmail_id,
            "system_id": system,
            "kill_time": datetime.now(UTC).isoformat(),
            "victim": {"character_id": 2112000001, "ship_type_id": 587},
            "attackers": [{"character_id": 2112000002, "final_blow": True}],
            "zkb": {"totalValue": 1e7},
        }
    )
    return KillItem(km, km.model_dump_json(), "r2z2")


async def test_jumps_and_light_years_over_the_stargate_graph(esi_env: EsiEnv, store: Store) -> None:
    clock = [time.time()]
    cache = CacheFacade(esi_env.client(), clock=lambda: clock[0])
    esi_env.fake._clock = lambda: clock[0]  # Expires follows the same clock as the cache
    esi_env.fake.expires_in = 600.0
    info = CacheSystemInfo(cache)
    settings = parse_settings_text(CONFIG, environ={})[0]
    engine = Engine(settings, store, TrackingIndex(), Metrics(), system_info=info)
    hits = esi_env.fake.hits

    # Hek: 2 jumps (near) and ~3.2 ly (in range); Rens: 3 jumps, ~5.4 ly; Amarr: 2 jumps, 10 ly.
    await engine.process_batch([kill(1, HEK), kill(2, RENS), kill(3, AMARR)])
    await engine.process_batch([kill(4, HEK)])  # the route is cached: no second call
    rows = store.due_outbox(float("inf"), limit=100)
    assert sorted(r.dedup_key for r in rows) == [
        "kill:1:tracker:webhook:100000000000000009",
        "kill:3:tracker:webhook:100000000000000009",
        "kill:4:tracker:webhook:100000000000000009",
    ]
    assert hits[f"/route/{JITA}/{HEK}"] == 1
    assert hits[f"/route/{JITA}/{RENS}"] == 1
    assert hits[f"/route/{JITA}/{AMARR}"] == 1
    assert hits[f"/universe/systems/{JITA}"] == 1  # positions, once per system

    verdicts = {
        system: {
            v.tracker: v.reason
            for v in judge_kill(
                kill(9, system).killmail,
                settings=settings,
                index=TrackingIndex(),
                now=datetime.now(UTC),
                suppressed=False,
                info=info,
            ).trackers
        }
        for system in (HEK, RENS, AMARR)
    }
    assert verdicts == {
        HEK: {"near": None, "in range": None},
        RENS: {"near": "too_many_jumps", "in range": "too_far"},
        AMARR: {"near": None, "in range": "too_far"},
    }

    clock[0] += 601  # the route answer expired: asked again, once
    await engine.process_batch([kill(5, HEK), kill(6, HEK)])
    assert hits[f"/route/{JITA}/{HEK}"] == 2


async def test_no_route_means_no_match(esi_env: EsiEnv, store: Store) -> None:
    cache = CacheFacade(esi_env.client())
    settings = parse_settings_text(CONFIG, environ={})[0]
    engine = Engine(settings, store, TrackingIndex(), Metrics(), system_info=CacheSystemInfo(cache))
    await engine.process_batch([kill(1, J_SPACE), kill(2, J_SPACE)])
    assert store.due_outbox(float("inf"), limit=10) == []
    judgement = engine.judge(kill(1, J_SPACE).killmail)
    assert {v.tracker: v.reason for v in judgement.trackers} == {
        "near": "jumps_unknown",
        "in range": "distance_unknown",  # no light-years between k-space and J-space
    }
    assert esi_env.fake.hits[f"/route/{JITA}/{J_SPACE}"] == 1  # "no route" is cached too
