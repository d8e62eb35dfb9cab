"""The Discord bot: gateway, slash commands, presence and the hourly status line, wired.

Built only when ``discord.bot_token`` and ``discord.application_id`` are both set
(:func:`build_bot`). At start it registers the ``/notifier`` commands (in ``discord.guild_id``,
else globally), connects the gateway (:mod:`~wanderer_console.ingest.gateway`), answers the
interactions through the console's own operations (:mod:`.discord_commands`), keeps the bot's
presence text to what the console is doing, and posts the status line every hour when
``discord.status_messages`` is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from wanderer_console.config.model import Settings
from wanderer_console.console_api import EngineSnapshot
from wanderer_console.control.discord_commands import (
    COMMANDS,
    CommandBackend,
    SlashCommands,
    status_text,
)
from wanderer_console.delivery.discord_app import DiscordApp, DiscordAppError
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.gateway import (
    DiscordGateway,
    GatewayLocateError,
    GatewayTokenRejected,
)
from wanderer_console.ingest.gateway_protocol import Dispatch, GatewayLocation
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["DiscordBot", "build_bot", "presence_text"]

log = logging.getLogger(__name__)

STATUS_INTERVAL = 3600.0
"""Seconds between two status lines."""
TOKEN_REJECTED = "bot token rejected (401): fix discord.bot_token"
"""The gateway's status when Discord refuses the token (it waits for a reload with another)."""
PRESENCE_INTERVAL = 60.0
"""How often the presence text is brought up to date (sent only when it changed)."""


def presence_text(snap: EngineSnapshot) -> str:
    """The bot's activity: "Watching 2 maps · 1,234 kills notified" (or what is wrong)."""
    if snap.delivery.paused:
        return _paused_presence(snap.delivery.paused_since)
    maps = len(snap.tracking)
    delivered = int(snap.counters.notifications_delivered.get("kill", 0))
    down = sum(1 for c in snap.connections if c.state not in ("connected", "stopped"))
    text = f"{maps} map{'' if maps == 1 else 's'} · {delivered:,} kills notified"
    return text + (f" · {down} source{'' if down == 1 else 's'} down" if down else "")


def _paused_presence(since: float | None) -> str:
    """``delivery paused since 2026-12-04 03:12 UTC``: since when, not who. Everyone in the
    server sees the presence (who paused is an operator's login and host, or an error's words,
    of any length; ``/notifier status`` names them); a date, as a pause may be days old."""
    if not since:
        return "delivery paused"
    return time.strftime("delivery paused since %Y-%m-%d %H:%M UTC", time.gmtime(since))


class DiscordBot:
    """The gateway and what hangs off it (see the module docstring)."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        http: HttpClient,
        metrics: Metrics,
        *,
        token: str,
        application_id: str,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        current = settings()
        self.app = DiscordApp(
            http,
            api_url=current.discord.api_url,
            token=token,
            application_id=application_id,
            user_agent=current.esi.user_agent,
        )
        self.gateway = DiscordGateway(
            token, self._locate, metrics, on_dispatch=self._dispatch, presence_text="starting"
        )
        self.commands: SlashCommands | None = None
        self._backend: CommandBackend | None = None
        self.registered: int | None = None
        """Commands Discord holds after the registration (``None``: not registered yet)."""
        self.status_interval = STATUS_INTERVAL
        self.presence_interval = PRESENCE_INTERVAL
        self.statuses_posted = 0

    def bind(self, backend: CommandBackend) -> None:
        """Serve the commands with ``backend`` (the engine's console backend)."""
        self._backend = backend
        self.commands = SlashCommands(backend, self.app, self._settings, self._metrics)

    async def _locate(self) -> GatewayLocation:
        try:
            return await self.app.gateway_location()
        except DiscordAppError as exc:
            if exc.status == 401:
                raise GatewayTokenRejected(TOKEN_REJECTED) from None
            raise GatewayLocateError(str(exc)) from None

    def on_settings(self, old: Settings, new: Settings) -> None:
        """A :class:`~wanderer_console.config.live.LiveSettings` subscriber: a reload with a
        new ``discord.bot_token`` gives it to the REST calls and the gateway (which starts again
        if Discord had rejected the old one)."""
        token = new.discord.bot_token
        if token is None or token == old.discord.bot_token:
            return
        self.app.set_token(token.get_secret_value())
        self.gateway.set_token(token.get_secret_value())

    async def _dispatch(self, event: Dispatch) -> None:
        if self.commands is not None:
            await self.commands.on_dispatch(event)

    async def register(self, attempts: int = 5) -> None:
        """Register the commands; retried with backoff, except when Discord refuses (4xx)."""
        guild = self._settings().discord.guild_id
        delay = 1.0
        for attempt in range(1, attempts + 1):
            try:
                self.registered = await self.app.register_commands(COMMANDS, guild)
            except DiscordAppError as exc:
                refused = " HTTP 4" in str(exc) and "HTTP 429" not in str(exc)
                log.log(
                    logging.ERROR if refused or attempt == attempts else logging.WARNING,
                    "slash commands not registered",
                    extra={"ctx": {"error": str(exc), "attempt": attempt, "guild": guild}},
                )
                if refused:
                    return
                await asyncio.sleep(delay)
                delay = min(30.0, delay * 2)
                continue
            log.info(
                "slash commands registered",
                extra={"ctx": {"commands": self.registered, "guild": guild or "global"}},
            )
            return

    async def status(self) -> None:
        """Keep the presence text current; post the status line every ``status_interval``."""
        loop = asyncio.get_running_loop()
        next_status = loop.time() + self.status_interval
        shown: str | None = None
        while True:
            backend = self._backend
            if backend is not None:
                snap = await backend.snapshot()
                text = presence_text(snap)
                if text != shown and await self.gateway.set_presence(text):
                    shown = text
                if loop.time() >= next_status:
                    next_status = loop.time() + self.status_interval
                    await self._post_status(snap)
            wait = min(self.presence_interval, max(0.0, next_status - loop.time()))
            await asyncio.sleep(wait)

    async def _post_status(self, snap: EngineSnapshot) -> None:
        settings = self._settings()
        if not settings.discord.status_messages:
            return
        channel = settings.discord.status_channel_id or next(
            (m.discord.channel_id for m in settings.maps.values() if m.discord.channel_id), ""
        )
        if not channel:
            log.warning("status line not posted: no discord.status_channel_id nor map channel_id")
            return
        with contextlib.suppress(DiscordAppError):
            await self.app.post(channel, status_text(snap))
            self.statuses_posted += 1
            return
        log.warning("status line not posted: Discord refused it or could not be reached")


def build_bot(
    settings: Callable[[], Settings], http: HttpClient, metrics: Metrics
) -> DiscordBot | None:
    """The bot, when a bot token and an application id are configured; else ``None``."""
    discord = settings().discord
    if discord.bot_token is None or not discord.application_id:
        return None
    return DiscordBot(
        settings,
        http,
        metrics,
        token=discord.bot_token.get_secret_value(),
        application_id=discord.application_id,
    )
