"""Kill filters that read a system's ESI document (security band, constellation) for a system no
map tracks (a ``scope = "all"`` tracker): the document is looked up when a clause asks, over the
fake ESI on loopback, and the kill decided again."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.http.conftest import FaultServer, Reply
from wanderer_console.config import parse_settings_text
from wanderer_console.domain.eve import security_class
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.tracking import TrackedSystem, TrackingIndex
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.esi import EsiClient
from wanderer_console.enrich.kills import CacheSystemInfo
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.items import KillItem
from wanderer_console.pipeline.engine import Engine
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.server import AppServer
from wanderer_console.store.base import Store
from wanderer_console.telemetry.metrics import Metrics

from .conftest import EsiEnv

HOOK = "https://discord.com/api/webhooks/100000000000000007/token"


async def test_a_security_clause_on_a_scope_all_tracker_reads_the_system_from_esi(
    esi_env: EsiEnv, store: Store
) -> None:
    system = next(s for s in esi_env.gen.systems.values() if 30_000_000 <= s.id < 31_000_000)
    band = security_class(system.id, system.security_status).value
    settings = parse_settings_text(
        f"""\
[console]
startup_suppression_seconds = 0

[maps.home]
url = "http://127.0.0.1:9"
api_key = "k"

[maps.home.discord]
webhook_url = "{HOOK}"

[[maps.home.trackers]]
name = "band"
scope = "all"
include_security_classes = ["{band}"]
""",
        environ={},
    )[0]
    index = TrackingIndex()
    index.replace("home", [], [])
    now = datetime.now(UTC).timestamp()
    engine = Engine(
        settings,
        store,
        index,
        Metrics(),
        clock=lambda: now,
        system_info=CacheSystemInfo(CacheFacade(esi_env.client())),
    )
    km = Killmail.from_wire(esi_env.gen.make_killmail(system_id=system.id))
    await engine.process_batch([KillItem(km, km.model_dump_json(), "r2z2")])
    rows = store.due_outbox(float("inf"), limit=10)
    assert [row.dedup_key for row in rows] == [
        f"kill:{km.killmail_id}:tracker:webhook:100000000000000007"
    ]


async def test_a_system_document_with_garbled_fields_does_not_drop_the_kill(store: Store) -> None:
    """An ESI system document whose ``security_status`` or ``constellation_id`` is not a number
    raised ``ValueError`` out of the (synchronous) rules: the pipeline dropped the whole kill,
    the map's own notification of a kill in its tracked system with it. Such a field now reads
    as unknown: the tracker's clause does not match, the map is still told."""
    jita = 30_000_142
    faults = FaultServer()
    faults.always(
        f"/universe/systems/{jita}",
        Reply(
            200, {}, b'{"system_id": 30000142, "security_status": "high", "constellation_id": "x"}'
        ),
    )
    server = AppServer(faults.app())
    await server.start()
    http = HttpClient("esi", timeout=5.0)
    settings = parse_settings_text(
        f"""\
[console]
startup_suppression_seconds = 0

[maps.home]
url = "http://127.0.0.1:9"
api_key = "k"

[maps.home.discord]
webhook_url = "{HOOK}"

[[maps.home.trackers]]
name = "band"
scope = "all"
include_security_classes = ["high"]
""",
        environ={},
    )[0]
    index = TrackingIndex()
    index.replace("home", [TrackedSystem(jita, "Jita")], [])
    now = datetime.now(UTC).timestamp()
    metrics = Metrics()
    try:
        info = CacheSystemInfo(CacheFacade(EsiClient(http, server.url, "tests")))
        engine = Engine(settings, store, index, metrics, clock=lambda: now, system_info=info)
        km = Killmail.from_wire(DataGenerator(7).make_killmail(system_id=jita))
        await engine.process_batch([KillItem(km, km.model_dump_json(), "r2z2")])
        assert faults.count(f"/universe/systems/{jita}") == 1  # the tracker's clause asked
        rows = store.due_outbox(float("inf"), limit=10)
        assert [row.dedup_key for row in rows] == [f"kill:{km.killmail_id}:system_kill"]
        assert info.security_status(jita) is None
        assert info.constellation_id(jita) is None
        assert info.malformed >= 2  # counted, not raised
    finally:
        await http.aclose()
        await server.stop()
