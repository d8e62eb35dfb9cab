"""FakeDiscord over real HTTP: webhook/bot routes, rate limits, validation, disabled hooks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from wanderer_console.domain.clock import FrozenClock
from wanderer_console.sim.discord import FakeDiscord, webhook_url
from wanderer_console.sim.server import AppServer

RATE_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Reset-After",
    "X-RateLimit-Bucket",
)


@pytest.fixture
async def discord() -> AsyncIterator[tuple[FakeDiscord, str]]:
    # Its clock stands still: a window ends only when a test says so, never because a loaded
    # machine took 2 s between the posts that were to fall in it.
    fake = FakeDiscord(webhook_limit=5, webhook_window=2.0, bot_token="secret", clock=FrozenClock())
    server = AppServer(fake.app)
    await server.start()
    try:
        yield fake, server.url
    finally:
        await server.stop()


def embed(title: str = "Nemesis destroyed") -> dict[str, object]:
    return {"title": title, "fields": [{"name": "Value", "value": "84.5M ISK", "inline": True}]}


async def test_webhook_204_and_wait_200(discord: tuple[FakeDiscord, str]) -> None:
    fake, base = discord
    url = webhook_url(base, "111", "tok")
    async with httpx.AsyncClient(timeout=5) as client:
        plain = await client.post(url, json={"content": "hello"})
        assert plain.status_code == 204
        for name in RATE_HEADERS:
            assert name in plain.headers
        assert plain.headers["X-RateLimit-Limit"] == "5"
        assert plain.headers["X-RateLimit-Remaining"] == "4"
        waited = await client.post(
            f"{base}/api/v10/webhooks/111/tok", params={"wait": "true"}, json={"embeds": [embed()]}
        )
    assert waited.status_code == 200
    message = waited.json()
    assert isinstance(message["id"], str)
    assert message["id"].isdigit()
    assert message["channel_id"] == fake.webhook_channel("111")
    assert message["embeds"][0]["title"] == "Nemesis destroyed"
    assert message["webhook_id"] == "111"
    assert [m.target for m in fake.received] == ["webhook:111", "webhook:111"]
    assert fake.received[1].message_id == message["id"]
    assert fake.received[0].body == {"content": "hello"}
    assert fake.requests == 2


async def test_rate_limit_429(discord: tuple[FakeDiscord, str]) -> None:
    fake, base = discord
    url = webhook_url(base, "222")
    async with httpx.AsyncClient(timeout=5) as client:
        statuses = [
            (await client.post(url, json={"content": f"m{i}"})).status_code for i in range(5)
        ]
        limited = await client.post(url, json={"content": "too many"})
        other = await client.post(webhook_url(base, "333"), json={"content": "other hook"})
    assert statuses == [204] * 5
    assert limited.status_code == 429
    body = limited.json()
    assert body["message"] == "You are being rate limited."
    assert body["global"] is False
    assert body["retry_after"] == 2.0  # the whole window: the fake's clock stands still
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    for name in RATE_HEADERS:
        assert name in limited.headers
    assert other.status_code == 204
    assert fake.rejected_429 == 1
    assert len(fake.received) == 6


async def test_validation_400(discord: tuple[FakeDiscord, str]) -> None:
    fake, base = discord
    url = webhook_url(base, "444")
    async with httpx.AsyncClient(timeout=5) as client:
        too_many = await client.post(url, json={"embeds": [embed() for _ in range(11)]})
        long_title = await client.post(url, json={"embeds": [embed("x" * 257)]})
        empty = await client.post(url, json={"content": "   "})
        total = await client.post(
            webhook_url(base, "445"),
            json={"embeds": [{"description": "d" * 4000} for _ in range(2)]},
        )
    assert too_many.status_code == 400
    assert too_many.json()["code"] == 50035
    assert too_many.json()["message"] == "Invalid Form Body"
    assert long_title.status_code == 400
    assert "title" in long_title.json()["errors"]["embeds"]["0"]
    assert empty.status_code == 400
    assert empty.json()["code"] == 50006
    assert total.status_code == 400
    assert fake.rejected_400 == 4
    assert fake.received == []


async def test_disabled_webhook_404(discord: tuple[FakeDiscord, str]) -> None:
    fake, base = discord
    fake.disable_webhook("555")
    async with httpx.AsyncClient(timeout=5) as client:
        resp = await client.post(webhook_url(base, "555"), json={"content": "hi"})
    assert resp.status_code == 404
    assert resp.json() == {"code": 10015, "message": "Unknown Webhook"}
    assert fake.rejected_404 == 1
    assert fake.received == []


async def test_bot_auth(discord: tuple[FakeDiscord, str]) -> None:
    fake, base = discord
    url = f"{base}/api/v10/channels/777/messages"
    async with httpx.AsyncClient(timeout=5) as client:
        denied = await client.post(url, json={"content": "hi"})
        wrong = await client.post(url, json={"content": "hi"}, headers={"Authorization": "Bot x"})
        ok = await client.post(
            url, json={"embeds": [embed()]}, headers={"Authorization": "Bot secret"}
        )
    assert denied.status_code == 401
    assert denied.json() == {"message": "401: Unauthorized", "code": 0}
    assert wrong.status_code == 401
    assert ok.status_code == 200
    assert ok.json()["channel_id"] == "777"
    assert "X-RateLimit-Bucket" in ok.headers
    assert [m.target for m in fake.received] == ["channel:777"]
    assert fake.received[0].headers["authorization"] == "Bot secret"


async def test_channel_per_minute_limit() -> None:
    # The channel's minute is the test's (a frozen clock), not a race with the wall clock.
    fake = FakeDiscord(webhook_limit=100, channel_per_minute=2, clock=FrozenClock())
    fake.register_webhook("1", "tok", channel_id="42")
    fake.register_webhook("2", "tok", channel_id="42")
    server = AppServer(fake.app)
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            first = await client.post(webhook_url(server.url, "1"), json={"content": "a"})
            second = await client.post(webhook_url(server.url, "2"), json={"content": "b"})
            third = await client.post(webhook_url(server.url, "1"), json={"content": "c"})
            bad_token = await client.post(webhook_url(server.url, "1", "x"), json={"content": "d"})
    finally:
        await server.stop()
    assert [first.status_code, second.status_code, third.status_code] == [204, 204, 429]
    assert third.json()["retry_after"] == 60.0  # the channel's whole minute: the clock stands
    assert bad_token.status_code == 401


async def test_footer_without_text_and_author_without_name_are_refused(
    discord: tuple[FakeDiscord, str],
) -> None:
    """Discord requires ``footer.text`` and ``author.name`` whenever the object is sent (its
    embed footer and author structures): a footer of only an icon, or a blank author name, is a
    400 there, so the fake refuses it too instead of passing a body Discord would lose."""
    fake, base = discord
    url = webhook_url(base, "446")
    icon = "https://images.evetech.net/types/1/icon"
    bodies = [
        {"embeds": [{"title": "t", "footer": {"icon_url": icon}}]},
        {"embeds": [{"title": "t", "footer": {"text": "  "}}]},
        {"embeds": [{"title": "t", "author": {"url": "https://zkillboard.com/"}}]},
        {"embeds": [{"title": "t", "author": {"name": ""}}]},
    ]
    async with httpx.AsyncClient(timeout=5) as client:
        answers = [await client.post(url, json=body) for body in bodies]
        fine = await client.post(
            url, json={"embeds": [{"title": "t", "footer": {"text": "f"}, "author": {"name": "a"}}]}
        )
    assert [a.status_code for a in answers] == [400] * 4
    assert "text" in answers[0].json()["errors"]["embeds"]["0"]["footer"]
    assert "name" in answers[2].json()["errors"]["embeds"]["0"]["author"]
    assert fine.status_code == 204
    assert fake.rejected_400 == 4
    assert len(fake.received) == 1


async def test_more_than_100_mentioned_roles_or_users_are_refused(
    discord: tuple[FakeDiscord, str],
) -> None:
    """Discord lists at most 100 ids in ``allowed_mentions.roles`` and ``.users`` (its allowed
    mentions structure) and answers 400 to more."""
    fake, base = discord
    url = webhook_url(base, "447")
    ids = [str(1_000_000_000_000_000 + i) for i in range(101)]
    async with httpx.AsyncClient(timeout=5) as client:
        roles = await client.post(
            url, json={"content": "x", "allowed_mentions": {"parse": [], "roles": ids}}
        )
        users = await client.post(
            url, json={"content": "x", "allowed_mentions": {"parse": [], "users": ids}}
        )
        hundred = await client.post(
            url, json={"content": "x", "allowed_mentions": {"roles": ids[:100], "users": ids[1:]}}
        )
    assert roles.status_code == 400
    assert "roles" in roles.json()["errors"]["allowed_mentions"]
    assert users.status_code == 400
    assert "users" in users.json()["errors"]["allowed_mentions"]
    assert hundred.status_code == 204
    assert len(fake.received) == 1


async def test_an_embed_timestamp_that_is_not_iso8601_is_refused(
    discord: tuple[FakeDiscord, str],
) -> None:
    """Discord answers 400 ("Could not parse 1500218461229. Should be ISO8601.") to an embed
    ``timestamp`` that is not an ISO 8601 date and time; the fake did not look at it."""
    fake, base = discord
    url = webhook_url(base, "448")
    async with httpx.AsyncClient(timeout=5) as client:
        bad = [
            await client.post(url, json={"embeds": [{"title": "t", "timestamp": stamp}]})
            for stamp in (1500218461229, "yesterday", "2026-13-01T00:00:00Z")
        ]
        good = [
            await client.post(url, json={"embeds": [{"title": "t", "timestamp": stamp}]})
            for stamp in ("2026-01-10T18:20:41Z", "2026-01-10T18:20:41.123456+00:00")
        ]
    assert [a.status_code for a in bad] == [400] * 3
    error = bad[0].json()["errors"]["embeds"]["0"]["timestamp"]["_errors"][0]["message"]
    assert error == "Could not parse 1500218461229. Should be ISO8601."
    assert [a.status_code for a in good] == [204] * 2
    assert len(fake.received) == 2


async def test_an_embed_colour_out_of_range_is_refused(discord: tuple[FakeDiscord, str]) -> None:
    """Discord takes an embed ``color`` from 0 to 0xFFFFFF (16777215) and answers 400 to any
    other; the fake took any value."""
    fake, base = discord
    url = webhook_url(base, "449")
    async with httpx.AsyncClient(timeout=5) as client:
        answers = [
            await client.post(url, json={"embeds": [{"title": "t", "color": color}]})
            for color in (0x1000000, -1, "red", 0, 0xFFFFFF)
        ]
    assert [a.status_code for a in answers] == [400, 400, 400, 204, 204]
    assert "color" in answers[0].json()["errors"]["embeds"]["0"]
    assert len(fake.received) == 2
