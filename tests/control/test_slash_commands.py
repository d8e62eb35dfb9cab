"""The ``/notifier`` answers against the fake Discord's interaction endpoints, over a real
socket on 127.0.0.1 (the callback and the edit of the original held to Discord's limits).

The engine is a small in-memory backend: what is tested is how an interaction is answered, and
a slow operation is made slow by holding it until the fake Discord has seen the deferral (a
condition, not a timer). The fake Discord's clock is frozen: Discord's 3-second answer window
closes only when a test moves it, never because a loaded machine was slow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from tests.support import wait_for
from wanderer_console.config.model import Settings
from wanderer_console.console_api import (
    DeliveryView,
    EngineSnapshot,
    OperationResult,
    PrioritySystemView,
    TrackingView,
)
from wanderer_console.control.discord_bot import build_bot, presence_text
from wanderer_console.control.discord_commands import SlashCommands
from wanderer_console.delivery.discord_app import DiscordApp
from wanderer_console.domain.clock import FrozenClock
from wanderer_console.http import build_client
from wanderer_console.sim.discord import FakeDiscord
from wanderer_console.sim.discord_gateway import Interaction
from wanderer_console.sim.server import AppServer
from wanderer_console.telemetry.metrics import Metrics

GUILD = "900000000000000001"
ROLE = "800000000000000001"


@dataclass
class _Backend:
    """The operations the commands call, in memory; ``hold`` keeps each one waiting."""

    names: list[str] = field(default_factory=list)
    hold: asyncio.Event | None = None
    flags: list[tuple[str, bool]] = field(default_factory=list)
    delivery: DeliveryView = field(default_factory=DeliveryView)

    async def _wait(self) -> None:
        if self.hold is not None:
            await self.hold.wait()

    async def snapshot(self) -> EngineSnapshot:
        await self._wait()
        return EngineSnapshot(
            priority_systems=tuple(PrioritySystemView(name=n) for n in self.names),
            delivery=self.delivery,
        )

    async def set_flag(
        self, tenant: str | None, flag: str, value: bool, *, actor: str
    ) -> OperationResult:
        await self._wait()
        self.flags.append((flag, value))
        return OperationResult(ok=True, message=f"global {flag} notifications {value}")

    async def add_priority_system(self, name: str, *, actor: str) -> OperationResult:
        await self._wait()
        self.names.append(name)
        return OperationResult(ok=True, message=f"{name} is now a priority system.")

    async def remove_priority_system(self, name: str, *, actor: str) -> OperationResult:
        await self._wait()
        self.names.remove(name)
        return OperationResult(ok=True, message=f"{name} is no longer a priority system.")


@dataclass
class _Bot:
    fake: FakeDiscord
    backend: _Backend
    commands: SlashCommands
    settings: Settings
    clock: FrozenClock
    """The fake Discord's clock: interactions are dated on it, their answers judged by it."""
    _next: int = 1_300_000_000_000_000_100

    def _new(self, options: list[dict[str, Any]], roles: list[str] | None) -> Interaction:
        """An interaction as the gateway hands it over (and the fake Discord knows it)."""
        self._next += 1
        interaction = Interaction(str(self._next), f"tok-{self._next}", {}, self.clock.wall())
        interaction.payload = {
            "id": interaction.id,
            "type": 2,
            "token": interaction.token,
            "guild_id": GUILD,
            "member": {"user": {"id": "1400000000000000001", "username": "pilot"}, "roles": roles},
            "data": {"name": "notifier", "type": 1, "options": options},
        }
        self.fake.bot_app.interactions[interaction.id] = interaction
        return interaction

    async def run(
        self, options: list[dict[str, Any]], *, roles: list[str] | None = None
    ) -> Interaction:
        """Run one interaction; returns once it is answered (or the answer failed)."""
        interaction = self._new(options, roles)
        await self.commands.handle(interaction.payload)
        return interaction

    async def deferred(
        self, options: list[dict[str, Any]], *, roles: list[str] | None = None
    ) -> Interaction:
        """Run an interaction whose operation ends only after Discord has seen the deferral."""
        interaction = self._new(options, roles)
        hold = self.backend.hold = asyncio.Event()
        self.commands.answer_within = 0.01
        running = asyncio.create_task(self.commands.handle(interaction.payload))
        await wait_for(lambda: interaction.responses or running.done(), 10, "the deferral")
        hold.set()
        await running
        self.backend.hold = None
        return interaction


@pytest.fixture
async def bot() -> AsyncIterator[_Bot]:
    clock = FrozenClock()
    fake = FakeDiscord(bot_token="sim-bot-token", clock=clock)
    server = AppServer(fake.app)
    await server.start()
    metrics = Metrics()
    http = build_client("discord", metrics=metrics)
    app = DiscordApp(
        http,
        api_url=f"{server.url}/api/v10",
        token="sim-bot-token",
        application_id="1200000000000000001",
        user_agent="test",
    )
    settings = Settings()
    settings.discord.guild_id = GUILD
    settings.discord.command_role_id = ROLE
    backend = _Backend()
    commands = SlashCommands(backend, app, lambda: settings, metrics)
    try:
        yield _Bot(fake, backend, commands, settings, clock)
    finally:
        await http.aclose()
        await server.stop()


