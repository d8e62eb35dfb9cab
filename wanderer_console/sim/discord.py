"""Fake Discord: execute-webhook and bot create-message routes with limits and rate limits.

Follows PROTOCOLS.md §5.1-5.3: ``?wait=true`` returns the message object, otherwise 204; every
answer carries ``X-RateLimit-*`` headers of a fixed-window bucket per webhook (bot route: per
channel); 429 bodies carry ``retry_after``; oversized or empty messages get Discord's 400 codes;
disabled webhooks answer 404 ``Unknown Webhook``. Only accepted (2xx) messages are recorded,
each with the notifications it carried (kind and killmail id per embed, read on arrival by
:func:`~wanderer_console.sim.summary.notifications_in`).

Like Discord, a bot message with a ``nonce`` and ``enforce_nonce`` that repeats a nonce the same
channel saw within the last few minutes returns the original message and posts nothing. Faults
for tests: ``answer_delay`` accepts (records) a message and answers only that much later, as a
slow Discord does when a client times out on a post that went through. Its windows, nonces and
timestamps read an injectable :class:`~wanderer_console.domain.clock.Clock`.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wanderer_console.domain.clock import Clock, SystemClock
from wanderer_console.sim.discord_app import FakeDiscordApp
from wanderer_console.sim.discord_rules import Bucket, next_snowflake, validate_message
from wanderer_console.sim.summary import CarriedNotification, notifications_in

__all__ = ["FakeDiscord", "ReceivedMessage", "webhook_url"]

_BOT_USER_ID = "1100000000000000001"


def webhook_url(base_url: str, webhook_id: str | int, token: str = "tok") -> str:
    """Execute-webhook URL of the fake: ``{base_url}/api/webhooks/{id}/{token}``."""
    return f"{base_url.rstrip('/')}/api/webhooks/{webhook_id}/{token}"


@dataclass(slots=True)
class ReceivedMessage:
    """One accepted message as the fake saw it."""

    target: str
    """``"webhook:<id>"`` or ``"channel:<id>"``."""
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    """The clock's wall time (``time.time()`` by default) when it was accepted."""
    message_id: str = ""
    channel_id: str = ""
    query: dict[str, str] = field(default_factory=dict)
    notifications: tuple[CarriedNotification, ...] = ()
    """One per embed, read when the message was accepted: what kind, which killmail."""


