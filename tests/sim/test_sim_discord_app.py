"""The fake Discord's bot-application routes, over a real socket: the gateway URL and command
registration need the bot token; an interaction is answered once, within 3 seconds.

The 3 seconds are read on the fake's injected clock, frozen here: the window closes only when a
test moves the clock, however long the requests take on a loaded machine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from wanderer_console.domain.clock import FrozenClock
from wanderer_console.sim.discord import FakeDiscord
from wanderer_console.sim.discord_gateway import FakeGateway, Interaction
from wanderer_console.sim.server import AppServer

TOKEN = "sim-bot-token"
BOT = {"authorization": f"Bot {TOKEN}"}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def api(clock: FrozenClock) -> AsyncIterator[tuple[FakeDiscord, httpx.AsyncClient]]:
    fake = FakeDiscord(bot_token=TOKEN, clock=clock)
    fake.bot_app.gateway_url = "ws://127.0.0.1:9"
    server = AppServer(fake.app)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"{server.url}/api/v10") as client:
            yield fake, client
    finally:
        await server.stop()


def _interaction(fake: FakeDiscord, clock: FrozenClock) -> Interaction:
    """An interaction sent now, as the fake gateway dates it (the clock's wall time)."""
    interaction = Interaction("1300000000000000001", "tok-1", {}, clock.wall())
    fake.bot_app.interactions[interaction.id] = interaction
    return interaction


async def test_gateway_and_commands_need_the_bot_token(
    api: tuple[FakeDiscord, httpx.AsyncClient],
) -> None:
    fake, client = api
    assert (await client.get("/gateway/bot")).status_code == 401
    answer = await client.get("/gateway/bot", headers=BOT)
    assert answer.json()["url"] == "ws://127.0.0.1:9"
    commands = [{"name": "notifier", "description": "x", "type": 1}]
    path = "/applications/1200000000000000001/guilds/900000000000000001/commands"
    assert (await client.put(path, json=commands)).status_code == 401
    registered = await client.put(path, json=commands, headers=BOT)
    assert registered.json()[0]["name"] == "notifier"
    assert fake.bot_app.commands == {"guild:900000000000000001": commands}


async def test_an_interaction_is_answered_once_within_three_seconds(
    api: tuple[FakeDiscord, httpx.AsyncClient], clock: FrozenClock
) -> None:
    fake, client = api
    interaction = _interaction(fake, clock)
    url = f"/interactions/{interaction.id}/{interaction.token}/callback"
    wrong = await client.post(f"/interactions/{interaction.id}/other/callback", json={"type": 5})
    assert wrong.json()["code"] == 10062
    clock.advance(3.0)  # the last moment of the window: still in time
    assert (await client.post(url, json={"type": 5, "data": {"flags": 64}})).status_code == 204
    assert interaction.answered_at == interaction.sent_at + 3.0  # dated on the fake's clock
    assert fake.bot_app.late_answers == 0
    assert not interaction.answered.is_set()  # deferred: no text yet
    again = await client.post(url, json={"type": 4, "data": {"content": "x"}})
    assert again.status_code == 400
    assert again.json()["code"] == 40060
    edit = f"/webhooks/1200000000000000001/{interaction.token}/messages/@original"
    assert (await client.patch(edit, json={"content": "done"})).status_code == 200
    assert interaction.final_text() == "done"
    assert interaction.answered.is_set()


async def test_a_late_answer_is_refused(
    api: tuple[FakeDiscord, httpx.AsyncClient], clock: FrozenClock
) -> None:
    fake, client = api
    interaction = _interaction(fake, clock)
    url = f"/interactions/{interaction.id}/{interaction.token}/callback"
    clock.advance(3.001)  # just past Discord's 3 seconds
    late = await client.post(url, json={"type": 4, "data": {"content": "x"}})
    assert late.status_code == 404
    assert late.json()["code"] == 10062
    assert fake.bot_app.late_answers == 1
    assert interaction.answered_at is None
    assert interaction.responses == []
    # An edit of an interaction never answered: unknown.
    edit = f"/webhooks/1200000000000000001/{interaction.token}/messages/@original"
    assert (await client.patch(edit, json={"content": "x"})).status_code == 404


async def test_the_gateway_dates_an_interaction_on_its_clock(clock: FrozenClock) -> None:
    """What the window is measured from: ``sent_at`` is the gateway's clock, the one the test
    holds (a gateway given nothing dates it on the system clock, as before)."""
    gateway = FakeGateway(clock=clock)
    interaction = await gateway.inject_interaction([])
    assert interaction.sent_at == clock.wall()
    assert gateway.interactions[interaction.id] is interaction