def _sub(*words: str, **values: Any) -> list[dict[str, Any]]:
    leaf: list[dict[str, Any]] = [
        {"type": 3, "name": name, "value": value} for name, value in values.items()
    ]
    for i, word in enumerate(reversed(words)):
        leaf = [{"type": 1 if i == 0 else 2, "name": word, "options": leaf}]
    return leaf


def _long_names(count: int = 60) -> list[str]:
    return [f"J{100000 + i} Very Long Wormhole Nickname {i:03d}" for i in range(count)]


async def test_a_long_answer_is_cut_to_fit_and_says_so(bot: _Bot) -> None:
    bot.backend.names = _long_names()
    interaction = await bot.run(_sub("priority", "list"))
    text = interaction.final_text()
    assert text is not None
    assert len(text) <= 2000
    assert text.startswith("Priority systems (60): ")
    assert text.rstrip().endswith("(cut: the console lists them all)")


async def test_a_deferred_long_answer_is_cut_to_fit_too(bot: _Bot) -> None:
    """The deferred answer's text went whole to the edit of the original: Discord refuses more
    than 2,000 characters (400), and the user was left with "thinking…" for good."""
    bot.backend.names = _long_names()
    interaction = await bot.deferred(_sub("priority", "list"))
    assert interaction.responses[0]["type"] == 5
    text = interaction.final_text()
    assert text is not None, interaction.responses
    assert len(text) <= 2000
    assert text.startswith("Priority systems (60): ")


async def test_a_deferred_answer_pings_nobody(bot: _Bot) -> None:
    """The edit of a deferred answer went without ``allowed_mentions``: a name echoed back
    (``@everyone``, ``<@&role>``) was a live mention there, where the direct answer pinged
    nobody."""
    interaction = await bot.deferred(
        _sub("system", "add-priority", system="@everyone <@&800000000000000009>")
    )
    assert interaction.responses[0]["type"] == 5
    edit = interaction.responses[-1]
    assert edit["type"] == "edit"
    assert "@everyone" in edit["data"]["content"]
    assert edit["data"]["allowed_mentions"] == {"parse": []}


@pytest.mark.parametrize(
    ("words", "values"),
    [
        (("pause",), {"type": "kill"}),
        (("resume",), {"type": "all"}),
        (("system", "add-priority"), {"system": "J154624"}),
    ],
)
async def test_a_change_too_late_to_answer_is_not_applied(
    bot: _Bot, words: tuple[str, ...], values: dict[str, str]
) -> None:
    """An interaction that comes after Discord's 3 s (replayed when the gateway resumes after a
    cut) was run, then its answer refused: the user was told "The application did not respond"
    and the change was made all the same, minutes later, unseen (and again when the user ran it
    once more). A change is acknowledged first and made only once Discord took the
    acknowledgement."""
    interaction = bot._new(_sub(*words, **values), [ROLE])
    bot.clock.advance(60)  # as Discord dated it: a minute ago
    await bot.commands.handle(interaction.payload)
    assert bot.fake.bot_app.late_answers == 1
    assert interaction.responses == []
    assert bot.backend.flags == []
    assert bot.backend.names == []
    samples = bot.commands.interactions.collect()[0].samples
    assert [
        (s.labels["command"], s.labels["outcome"], s.value) for s in samples if "_total" in s.name
    ] == [(" ".join(words), "expired", 1.0)]


async def test_a_change_in_time_is_acknowledged_then_made_and_said(bot: _Bot) -> None:
    interaction = await bot.run(_sub("pause", type="kill"), roles=[ROLE])
    assert bot.backend.flags == [("kill", False)]
    assert interaction.responses[0] == {"type": 5, "data": {"flags": 64}}
    assert interaction.final_text() == "global kill notifications False"
    refused = await bot.run(_sub("resume", type="kill"))
    assert "role" in (refused.final_text() or "")
    assert bot.backend.flags == [("kill", False)]


async def test_the_hourly_status_line_of_many_maps_fits_a_message() -> None:
    """With many maps (hosted mode serves dozens) the status line passed Discord's 2,000
    characters: refused with a 400 every hour ("status line not posted"), never seen."""
    fake = FakeDiscord(bot_token="sim-bot-token")
    server = AppServer(fake.app)
    await server.start()
    metrics = Metrics()
    http = build_client("discord", metrics=metrics)
    settings = Settings()
    settings.discord.api_url = f"{server.url}/api/v10"
    settings.discord.bot_token = SecretStr("sim-bot-token")
    settings.discord.application_id = "1200000000000000001"
    settings.discord.status_messages = True
    settings.discord.status_channel_id = "1500000000000000001"
    bot = build_bot(lambda: settings, http, metrics)
    assert bot is not None
    tracking = {
        f"wormhole-chain-{i:03d}": TrackingView(systems=40, characters=12) for i in range(80)
    }
    try:
        await bot._post_status(EngineSnapshot(tracking=tracking))
        assert fake.rejected_400 == 0
        assert bot.statuses_posted == 1
        (message,) = fake.received
        assert len(message.body["content"]) <= 2000
        content = message.body["content"]
        assert content.startswith("**Wanderer Console status**\n")
        assert "Maps: 80 (wormhole-chain-000: 40 systems, 12 pilots, " in content
        assert " more)\nSources: " in content  # the maps that do not fit are counted
        assert "\nPriority systems: 0\n" in content  # and every line is still there
    finally:
        await http.aclose()
        await server.stop()