class FakeDiscord:
    """Discord's message-sending surface, served by the Starlette ``app``."""

    def __init__(
        self,
        *,
        webhook_limit: int = 5,
        webhook_window: float = 2.0,
        channel_per_minute: int | None = None,
        channel_window: float = 60.0,
        bot_token: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self.webhook_limit = webhook_limit
        self.webhook_window = webhook_window
        self.channel_per_minute = channel_per_minute
        self.channel_window = channel_window
        """Length of the per-channel window (60 s on Discord; benchmarks shrink it)."""
        self.bot_token = bot_token
        self.received: list[ReceivedMessage] = []
        self.requests = 0
        self.rejected_429 = 0
        self.rejected_400 = 0
        self.rejected_404 = 0
        self.rejected_401 = 0
        self.answer_delay = 0.0
        """Seconds between accepting a message and answering (the message is already posted)."""
        self.answer_gate: asyncio.Event | None = None
        """When set to an event: a message is accepted, and answered once the event is set (a
        test holds the answer for as long as it needs, no clock involved)."""
        self.nonce_window = 300.0
        """How long a nonce is remembered per channel (Discord: "the past few minutes")."""
        self.nonce_replays = 0
        """Bot posts answered with an earlier message because their nonce repeated."""
        self._nonces: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self.outage: tuple[int, dict[str, Any], dict[str, str]] | None = None
        """While set, every request is answered with this ``(status, body, headers)``."""
        self._canned: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self._disabled: set[str] = set()
        self._tokens: dict[str, str] = {}
        self._channels: dict[str, str] = {}
        self._buckets: dict[str, Bucket] = {}
        self._last_snowflake = 0
        self.bot_app = FakeDiscordApp(bot_token, clock=self._clock)
        """The bot application's routes: gateway URL, commands, interaction answers."""
        self.app = Starlette(
            routes=[
                Route("/api/webhooks/{webhook_id}/{token}", self._webhook, methods=["POST"]),
                Route("/api/v10/webhooks/{webhook_id}/{token}", self._webhook, methods=["POST"]),
                Route("/api/v10/channels/{channel_id}/messages", self._bot, methods=["POST"]),
                *self.bot_app.routes(),
            ]
        )

    # -- configuration ---------------------------------------------------------------------
    def disable_webhook(self, webhook_id: str | int) -> None:
        """Make a webhook answer 404 ``Unknown Webhook`` (code 10015) from now on."""
        self._disabled.add(str(webhook_id))

    def enable_webhook(self, webhook_id: str | int) -> None:
        """Undo :meth:`disable_webhook`."""
        self._disabled.discard(str(webhook_id))

    def register_webhook(
        self, webhook_id: str | int, token: str, channel_id: str | int | None = None
    ) -> None:
        """Require ``token`` for this webhook (else 401) and optionally pin its channel."""
        self._tokens[str(webhook_id)] = token
        if channel_id is not None:
            self._channels[str(webhook_id)] = str(channel_id)

    def webhook_channel(self, webhook_id: str | int) -> str:
        """Channel a webhook posts into (stable, derived from the id unless registered)."""
        key = str(webhook_id)
        return self._channels.get(key) or str(900_000_000_000_000_000 + zlib.crc32(key.encode()))

    def fail_next(
        self,
        status: int,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        *,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (nothing is posted)."""
        self._canned += [(status, body or {"message": "injected"}, headers or {})] * times

    def pending_faults(self) -> int:
        """Canned answers :meth:`fail_next` queued that no request has taken yet."""
        return len(self._canned)

    def clear_faults(self) -> None:
        """Drop the canned answers no request has taken yet (the outage is left as it is)."""
        self._canned.clear()

    def _fault(self) -> Response | None:
        if self._canned:
            status, body, headers = self._canned.pop(0)
        elif self.outage is not None:
            status, body, headers = self.outage
        else:
            return None
        return JSONResponse(body, status_code=status, headers=headers)

    # -- observability ---------------------------------------------------------------------
    def messages_for(self, target: str) -> list[ReceivedMessage]:
        """Accepted messages for ``"webhook:<id>"`` or ``"channel:<id>"``."""
        return [m for m in self.received if m.target == target]

    @property
    def embeds(self) -> list[dict[str, Any]]:
        """Every embed of every accepted message, in order."""
        return [e for m in self.received for e in m.body.get("embeds") or []]

    # -- internals -------------------------------------------------------------------------
    def _bucket(self, key: str, limit: int, window: float) -> Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(key, limit, window)
        return bucket

    def _headers(self, bucket: Bucket) -> dict[str, str]:
        return bucket.headers(self._clock.monotonic(), self._clock.wall())

    def _snowflake(self) -> str:
        self._last_snowflake = next_snowflake(time.time_ns() // 1_000_000, self._last_snowflake)
        return str(self._last_snowflake)

    def _limit(self, buckets: list[Bucket], now: float) -> Response | None:
        """429 if any bucket is exhausted, else count the request in all of them."""
        primary = buckets[0]
        for index, bucket in enumerate(buckets):
            if bucket.exhausted(now):
                self.rejected_429 += 1
                retry, header = bucket.retry_after(now)
                headers = primary.headers(now, self._clock.wall())
                headers["Retry-After"] = header
                headers["X-RateLimit-Scope"] = "user" if index == 0 else "shared"
                body = {"message": "You are being rate limited.", "retry_after": retry}
                body["global"] = False
                return JSONResponse(body, status_code=429, headers=headers)
        for bucket in buckets:
            bucket.take(now)
        return None

    async def _accept(
        self,
        request: Request,
        buckets: list[Bucket],
        target: str,
        channel_id: str,
        webhook_id: str | None,
    ) -> Response:
        now = self._clock.monotonic()
        limited = self._limit(buckets, now)
        if limited is not None:
            return limited
        headers = buckets[0].headers(now, self._clock.wall())
        try:
            body: Any = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = None
        problem = validate_message(body, webhook=webhook_id is not None)
        if problem is not None:
            self.rejected_400 += 1
            return JSONResponse(problem, status_code=400, headers=headers)
        assert isinstance(body, dict)
        nonce = body.get("nonce")
        if webhook_id is None and nonce is not None and body.get("enforce_nonce"):
            seen = self._nonces.get((channel_id, str(nonce)))
            if seen is not None and self._clock.monotonic() - seen[0] < self.nonce_window:
                self.nonce_replays += 1
                return JSONResponse(seen[1], headers=headers)
        query = dict(request.query_params)
        channel_id = query.get("thread_id", channel_id) if webhook_id else channel_id
        message = self._message(body, channel_id, webhook_id)
        self.received.append(
            ReceivedMessage(
                target=target,
                body=body,
                headers=dict(request.headers),
                at=self._clock.wall(),
                message_id=message["id"],
                channel_id=channel_id,
                query=query,
                notifications=notifications_in(target, body),
            )
        )
        if webhook_id is None and nonce is not None and body.get("enforce_nonce"):
            self._nonces[(channel_id, str(nonce))] = (self._clock.monotonic(), message)
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        if self.answer_gate is not None:
            await self.answer_gate.wait()
        wait = query.get("wait", "false").lower() in ("true", "1")
        if webhook_id is not None and not wait:
            return Response(status_code=204, headers=headers)
        return JSONResponse(message, headers=headers)

    def _message(
        self, body: dict[str, Any], channel_id: str, webhook_id: str | None
    ) -> dict[str, Any]:
        embeds = [{"type": "rich", **e} for e in body.get("embeds") or []]
        author_id = webhook_id or _BOT_USER_ID
        message: dict[str, Any] = {
            "id": self._snowflake(),
            "type": 0,
            "content": body.get("content") or "",
            "channel_id": channel_id,
            "author": {
                "id": author_id,
                "username": body.get("username") or ("Captain Hook" if webhook_id else "SimBot"),
                "bot": True,
            },
            "embeds": embeds,
            "attachments": [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": bool(body.get("tts", False)),
            "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None,
            "flags": body.get("flags", 0),
            "components": [],
        }
        if webhook_id is not None:
            message["webhook_id"] = webhook_id
        return message

    def _buckets_for(self, primary_key: str, channel_id: str) -> list[Bucket]:
        buckets = [self._bucket(primary_key, self.webhook_limit, self.webhook_window)]
        if self.channel_per_minute is not None:
            key = f"channel-minute:{channel_id}"
            buckets.append(self._bucket(key, self.channel_per_minute, self.channel_window))
        return buckets

    async def _webhook(self, request: Request) -> Response:
        self.requests += 1
        fault = self._fault()
        if fault is not None:
            return fault
        webhook_id = request.path_params["webhook_id"]
        token = request.path_params["token"]
        channel_id = self.webhook_channel(webhook_id)
        buckets = self._buckets_for(f"webhook:{webhook_id}", channel_id)
        headers = self._headers(buckets[0])
        if webhook_id in self._disabled:
            self.rejected_404 += 1
            body = {"message": "Unknown Webhook", "code": 10015}
            return JSONResponse(body, status_code=404, headers=headers)
        expected = self._tokens.get(webhook_id)
        if expected is not None and token != expected:
            self.rejected_401 += 1
            body = {"message": "Invalid Webhook Token", "code": 50027}
            return JSONResponse(body, status_code=401, headers=headers)
        target = f"webhook:{webhook_id}"
        return await self._accept(request, buckets, target, channel_id, webhook_id)

    async def _bot(self, request: Request) -> Response:
        self.requests += 1
        fault = self._fault()
        if fault is not None:
            return fault
        channel_id = request.path_params["channel_id"]
        buckets = self._buckets_for(f"channel:{channel_id}", channel_id)
        expected = None if self.bot_token is None else f"Bot {self.bot_token}"
        if expected is not None and request.headers.get("authorization", "") != expected:
            self.rejected_401 += 1
            headers = self._headers(buckets[0])
            body = {"message": "401: Unauthorized", "code": 0}
            return JSONResponse(body, status_code=401, headers=headers)
        target = f"channel:{channel_id}"
        return await self._accept(request, buckets, target, channel_id, None)
