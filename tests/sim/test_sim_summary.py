"""The fake Discord records what each accepted message carried; the demo's summaries count it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from wanderer_console.sim.discord import FakeDiscord, webhook_url
from wanderer_console.sim.server import AppServer
from wanderer_console.sim.simulator import ScenarioStats
from wanderer_console.sim.summary import (
    CarriedNotification,
    discord_summary,
    notifications_in,
    scenario_summary,
)


@pytest.fixture
async def discord() -> AsyncIterator[tuple[FakeDiscord, str]]:
    fake = FakeDiscord(webhook_limit=50)
    server = AppServer(fake.app)
    await server.start()
    try:
        yield fake, server.url
    finally:
        await server.stop()


def kill(killmail_id: int, *, map_name: str | None = None) -> dict[str, object]:
    footer = f"Killmail ID: {killmail_id}" + (f" • Map: {map_name}" if map_name else "")
    return {"title": "Nemesis destroyed in J123456", "footer": {"text": footer}}


def test_each_embed_is_read_once_into_kind_and_killmail_id() -> None:
    body = {
        "content": "Rally point created!",
        "embeds": [
            kill(7, map_name="Home"),
            {"title": "New System Tracked: J123456"},
            {"title": "New Character Tracked: Pilot"},
            {"title": "⚔️ Rally Point Created", "footer": {"text": "Rally ID: r1"}},
            {"title": "Something else", "footer": {"text": "Killmail ID: not-a-number"}},
        ],
    }
    carried = notifications_in("webhook:1", body)
    assert [(c.kind, c.killmail_id) for c in carried] == [
        ("kill", 7),
        ("system", None),
        ("character", None),
        ("rally", None),
        ("kill", None),
    ]
    assert notifications_in("webhook:1", {"content": "plain"}) == ()
    # The same embed to another target is another delivery, not a duplicate.
    (again,) = notifications_in("webhook:2", {"embeds": [kill(7, map_name="Home")]})
    assert isinstance(again, CarriedNotification)
    assert again.identity != carried[0].identity


async def test_summaries_come_from_what_was_accepted(discord: tuple[FakeDiscord, str]) -> None:
    fake, base = discord
    async with httpx.AsyncClient(timeout=5) as client:
        for body in (
            {"embeds": [kill(1), kill(2)]},
            {"embeds": [kill(1)]},  # delivered twice
            {"embeds": [{"title": "New System Tracked: J1"}]},
            {"content": "no embed"},
        ):
            answer = await client.post(webhook_url(base, "9"), json=body)
            assert answer.status_code == 204
        fake.disable_webhook("9")
        refused = await client.post(webhook_url(base, "9"), json={"embeds": [kill(3)]})
        assert refused.status_code == 404

    assert [[c.killmail_id for c in m.notifications] for m in fake.received] == [
        [1, 2],
        [1],
        [None],
        [],
    ]
    assert discord_summary(fake) == {
        "messages": 4,
        "per_type": {"kill": 3, "system": 1},
        "duplicate_deliveries": 1,
    }
    stats = ScenarioStats(expected_kill_ids=[1, 2, 4], untracked_kill_ids=[2, 5])
    stats.counts["tracked_system_kill"] = 3
    summary = scenario_summary(stats, fake)
    assert summary is not None
    assert summary["kills_expected"] == 3
    assert summary["kills_missing"] == [4]
    assert summary["untracked_kills_notified"] == [2]
    assert summary["sent"]["tracked_system_kill"] == 3
    assert scenario_summary(None, fake) is None
