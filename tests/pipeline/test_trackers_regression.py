"""Trackers change nothing for a config without them: the same deliveries, byte for byte.

``data/recorded_kills.json`` is a recorded sequence of 100 kill frames (simulator generator,
seed 22: tracked-system and tracked-character kills, untracked and three-day-old ones, NPC kills,
repeats as a second source sends them). ``data/single_filter_deliveries.json`` holds what the
engine queued for it under a single-filter config **before trackers existed** (written by
running this module as a script against that version: ``python
tests/pipeline/test_trackers_regression.py --write``). The test runs the same sequence through
today's engine and compares every outbox row: map, idempotency key, target and body.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from wanderer_console.config.loader import parse_settings_text
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.tracking import TrackedCharacter, TrackedSystem, TrackingIndex
from wanderer_console.ingest.items import KillItem
from wanderer_console.pipeline.engine import Engine
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

DATA = Path(__file__).parent / "data"
RECORDED = DATA / "recorded_kills.json"
GOLDEN = DATA / "single_filter_deliveries.json"

CONFIG = """\
[console]
startup_suppression_seconds = 0

[maps.home]
url = "http://127.0.0.1:9"
api_key = "k"

[maps.home.discord]
webhook_url = "https://discord.com/api/webhooks/100000000000000001/home-primary"
character_kill_webhook_url = "https://discord.com/api/webhooks/100000000000000002/home-chars"

[maps.home.filters]
min_value_isk = 2000000
exclude_npc_kills = true
priority_systems = [{priority}]
corporation_kill_focus = [{focus}]

[maps.other]
url = "http://127.0.0.1:9"
api_key = "k"

[maps.other.discord]
system_kill_webhook_url = "https://discord.com/api/webhooks/100000000000000003/other-systems"
webhook_url = "https://discord.com/api/webhooks/100000000000000004/other-primary"

[maps.other.filters]
fallback_to_here = true
max_attackers = 5
"""


def deliveries() -> list[dict[str, Any]]:
    """Run the recorded sequence through the engine; every outbox row it queued, in order."""
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))
    now = datetime.fromisoformat(recorded["now"]).timestamp()
    tracking = recorded["tracking"]
    text = CONFIG.format(
        priority=tracking["home"]["systems"][0][0], focus=recorded["focus_corporation"]
    )
    settings, _ = parse_settings_text(text, environ={})
    index = TrackingIndex()
    for tenant, tracked in tracking.items():
        index.replace(
            tenant,
            [TrackedSystem(sid, name) for sid, name in tracked["systems"]],
            [TrackedCharacter(cid, name) for cid, name in tracked["characters"]],
        )
    items = [
        KillItem(Killmail.from_wire(kill), orjson.dumps(kill).decode(), "killstream")
        for kill in recorded["kills"]
    ]
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "events.db")
        try:
            engine = Engine(settings, store, index, Metrics(), clock=lambda: now)
            for start in range(0, len(items), 7):  # batches, as the pipeline takes them
                asyncio.run(engine.process_batch(items[start : start + 7]))
            rows = store.due_outbox(float("inf"), limit=10_000)
        finally:
            store.close()
    return [
        {
            "map": row.tenant_id,
            "key": row.dedup_key,
            "target": row.target_key,
            "body": orjson.loads(row.body),
        }
        for row in rows
    ]


def test_a_config_without_trackers_delivers_exactly_as_before() -> None:
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    got = deliveries()
    assert len(expected) > 20  # the recording exercises both maps and every route
    assert {row["key"].rsplit(":", 1)[1] for row in expected} == {
        "system_kill",
        "character_kill",
    }
    assert any(row["body"].get("content", "").startswith("@here") for row in expected)
    assert got == expected


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.write_text(json.dumps(deliveries(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
