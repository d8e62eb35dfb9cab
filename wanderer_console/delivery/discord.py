"""Sending one message to Discord, by webhook or bot channel, and classifying the answer.

The dispatcher decides what to do with a :class:`SendResult`; this module only speaks HTTP and
reads Discord's answer (PROTOCOLS.md §5.1–5.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import orjson

from wanderer_console.domain.notification import Target, TargetKind
from wanderer_console.http.client import JSON_HEADERS, HttpClient, HttpResponse, TransportError
from wanderer_console.http.errors import CircuitOpenError

__all__ = ["LONGEST_WAIT", "DiscordSender", "Outcome", "SendResult"]

LONGEST_WAIT: Final = 86_400.0
"""The longest wait an answer's ``Retry-After`` / ``retry_after`` / ``X-RateLimit-Reset-After``
is taken for, in seconds: a day, as the gateway's session-start wait. Discord asks for seconds
to an hour; a larger figure (a proxy's garbage, ``1e9``) would park the target's messages for
years, shown as pending all along."""


class Outcome(StrEnum):
    """What happened to one send."""

    SENT = "sent"
    """Discord confirmed the message."""
    RETRY = "retry"
    """Transient failure (5xx, a refused connection, an open breaker): try again later."""
    UNCERTAIN = "uncertain"
    """No answer after the request went out (a read timeout, a reset): it may have been posted."""
    RATE_LIMITED = "rate_limited"
    """429: wait ``retry_after`` (everything, when ``global_limit``)."""
    DEAD_TARGET = "dead_target"
    """401/403/404: the target will never accept; disable it."""
    REJECTED = "rejected"
    """400: this message can never be sent as it is."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """The classified answer to one send."""

    outcome: Outcome
    status: int | None = None
    retry_after: float = 0.0
    global_limit: bool = False
    detail: str = ""
    bucket_remaining: int | None = None
    bucket_reset_after: float | None = None
    channel_id: str | None = None
    """The channel Discord posted into (from the confirmed message), for per-channel pacing."""
    attempted: bool = True
    """False when nothing was sent (the breaker failed fast): not the message's attempt."""
    message_id: str | None = None
    """Discord's id of the message it created (from the confirmed message)."""


def _float(value: str | None) -> float | None:
    """A wait from Discord's answer in seconds, at most :data:`LONGEST_WAIT`; ``None`` when
    absent, negative or no number (``inf`` would park a message for ever, ``nan`` or ``-5`` not
    pause at all: the caller's fallback applies, as for a word)."""
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    if number is None or not math.isfinite(number) or number < 0:
        return None
    return min(number, LONGEST_WAIT)


def _classify(response: HttpResponse) -> SendResult:
    headers = response.headers
    remaining_raw = headers.get("x-ratelimit-remaining")
    remaining = int(remaining_raw) if remaining_raw and remaining_raw.isdigit() else None
    reset_after = _float(headers.get("x-ratelimit-reset-after"))
    body: Any = None
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = None
    if response.ok:
        channel = body.get("channel_id") if isinstance(body, dict) else None
        message = body.get("id") if isinstance(body, dict) else None
        return SendResult(
            Outcome.SENT,
            response.status,
            bucket_remaining=remaining,
            bucket_reset_after=reset_after,
            channel_id=str(channel) if channel else None,
            message_id=str(message)[:64] if message else None,
        )
    message = body.get("message", "") if isinstance(body, dict) else response.text(200)
    if response.status == 429:
        retry_after = None
        is_global = headers.get("x-ratelimit-global", "").lower() == "true"
        if isinstance(body, dict):
            retry_after = _float(str(body.get("retry_after"))) if "retry_after" in body else None
            is_global = is_global or bool(body.get("global"))
        retry_after = retry_after or _float(headers.get("retry-after")) or reset_after or 1.0
        return SendResult(
            Outcome.RATE_LIMITED,
            429,
            retry_after=retry_after,
            global_limit=is_global,
            detail=str(message),
        )
    if response.status in (401, 403, 404):
        return SendResult(Outcome.DEAD_TARGET, response.status, detail=str(message))
    if 400 <= response.status < 500 and response.status != 408:
        return SendResult(Outcome.REJECTED, response.status, detail=str(message))
    return SendResult(Outcome.RETRY, response.status, detail=str(message))


class DiscordSender:
    """Posts message bodies to webhooks (``?wait=true``) or bot channels."""

    def __init__(self, http: HttpClient, *, api_url: str, user_agent: str) -> None:
        self._http = http
        self._api_url = api_url.rstrip("/")
        self._user_agent = user_agent

    async def send(
        self,
        target: Target,
        body: dict[str, Any] | bytes,
        *,
        bot_token: str | None = None,
        nonce: str | None = None,
        timeout: float | None = None,
    ) -> SendResult:
        """Send one message; never raises for HTTP or transport failures.

        ``body`` may come encoded (JSON bytes: a stored outbox row's), posted as is to a
        webhook instead of parsed and encoded again (a bot message changes it first).

        A bot message with a ``nonce`` carries ``enforce_nonce``: if Discord already created a
        message with that nonce in the last few minutes, it returns that message instead of
        posting again, so a re-send after an uncertain outcome cannot post twice. Webhooks have
        no nonce. ``timeout`` overrides the client's (a re-send waits longer for its answer).
        """
        try:
            if target.kind is TargetKind.WEBHOOK:
                # ?wait=true: Discord answers with the message it created (the confirmation).
                # Appended, not passed as params: httpx would parse the URL again to merge them.
                joiner = "&" if "?" in target.address else "?"
                url = f"{target.address}{joiner}wait=true"
                if isinstance(body, bytes):
                    response = await self._http.request(
                        "POST", url, content=body, headers=JSON_HEADERS, timeout=timeout
                    )
                else:
                    response = await self._http.post(url, json=body, timeout=timeout)
            else:
                if not bot_token:
                    return SendResult(Outcome.DEAD_TARGET, None, detail="no bot token configured")
                # Bot messages take no webhook-only fields.
                fields: dict[str, Any] = orjson.loads(body) if isinstance(body, bytes) else body
                bot_body = {k: v for k, v in fields.items() if k not in ("username", "avatar_url")}
                if nonce is not None:
                    bot_body["nonce"] = nonce
                    bot_body["enforce_nonce"] = True
                response = await self._http.post(
                    f"{self._api_url}/channels/{target.address}/messages",
                    json=bot_body,
                    timeout=timeout,
                    headers={
                        "authorization": f"Bot {bot_token}",
                        "user-agent": self._user_agent,
                    },
                )
        except CircuitOpenError as exc:
            return SendResult(
                Outcome.RETRY,
                None,
                retry_after=exc.retry_in or 0.0,
                detail=str(exc),
                attempted=False,
            )
        except TransportError as exc:
            outcome = Outcome.UNCERTAIN if exc.maybe_sent else Outcome.RETRY
            return SendResult(outcome, None, detail=str(exc))
        return _classify(response)
