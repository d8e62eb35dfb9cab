"""The Discord gateway client against the fake gateway, over a real websocket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.support import wait_for
from wanderer_console.delivery.discord_app import DiscordApp
from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.http import build_client
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.ingest.gateway import GIVE_UP_RESUME_AFTER, DiscordGateway
from wanderer_console.ingest.gateway_protocol import (
    INTENTS,
    Dispatch,
    GatewayError,
    GatewayLocation,
    GatewaySession,
)
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.sim.discord import FakeDiscord
from wanderer_console.sim.discord_gateway import FakeGateway, FakeGuild
from wanderer_console.sim.server import AppServer
from wanderer_console.telemetry.metrics import Metrics

GUILD = "900000000000000001"


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    guild = FakeGuild(GUILD, afk_channel_id="910", voice_channels=["901", "902"])
    gateway = FakeGateway(heartbeat_interval_ms=150, guilds=[guild])
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


class _Run:
    def __init__(
        self,
        fake: FakeGateway,
        token: str = "sim-bot-token",
        backoff: float = 0.05,
        where: Callable[[], Awaitable[str | GatewayLocation]] | None = None,
    ) -> None:
        self.received: list[Dispatch] = []
        self.metrics = Metrics()
        self.locates = 0

        async def locate() -> str | GatewayLocation:
            self.locates += 1
            return fake.url if where is None else await where()

        async def seen(event: Dispatch) -> None:
            self.received.append(event)

        self.gateway = DiscordGateway(
            token,
            locate,
            self.metrics,
            on_dispatch=seen,
            backoff=Backoff(base=backoff, cap=2 * backoff),
        )
        self.task: asyncio.Task[None] | None = None

    def names(self) -> list[str]:
        return [event.name for event in self.received]

    async def __aenter__(self) -> _Run:
        self.task = asyncio.create_task(self.gateway.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.gateway.stop()
        assert self.task is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.task), 5)
        await cancel_and_wait([self.task])


async def test_identify_then_ready_with_minimum_intents(fake: FakeGateway) -> None:
    async with _Run(fake) as run:
        await wait_for(run.gateway.ready.is_set, 10, "READY")
        await wait_for(lambda: "GUILD_CREATE" in run.names(), 10, "GUILD_CREATE")
        assert fake.identifies == 1
        payload = fake.identify_payloads[0]
        assert payload["intents"] == INTENTS == (1 << 0) | (1 << 7)
        assert payload["token"] == "sim-bot-token"
        assert run.gateway.health.state is ConnectionState.CONNECTED
        assert run.gateway.session.session_id is not None
        # Heartbeats go out and are acknowledged (an RTT is measured).
        await wait_for(lambda: fake.heartbeats >= 2, 10, "two heartbeats")
        await wait_for(lambda: run.gateway.health.heartbeat_rtt_ms is not None, 5, "rtt")
        snap = run.gateway.health.snapshot()
        assert snap["name"] == "discord:gateway"
        assert snap["state"] == "connected"


async def test_missed_ack_reconnects_and_resumes_without_losing_a_dispatch(
    fake: FakeGateway,
) -> None:
    # Reconnects wait at least 0.5 s here: long enough to see the socket gone, and to
    # dispatch while it is.
    async with _Run(fake, backoff=1.0) as run:
        await wait_for(run.gateway.ready.is_set, 10, "READY")
        first_seq = run.gateway.session.seq
        fake.withhold_acks = True
        # The client notices the missing ack and closes its socket to resume on another.
        await wait_for(lambda: fake.active_connections == 0, 10, "the zombie socket closed")
        # A dispatch while no socket is open: Discord keeps it for the session's resume.
        fake.withhold_acks = False
        seq = await fake.dispatch("TEST_EVENT", {"n": 1})
        await wait_for(lambda: "TEST_EVENT" in run.names(), 10, "the dispatch replayed")
        await wait_for(lambda: "RESUMED" in run.names(), 10, "RESUMED")
        assert fake.resumes == 1
        assert fake.identifies == 1  # resumed, not identified afresh
        event = next(e for e in run.received if e.name == "TEST_EVENT")
        assert event.seq == seq
        assert first_seq is not None
        assert run.gateway.session.seq is not None
        assert run.gateway.session.seq >= seq > first_seq
        assert run.metrics.value("wc_gateway_heartbeat_acks_missed_total") >= 1
        assert run.metrics.value("wc_reconnects_total", source="discord:gateway") >= 1
        await wait_for(lambda: run.gateway.health.state is ConnectionState.CONNECTED, 5, "ok")


async def test_dropped_socket_resumes_at_resume_url(fake: FakeGateway) -> None:
    async with _Run(fake) as run:
        await wait_for(run.gateway.ready.is_set, 10, "READY")
        assert fake.drop_connections() == 1
        await wait_for(lambda: fake.resumes == 1, 10, "resume")
        assert fake.identifies == 1
        # A resume connects to resume_gateway_url, without asking where the gateway is.
        assert run.locates == 1


async def test_invalid_session_identifies_afresh(
    fake: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _Run(fake) as run:
        monkeypatch.setattr(run.gateway.session, "identify_wait", lambda: 0.01)
        await wait_for(run.gateway.ready.is_set, 10, "READY")
        old_session = run.gateway.session.session_id
        assert await fake.invalidate_session(resumable=False) == 1
        await wait_for(lambda: fake.identifies == 2, 10, "a fresh identify")
        await wait_for(
            lambda: run.gateway.session.session_id not in (None, old_session), 10, "new session"
        )
        assert fake.resumes == 0
        assert run.gateway.ready.is_set()


async def test_4004_says_the_token_is_wrong_and_does_not_retry(
    fake: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="wanderer_console")
    run = _Run(fake, token="wrong-token")
    async with run:
        assert run.task is not None
        await asyncio.wait_for(asyncio.shield(run.task), 10)  # run() ends by itself
    assert fake.identifies == 1
    assert fake.closed_4004 == 1
    assert fake.connections == 1  # no second attempt
    gateway = run.gateway
    assert gateway.health.state is ConnectionState.FAILED
    assert gateway.fatal is not None
    assert "token is wrong" in gateway.fatal
    assert "4004" in gateway.fatal
    assert any("token is wrong" in r.getMessage() for r in caplog.records)
    assert "wrong-token" not in gateway.fatal


async def test_4014_disallowed_intents_is_fatal_too(fake: FakeGateway) -> None:
    async with _Run(fake) as run:
        await wait_for(run.gateway.ready.is_set, 10, "READY")
        await fake.close_all(4014, "Disallowed intent(s).")
        assert run.task is not None
        await asyncio.wait_for(asyncio.shield(run.task), 10)
        assert fake.connections == 1
        assert run.gateway.fatal is not None
        assert "disallowed intents" in run.gateway.fatal


async def test_resumable_close_code_reconnects(fake: FakeGateway) -> None:
    async with _Run(fake) as run:
        await wait_for(run.gateway.ready.is_set, 10, "READY")
        await fake.close_all(4000, "Unknown error.")
        await wait_for(lambda: fake.resumes == 1, 10, "resumed after 4000")
        await fake.close_all(4009, "Session timed out.")
        await wait_for(lambda: fake.identifies == 2, 10, "identified after 4009")


async def test_voice_states_tracked_afk_excluded(fake: FakeGateway) -> None:
    guild = fake.guilds[GUILD]
    guild.voice.update({"501": "901", "502": "910"})  # 502 sits in the AFK channel
    async with _Run(fake) as run:
        voice = run.gateway.voice
        await wait_for(lambda: voice.known(GUILD), 10, "GUILD_CREATE")
        assert voice.participants(GUILD) == ["501"]
        await fake.set_voice(GUILD, "503", "902")
        await wait_for(lambda: voice.participants(GUILD) == ["501", "503"], 5, "503 joined")
        await fake.set_voice(GUILD, "501", None)
        await wait_for(lambda: voice.participants(GUILD) == ["503"], 5, "501 left")
        await fake.set_voice(GUILD, "503", "910")
        await wait_for(lambda: voice.participants(GUILD) == [], 5, "503 went AFK")


async def test_presence_update_reaches_the_gateway(fake: FakeGateway) -> None:
    async with _Run(fake) as run:
        await wait_for(run.gateway.ready.is_set, 10, "READY")
        assert await run.gateway.set_presence("3 maps · 12 kills today")
        await wait_for(lambda: len(fake.presences) >= 2, 5, "presence update")
        assert fake.presences[-1]["activities"][0]["name"] == "3 maps · 12 kills today"


async def test_guild_create_with_wrong_types_does_not_kill_the_reader(fake: FakeGateway) -> None:
    # A GUILD_CREATE whose lists are not lists (a changed or broken payload): the voice
    # tracker skips what it cannot read; the connection, the session and later events stay.
    async with _Run(fake) as run:
        await wait_for(run.gateway.ready.is_set, 10, "READY")
        await wait_for(lambda: run.gateway.voice.known(GUILD), 10, "GUILD_CREATE")
        await fake.dispatch(
            "GUILD_CREATE", {"id": GUILD, "channels": 5, "members": 7, "voice_states": True}
        )
        await fake.dispatch("TEST_EVENT", {"n": 1})
        await wait_for(lambda: "TEST_EVENT" in run.names(), 10, "the next dispatch")
        assert run.task is not None
        assert not run.task.done()
        assert fake.connections == 1
        assert fake.identifies == 1
        assert run.gateway.voice.known(GUILD)
        assert run.gateway.health.state is ConnectionState.CONNECTED


async def test_voice_roster_forgotten_when_the_gateway_stops_for_good(fake: FakeGateway) -> None:
    # With the gateway refused for good nobody's moves are seen any more: pinging whoever sat
    # in voice when it stopped would reach people who left hours ago (and miss who joined).
    fake.guilds[GUILD].voice.update({"501": "901"})
    async with _Run(fake) as run:
        await wait_for(lambda: run.gateway.voice.participants(GUILD) == ["501"], 10, "501")
        await fake.close_all(4014, "Disallowed intent(s).")
        assert run.task is not None
        await asyncio.wait_for(asyncio.shield(run.task), 10)
        assert run.gateway.fatal is not None
        assert run.gateway.voice.participants(GUILD) == []
        assert not run.gateway.voice.known(GUILD)


@pytest.fixture
async def discord_rest(fake: FakeGateway) -> AsyncIterator[tuple[FakeDiscord, DiscordApp]]:
    """The fake Discord's REST side on 127.0.0.1 (``GET /gateway/bot`` answers ``fake``'s URL)
    and the console's own client of it."""
    discord = FakeDiscord(bot_token="sim-bot-token")
    discord.bot_app.gateway_url = fake.url
    server = AppServer(discord.app)
    await server.start()
    http = build_client("discord", metrics=Metrics())
    app = DiscordApp(
        http,
        api_url=f"{server.url}/api/v10",
        token="sim-bot-token",
        application_id="1",
        user_agent="test",
    )
    try:
        yield discord, app
    finally:
        await http.aclose()
        await server.stop()


