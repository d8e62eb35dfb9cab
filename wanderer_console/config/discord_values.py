"""Discord-bound values of the settings, refused at load when Discord would refuse them at send.

A value Discord rejects (a webhook ``username`` containing "discord", a role id that is not a
snowflake) makes every message carrying it fail with a 400, and the dispatcher gives up on each.
Checked here, the same problem is a located ``config check`` error, a refusal at start and a
rejected hot reload instead. The rules themselves live in
:mod:`wanderer_console.domain.discord_limits` (Discord's documented limits); this module turns
them into pydantic field types.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, SecretStr

from wanderer_console.domain.discord_limits import (
    avatar_url_problem,
    color_problem,
    snowflake_problem,
    webhook_username_problem,
)

__all__ = [
    "ApplicationId",
    "AvatarUrl",
    "BotToken",
    "ChannelId",
    "EmbedColor",
    "GuildId",
    "RoleId",
    "WebhookUrl",
    "WebhookUsername",
]

_BOT_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_\-]{23,28}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,40}")
_WEBHOOK = re.compile(r"^https?://[^/]+/api(/v[0-9]+)?/webhooks/([0-9]+)/[^/?#\s]+$")


def _discord_id(kind: str) -> Callable[[str], str]:
    """A validator of ``kind`` ids (channel, role): what Discord would refuse fails at load."""

    def check(value: str) -> str:
        value = value.strip()
        if not value:
            return value
        if value.startswith("http"):
            raise ValueError(
                f"looks like a URL; a {kind} id is a number (did you mean *_webhook_url?)"
            )
        if _BOT_TOKEN_SHAPE.search(value):
            raise ValueError(
                f"looks like a Discord bot token; a {kind} id is a number (put the token in"
                " bot_token, and reset it if this file was shared)"
            )
        if value.startswith("wci_"):
            raise ValueError(
                f"looks like a console ingest key; a {kind} id is a number (ingest keys belong"
                " in the tool that posts events)"
            )
        problem = snowflake_problem(value, kind)
        if problem is not None:
            raise ValueError(f"must be a Discord id made of digits: {problem}")
        return value

    return check


def _bot_token(value: SecretStr | None) -> SecretStr | None:
    # Discord answers 401 to every message sent with a malformed token; the messages never name
    # the token itself (it is a secret), only what is wrong with it.
    if value is None or not value.get_secret_value().strip():
        return None
    token = value.get_secret_value().strip()
    if token.lower().startswith(("bot ", "bearer ")):
        raise ValueError(
            'starts with "Bot " or "Bearer ": give the token alone (the console adds "Bot ")'
        )
    if any(c.isspace() or not c.isprintable() or not c.isascii() for c in token):
        raise ValueError("must be the token alone: no spaces, line breaks or non-ASCII characters")
    return SecretStr(token)


def _webhook_username(value: str) -> str:
    problem = webhook_username_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value.strip()


def _avatar_url(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    problem = avatar_url_problem(value.strip())
    if problem is not None:
        raise ValueError(problem)
    return value.strip()


def _embed_color(value: int) -> int:
    problem = color_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _webhook_secret(value: SecretStr | None) -> SecretStr | None:
    if value is None or not value.get_secret_value():
        return None
    match = _WEBHOOK.match(value.get_secret_value())
    if not match:
        raise ValueError(
            "must be a Discord webhook URL like https://discord.com/api/webhooks/ID/TOKEN"
        )
    if snowflake_problem(match.group(2)) is not None:
        raise ValueError("the webhook id (the number before the token) is not a Discord id")
    return value


ChannelId = Annotated[str, AfterValidator(_discord_id("channel"))]
"""A channel id (blank: not set)."""
RoleId = Annotated[str, AfterValidator(_discord_id("role"))]

GuildId = Annotated[str, AfterValidator(_discord_id("guild"))]

ApplicationId = Annotated[str, AfterValidator(_discord_id("application"))]
"""A role id, mentioned as ``<@&id>`` and listed in ``allowed_mentions.roles``."""
WebhookUrl = Annotated[SecretStr | None, AfterValidator(_webhook_secret)]
"""An execute-webhook URL (blank: not set)."""
BotToken = Annotated[SecretStr | None, AfterValidator(_bot_token)]
"""A bot token as sent after ``Authorization: Bot`` (blank: not set)."""
WebhookUsername = Annotated[str, AfterValidator(_webhook_username)]
"""A ``username`` override Discord accepts (blank: the webhook's own name)."""
AvatarUrl = Annotated[str | None, AfterValidator(_avatar_url)]
"""An ``avatar_url`` Discord shows (http or https), for fields that set one."""
EmbedColor = Annotated[int, AfterValidator(_embed_color)]
"""An embed ``color`` Discord accepts (0 to 0xFFFFFF), for fields that set one."""
