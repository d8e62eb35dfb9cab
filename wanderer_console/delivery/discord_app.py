"""The bot application's REST calls: where the gateway is, slash commands, interaction answers.

Everything goes through the console's Discord client (its rate limit, retry and breaker chain,
PROTOCOLS.md §5.2), with the bot token; interaction answers use the interaction's own token in
the path, as Discord asks (no bot token needed, and none is sent).

=====================================================  =======================================
``GET /gateway/bot``                                    the gateway URL to connect to
``PUT /applications/{app}/guilds/{guild}/commands``     the commands of one guild (bulk overwrite)
``PUT /applications/{app}/commands``                    the global commands (bulk overwrite)
``POST /interactions/{id}/{token}/callback``            the answer (type 4) or a deferral (5)
``PATCH /webhooks/{app}/{token}/messages/@original``    the deferred answer's text
``POST /channels/{id}/messages``                        the hourly status line
=====================================================  =======================================
"""

from __future__ import annotations

import logging
from typing import Any, Final

from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.http.errors import CircuitOpenError
from wanderer_console.ingest.gateway_protocol import GatewayError, GatewayLocation

__all__ = ["EPHEMERAL", "DiscordApp", "DiscordAppError"]

log = logging.getLogger(__name__)

EPHEMERAL: Final = 64
"""Message flag: only the user who ran the command sees the answer."""


class DiscordAppError(Exception):
    """Discord refused or could not be reached; the message says which (no token in it)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        """Discord's HTTP status when it answered (``None``: not reached, or no answer)."""


class DiscordApp:
    """REST calls of the bot application (see the module docstring)."""

    def __init__(
        self, http: HttpClient, *, api_url: str, token: str, application_id: str, user_agent: str
    ) -> None:
        self._http = http
        self._api = api_url.rstrip("/")
        self.application_id = application_id
        self._agent = {"user-agent": user_agent}
        self._headers: dict[str, str] = {}
        self.set_token(token)

    def set_token(self, token: str) -> None:
        """Send ``token`` from now on (a reload changed ``discord.bot_token``)."""
        self._headers = {"authorization": f"Bot {token}", **self._agent}

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        bot: bool = True,
        idempotent: bool | None = None,
    ) -> Any:
        try:
            response = await self._http.request(
                method,
                f"{self._api}{path}",
                json=body,
                headers=self._headers if bot else self._agent,
                idempotent=idempotent,
            )
        except (TransportError, CircuitOpenError) as exc:
            raise DiscordAppError(f"{method} {_route(path)}: {exc}") from None
        if not response.ok:
            try:
                detail = response.json()
            except ValueError:
                detail = response.text(200)
            message = detail.get("message") if isinstance(detail, dict) else detail
            raise DiscordAppError(
                f"{method} {_route(path)}: HTTP {response.status}: {message}", response.status
            )
        try:
            return response.json() if response.content else None
        except ValueError:
            return None

    async def gateway_location(self) -> GatewayLocation:
        """Where the gateway is (``wss://gateway.discord.gg`` on Discord) and how many session
        starts are left."""
        data = await self._call("GET", "/gateway/bot")
        try:
            return GatewayLocation.from_answer(data)
        except GatewayError as exc:
            raise DiscordAppError(f"GET /gateway/bot: {exc}") from None

    async def register_commands(self, commands: list[dict[str, Any]], guild_id: str) -> int:
        """Replace the application's commands in ``guild_id`` (or globally, when empty);
        returns how many Discord now holds."""
        scope = f"/guilds/{guild_id}" if guild_id else ""
        path = f"/applications/{self.application_id}{scope}/commands"
        data = await self._call("PUT", path, body=commands)
        return len(data) if isinstance(data, list) else 0

    async def answer(self, interaction_id: str, token: str, body: dict[str, Any]) -> None:
        """The interaction's callback (once per interaction, within 3 s of it)."""
        path = f"/interactions/{interaction_id}/{token}/callback"
        # Never retried: a second callback is refused ("already acknowledged").
        await self._call("POST", path, body=body, bot=False, idempotent=False)

    async def edit_original(self, token: str, content: str) -> None:
        """Set the text of a deferred answer; like the direct answer, it pings nobody."""
        path = f"/webhooks/{self.application_id}/{token}/messages/@original"
        body = {"content": content, "allowed_mentions": {"parse": []}}
        await self._call("PATCH", path, body=body, bot=False, idempotent=True)

    async def post(self, channel_id: str, content: str) -> None:
        """Post a plain message that pings nobody (the status line)."""
        body = {"content": content, "allowed_mentions": {"parse": []}}
        await self._call("POST", f"/channels/{channel_id}/messages", body=body)


def _route(path: str) -> str:
    """The path without the interaction token (a credential for 15 minutes)."""
    parts = path.split("/")
    if len(parts) > 3 and parts[1] in ("interactions", "webhooks"):
        parts[3] = "…"
    return "/".join(parts)