async def test_no_session_start_left_waits_for_the_reset_before_identifying(
    fake: FakeGateway,
    discord_rest: tuple[FakeDiscord, DiscordApp],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``GET /gateway/bot`` said no session start was left (``remaining`` 0) and the gateway
    identified anyway: Discord resets the bot's token for that. Now it waits ``reset_after``
    first, and says so in the log and the connection's state; a stop ends the wait."""
    caplog.set_level(logging.WARNING, logger="wanderer_console")
    discord, app = discord_rest
    discord.bot_app.session_start_limit.update(remaining=0, reset_after=3_600_000)
    async with _Run(fake, where=app.gateway_location) as run:
        gateway = run.gateway
        await wait_for(
            lambda: "session starts are used up" in (gateway.health.last_error or ""),
            10,
            "the wait for a session start shown",
        )
        assert "3600 s" in (gateway.health.last_error or "")
        assert fake.connections == 0
        assert fake.identifies == 0
        assert any("waits for a session start" in r.getMessage() for r in caplog.records)
        gateway.stop()
        assert run.task is not None
        await asyncio.wait_for(asyncio.shield(run.task), 5)
    assert fake.connections == 0
    assert gateway.health.state is ConnectionState.STOPPED


@pytest.mark.parametrize("reset_after", [None, "soon", 0, -5], ids=["missing", "text", "0", "<0"])
async def test_no_session_start_left_and_no_readable_reset_never_identifies_at_once(
    fake: FakeGateway,
    discord_rest: tuple[FakeDiscord, DiscordApp],
    caplog: pytest.LogCaptureFixture,
    reset_after: object,
) -> None:
    """``remaining`` 0 with no readable ``reset_after``: the gateway identified at once (only a
    positive ``reset_after`` made it wait), and Discord resets the bot's token for that. Now
    it waits a bounded while, says so in the log (with what to do) and the connection's state,
    asks Discord again after it, and identifies only once a session start is left."""
    caplog.set_level(logging.WARNING, logger="wanderer_console")
    discord, app = discord_rest
    limit: dict[str, object] = discord.bot_app.session_start_limit  # type: ignore[assignment]
    limit["remaining"] = 0
    if reset_after is None:
        limit.pop("reset_after", None)
    else:
        limit["reset_after"] = reset_after
    async with _Run(fake, where=app.gateway_location) as run:
        gateway = run.gateway
        gateway.unknown_reset_wait = 0.05  # an hour as deployed
        await wait_for(lambda: run.locates >= 3, 10, "Discord asked again after each wait")
        assert "session starts are used up" in (gateway.health.last_error or "")
        assert gateway.health.state is ConnectionState.RECONNECTING
        assert fake.connections == 0
        assert fake.identifies == 0
        waits = [r for r in caplog.records if "waits for a session start" in r.getMessage()]
        assert waits
        assert "action" in waits[0].__dict__["ctx"]
        limit["remaining"] = 1
        await wait_for(gateway.ready.is_set, 10, "READY once a session start is left")
        assert fake.identifies == 1


async def test_session_starts_left_identify_at_once(
    fake: FakeGateway, discord_rest: tuple[FakeDiscord, DiscordApp]
) -> None:
    discord, app = discord_rest
    discord.bot_app.session_start_limit.update(remaining=1, reset_after=3_600_000)
    async with _Run(fake, where=app.gateway_location) as run:
        await wait_for(run.gateway.ready.is_set, 10, "READY")
        assert fake.identifies == 1


async def test_an_invalid_session_with_no_session_start_left_waits_before_identifying(
    fake: FakeGateway,
    discord_rest: tuple[FakeDiscord, DiscordApp],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Discord ended the session (``INVALID_SESSION``, not resumable) when no session start
    was left: the gateway identified at once on the same socket, never asking whether one was,
    and Discord resets the bot's token for that. It now asks first and waits, as at a start."""
    discord, app = discord_rest
    async with _Run(fake, where=app.gateway_location) as run:
        monkeypatch.setattr(run.gateway.session, "identify_wait", lambda: 0.01)
        gateway = run.gateway
        await wait_for(gateway.ready.is_set, 10, "READY")
        discord.bot_app.session_start_limit.update(remaining=0, reset_after=3_600_000)
        assert await fake.invalidate_session(resumable=False) == 1
        await wait_for(
            lambda: "session starts are used up" in (gateway.health.last_error or ""),
            10,
            "the wait for a session start shown",
        )
        assert fake.identifies == 1
    assert fake.identifies == 1


@pytest.mark.parametrize(
    ("limit", "remaining", "reset_after"),
    [
        ({"remaining": 0, "reset_after": 1500}, 0, 1.5),
        ({"remaining": "0", "reset_after": "1500"}, None, 0.0),
        ({"remaining": True, "reset_after": True}, None, 0.0),
        ({"remaining": 0, "reset_after": 1e15}, 0, 86_400.0),
        ({"remaining": -1, "reset_after": -5}, None, 0.0),
        (None, None, 0.0),
    ],
)
def test_the_session_start_limit_is_read_with_care(
    limit: object, remaining: int | None, reset_after: float
) -> None:
    where = GatewayLocation.from_answer({"url": "wss://g", "session_start_limit": limit})
    assert (where.url, where.remaining, where.reset_after) == ("wss://g", remaining, reset_after)


async def test_a_resume_that_keeps_failing_identifies_afresh_at_the_located_gateway(
    fake: FakeGateway,
) -> None:
    """When ``resume_gateway_url`` stopped answering, the gateway tried to resume there for
    ever (a backoff apart) and the bot stayed offline. Now, after a few failed resumes, it
    drops the session, asks where the gateway is and identifies there."""
    other = FakeGateway(heartbeat_interval_ms=150, guilds=[FakeGuild(GUILD)])
    await other.start()
    urls = [fake.url]

    async def where() -> str:
        return urls[-1]

    try:
        async with _Run(fake, where=where) as run:
            await wait_for(run.gateway.ready.is_set, 10, "READY")
            urls.append(other.url)
            fake.refuse_connections = True  # the resume URL is dead from now on
            fake.drop_connections()
            await wait_for(lambda: other.identifies == 1, 10, "identified at the other gateway")
            await wait_for(run.gateway.ready.is_set, 10, "READY again")
            assert run.locates == 2
            assert fake.resumes == 0
            reconnects = run.metrics.value("wc_reconnects_total", source="discord:gateway")
            assert reconnects >= GIVE_UP_RESUME_AFTER
    finally:
        await other.stop()


@pytest.mark.parametrize("interval", ["0", "-41250", "true", "0.0"])
def test_a_hello_whose_heartbeat_interval_is_no_positive_number_is_refused(interval: str) -> None:
    """A ``HELLO`` with a heartbeat interval of 0, a negative one or ``true`` (a bool is an int
    in Python: 1 ms) was taken: the heartbeat task beat again before Discord could acknowledge
    the first beat, took the missing ack for a dead connection and closed it to resume, on every
    connection. It is a bad payload, skipped as the others are (the connection is not
    identified on it). (``1e400`` never gets this far: the JSON decoder refuses it.)"""
    session = GatewaySession("token")
    with pytest.raises(GatewayError, match="heartbeat_interval"):
        session.receive(f'{{"op": 10, "d": {{"heartbeat_interval": {interval}}}}}')
    hello = session.receive('{"op": 10, "d": {"heartbeat_interval": 41250}}')
    assert hello.interval == pytest.approx(41.25)  # type: ignore[union-attr]
