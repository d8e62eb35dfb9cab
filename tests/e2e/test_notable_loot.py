"""Notable loot end to end (PARITY.md §4.7): a notified kill's dropped items are read from its
ESI killmail, appraised by Janice (the simulator's fake), and the notable ones listed in the
kill embed; the Janice token never shows in logs, the snapshot or the saved settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.support import wait_for
from wanderer_console.config.model import Settings
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.sim.janice import FakeJanice
from wanderer_console.sim.server import AppServer

TOKEN = "sim-janice-token-5f2c9d"


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every log line with its context (``ctx``), as the JSON logs would carry it."""
    return "\n".join(f"{r.getMessage()} {getattr(r, 'ctx', '')}" for r in caplog.records)


@pytest.fixture
async def janice() -> AsyncIterator[tuple[FakeJanice, str]]:
    fake = FakeJanice(TOKEN)
    app = AppServer(fake.app)
    await app.start()
    try:
        yield fake, app.url
    finally:
        await app.stop()


def janice_settings(sim: Simulator, tmp_path: Path, url: str, token: str) -> Settings:
    """The demo settings with Janice on, at the fake's ``url``, with ``token``."""
    settings = demo_settings(sim, data_dir=tmp_path)
    settings.janice.enabled = True
    settings.janice.api_token = SecretStr(token)
    settings.janice.url = url
    return settings


async def kill_delivered(
    sim: Simulator, runtime: Runtime, items: list[dict[str, Any]], what: str
) -> dict[str, Any]:
    """Push a kill in a tracked system whose ESI killmail lists ``items``; its delivered embed."""
    assert sim.esi is not None
    system = sorted(sim.tracked_system_ids)[0]
    await wait_for(lambda: runtime.kills.following({system}), 20, "followed")
    kill = sim.generator.make_killmail(
        system_id=system, exclude_character_ids=sim.tracked_character_ids
    )
    kid = int(kill["killmail_id"])
    sim.esi.killmails[kid] = {"killmail_id": kid, "victim": {"items": items}}
    await sim.killstream.push_kill(kill)
    footer = f"Killmail ID: {kid}"

    def embed() -> dict[str, Any] | None:
        for e in sim.discord.embeds:
            if str((e.get("footer") or {}).get("text", "")).startswith(footer):
                return e
        return None

    delivered: dict[str, Any] = await wait_for(embed, 20, what)
    return delivered


async def test_a_kill_lists_its_notable_dropped_items(
    sim: Simulator,
    janice: tuple[FakeJanice, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, url = janice
    settings = janice_settings(sim, tmp_path, url, TOKEN)
    ships = sorted(sim.generator.ship_types.values(), key=lambda s: s.type_id)
    pricey, cheap = ships[0], ships[1]
    fake.prices = {pricey.name: 30_000_000.0, cheap.name: 1_000_000.0}
    runtime = Runtime(settings, data_dir=tmp_path / "data")
    with caplog.at_level(logging.DEBUG, logger="wanderer_console"):
        await runtime.start()
        try:
            items: list[dict[str, Any]] = [
                {"item_type_id": pricey.type_id, "quantity_dropped": 2, "flag": 5},
                {"item_type_id": cheap.type_id, "quantity_dropped": 1, "flag": 5},
                {"item_type_id": pricey.type_id, "quantity_destroyed": 4, "flag": 5},
            ]
            delivered = await kill_delivered(sim, runtime, items, "the kill delivered")
            snapshot = str(runtime.snapshot())
        finally:
            await runtime.stop()
    description = delivered["description"]
    # Two dropped of the pricey one (60M, over the 50M threshold); the cheap one is not notable;
    # destroyed items are not loot.
    assert f"**Notable Items:**\n• {pricey.name} x2 (~60.0M ISK)" in description
    assert cheap.name not in description
    (request,) = fake.requests
    assert request["key_ok"]
    assert sorted(request["lines"]) == sorted([f"{pricey.name} 2", f"{cheap.name} 1"])
    assert request["query"]["market"] == "2"
    # The token is a secret: nowhere in the logs, the snapshot or the settings as dumped.
    assert TOKEN not in _logged(caplog)
    assert TOKEN not in snapshot
    assert TOKEN not in str(settings.redacted())


async def test_a_refused_token_still_notifies_the_kill(
    sim: Simulator,
    janice: tuple[FakeJanice, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, url = janice
    settings = janice_settings(sim, tmp_path, url, "wrong-" + TOKEN)
    ship = min(sim.generator.ship_types.values(), key=lambda s: s.type_id)
    fake.prices = {ship.name: 90_000_000.0}
    runtime = Runtime(settings, data_dir=tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="wanderer_console"):
        await runtime.start()
        try:
            items = [{"item_type_id": ship.type_id, "quantity_dropped": 1, "flag": 5}]
            delivered = await kill_delivered(
                sim, runtime, items, "the kill delivered without the list"
            )
        finally:
            await runtime.stop()
    assert "Notable Items" not in delivered["description"]
    assert "Janice refused the token (401)" in _logged(caplog)
    assert TOKEN not in _logged(caplog)
