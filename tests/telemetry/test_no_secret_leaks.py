"""No secret reaches a log line, a metric label, an error message or the runtime snapshot.

The simulator and a runtime run with every kind of secret set (map API keys, a bot token,
webhook URL tokens, a webhook-receiver secret, an ingest key), and the usual failures happen: a
webhook answers 404, a map refuses its key with 401, a request carries a bad key or signature.
Everything the console then says is searched for each secret value.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from tests.server.conftest import WEBHOOK_SECRET, server_settings
from tests.support import wait_for
from tests.telemetry.conftest import JsonCapture
from wanderer_console.config.model import MapSettings
from wanderer_console.runtime import Runtime
from wanderer_console.server.webhook import sign
from wanderer_console.sim import Simulator
from wanderer_console.sim.discord import webhook_url
from wanderer_console.telemetry.logging import JsonFormatter

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

DEAD_WEBHOOK_ID = "1299999999999999999"
DEAD_TOKEN = "dead-" + secrets.token_urlsafe(40)
WRONG_MAP_KEY = "wrong-map-key-" + secrets.token_hex(16)


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {"seed": 11}


def _secrets(sim: Simulator, runtime: Runtime) -> dict[str, str]:
    """Every secret value the runtime holds, by where it comes from."""
    out = {
        "webhook secret": WEBHOOK_SECRET,
        "bot token": sim.bot_token,
        "dead webhook token": DEAD_TOKEN,
        "wrong map key": WRONG_MAP_KEY,
        "map key": sim.map_api_key,
    }
    home = runtime.settings.maps[sim.map_slug].discord
    for name in ("webhook_url", "system_kill_webhook_url", "rally_webhook_url"):
        url = getattr(home, name)
        assert url is not None
        out[f"{name} token"] = url.get_secret_value().rsplit("/", 1)[-1]
    return out


async def test_no_secret_in_logs_metrics_errors_or_snapshot(
    sim: Simulator, tmp_path: Path, json_logs: JsonCapture, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = server_settings(sim, tmp_path)
    home = settings.maps[sim.map_slug]
    # Character notifications go to a webhook Discord no longer knows (404 → disabled).
    sim.discord.register_webhook(DEAD_WEBHOOK_ID, DEAD_TOKEN)
    sim.discord.disable_webhook(DEAD_WEBHOOK_ID)
    home.discord.character_webhook_url = SecretStr(
        webhook_url(sim.discord_url, DEAD_WEBHOOK_ID, DEAD_TOKEN)
    )
    # A second map with the wrong key: the map server answers 401.
    settings.maps["stale"] = MapSettings(
        url=sim.map_url,
        slug=sim.map_slug,
        api_key=SecretStr(WRONG_MAP_KEY),
        discord=home.discord.model_copy(),
    )
    runtime = Runtime(settings, data_dir=tmp_path)
    await runtime.start()
    try:
        values = _secrets(sim, runtime)
        assert runtime.http is not None, runtime.http_error
        ingest_key = runtime.http.tenants.add(sim.map_slug)
        values["ingest key"] = ingest_key

        def stale_refused() -> bool:
            conns = runtime.snapshot()["connections"]
            return any("401" in str(c["last_error"]) for c in conns)

        await wait_for(stale_refused)

        def home_connected() -> bool:
            states = [c["state"] for c in runtime.snapshot()["connections"]]
            return states.count("connected") >= 3

        await wait_for(home_connected)

        # A system over the bot channel, a character to the dead webhook, a kill to a webhook.
        system = sim.generator.new_system(wormhole=True)
        sim.map.add_system(system.system_id, name=system.name)
        pilot = sim.generator.new_character()
        sim.map.add_character(pilot.eve_id, pilot.name)
        km = sim.generator.make_killmail(
            system_id=sorted(sim.tracked_system_ids)[0],
            exclude_character_ids=sim.tracked_character_ids,
        )
        await sim.killstream.push_kill(km)

        async with httpx.AsyncClient(base_url=runtime.http.url, timeout=10.0) as client:
            ok = await client.post(
                "/api/v1/events",
                json={"title": "Fleet forming"},
                headers={"authorization": f"Bearer {ingest_key}"},
            )
            assert ok.status_code == 200
            bad = await client.post(
                "/api/v1/events",
                json={"title": "nope"},
                headers={"authorization": f"Bearer {ingest_key}x"},
            )
            assert bad.status_code == 401
            body = orjson.dumps({"id": "x"})
            stamp = str(int(time.time()))
            forged = await client.post(
                f"/api/v1/maps/{sim.map_slug}/webhook",
                content=body,
                headers={
                    "x-wanderer-timestamp": stamp,
                    "x-wanderer-signature": sign(WEBHOOK_SECRET + "x", stamp, body),
                },
            )
            assert forged.status_code == 401
            answers = [r.text + json.dumps(dict(r.headers)) for r in (ok, bad, forged)]

        await wait_for(lambda: sim.discord.rejected_404 >= 1)
        await wait_for(lambda: runtime.dispatcher.state(f"webhook:{DEAD_WEBHOOK_ID}").sent == 0)
        await wait_for(lambda: runtime.dispatcher.state(f"webhook:{DEAD_WEBHOOK_ID}").last_error)
        await wait_for(lambda: len(sim.discord.received) >= 2)
        await runtime.drain(timeout=2.0)

        snapshot = json.dumps(runtime.snapshot(), default=str)
        exposition = runtime.metrics.exposition().decode()
    finally:
        await runtime.stop()

    formatter = JsonFormatter()
    raw = [f"{r.getMessage()} {getattr(r, 'ctx', '')} {r.exc_text or ''}" for r in caplog.records]
    lines = [formatter.format(r) for r in caplog.records]
    conn = sqlite3.connect(tmp_path / "wanderer-console.db")
    try:
        stored_errors = [str(e) for (e,) in conn.execute("SELECT last_error FROM outbox")]
    finally:
        conn.close()
    places = {
        "json log lines": json_logs.text,
        "formatted records": "\n".join(lines),
        "raw log records": "\n".join(raw),
        "metrics": exposition,
        "snapshot": snapshot,
        "outbox errors": "\n".join(stored_errors),
        "http answers": "\n".join(answers),
    }
    # The failures really happened, and were reported (redacted) where the operator looks.
    assert '"status":404' in json_logs.text
    assert "notification delivery failed" in json_logs.text
    assert "401" in snapshot
    assert f"/webhooks/{DEAD_WEBHOOK_ID}/***" in places["raw log records"]  # httpx, redacted
    assert "dead_target" in exposition or "wc_targets_disabled_total 1.0" in exposition
    leaks = [
        f"{what} in {where}"
        for what, value in values.items()
        for where, text in places.items()
        if value in text
    ]
    culprits = [
        f"{r.name}: {r.getMessage()[:200]}"
        for r in caplog.records
        if any(v in f"{r.getMessage()} {getattr(r, 'ctx', '')}" for v in values.values())
    ]
    assert leaks == [], (leaks, culprits)