@pytest.mark.parametrize(
    "shape",
    [
        {"options": {"name": "status"}},  # options not a list
        {"options": [{"type": 1, "name": "status", "options": "x"}]},  # nested not a list
        {"user": "pilot"},  # the user not an object
        {"member": {"user": ["pilot"]}},
    ],
    ids=["options", "nested options", "user", "member user"],
)
async def test_a_malformed_interaction_is_answered_not_raised(
    bot: _Bot, shape: dict[str, Any]
) -> None:
    """``handle`` never raises for a bad interaction (its own promise): options that are not a
    list, or a user that is not an object, raised inside it and left the interaction with no
    answer at all."""
    interaction = bot._new(_sub("status"), [ROLE])
    payload = interaction.payload
    for key, value in shape.items():
        if key == "options":
            payload["data"]["options"] = value
        else:
            payload.pop("member", None)
            payload[key] = value
    await bot.commands.handle(payload)
    assert interaction.responses, "no answer"
    assert interaction.final_text()


async def test_an_unknown_subcommand_is_counted_under_one_label(bot: _Bot) -> None:
    """The ``command`` label took whatever name the interaction carried: labels without bound."""
    for word in ("frobnicate", "zap", "x" * 80):
        interaction = await bot.run(_sub(word))
        assert "Unknown command" in (interaction.final_text() or "")
    text = bot.commands.interactions.collect()[0]
    commands = {s.labels["command"] for s in text.samples}
    assert commands == {"unknown"}, commands


PAUSED_SINCE = 1_796_354_529.0
"""2026-12-04 03:22:09 UTC."""


async def test_status_says_who_paused_delivery_and_since_when(bot: _Bot) -> None:
    """An operator's pause showed as "Delivery: paused" only: whoever asked in Discord could not
    tell who to ask to resume it, nor whether it was today's (the console and /ready say both)."""
    bot.backend.delivery = DeliveryView(
        paused=True,
        paused_by="tui:alice@host via socket",
        paused_since=PAUSED_SINCE,
        pause_saved=True,
    )
    interaction = await bot.run(_sub("status"))
    text = interaction.final_text() or ""
    assert (
        "\nDelivery: paused by `tui:alice@host via socket` since <t:1796354529:f>"
        " (kept across restarts)\n" in text
    )
    bot.backend.delivery = DeliveryView(paused=True, pause_saved=False)
    text = (await bot.run(_sub("status"))).final_text() or ""
    assert "\nDelivery: paused (not saved: ends at the next restart)\n" in text


async def test_status_says_a_pause_of_the_cluster_holds_every_engine(bot: _Bot) -> None:
    """On a shared database the pause is the cluster's: asking one engine's bot, an operator
    must learn that resuming here resumes them all, and that no other engine is sending."""
    bot.backend.delivery = DeliveryView(
        paused=True,
        paused_by="tui:alice@host via socket",
        paused_since=PAUSED_SINCE,
        pause_saved=True,
        pause_cluster=True,
    )
    text = (await bot.run(_sub("status"))).final_text() or ""
    assert (
        "\nDelivery: paused by `tui:alice@host via socket` since <t:1796354529:f>"
        " (on every engine of this database, kept across restarts)\n" in text
    )


async def test_status_masks_a_secret_in_who_paused_and_stays_within_a_message(
    bot: _Bot,
) -> None:
    """Who paused may be an error's words (a pause restored unread), a database URL with its
    password among them, and of any length: the answer masks it, as the snapshot does, and
    still fits one message with every line in it."""
    words = "the cluster's pause could not be read: postgresql://wc:hunter2secret@db:5432/wc "
    bot.backend.delivery = DeliveryView(
        paused=True, paused_by=f"unknown ({words * 40})", paused_since=PAUSED_SINCE
    )
    text = (await bot.run(_sub("status"))).final_text() or ""
    assert "hunter2secret" not in text
    assert "postgresql://wc:***@db:5432/wc" in text
    assert len(text) <= 2000
    assert " since <t:1796354529:f>" in text
    assert "\nPriority systems: 0\n" in text  # the lines after it are all there


def test_the_presence_says_since_when_delivery_is_paused_and_stays_short() -> None:
    """Everyone in the server sees the presence: it says since when, not who (an operator's
    login and host), and stays short however long who paused is."""
    snap = EngineSnapshot(
        delivery=DeliveryView(
            paused=True, paused_by="x" * 500 + " hunter2secret", paused_since=PAUSED_SINCE
        )
    )
    assert presence_text(snap) == "delivery paused since 2026-12-04 03:22 UTC"
    assert presence_text(EngineSnapshot(delivery=DeliveryView(paused=True))) == "delivery paused"
