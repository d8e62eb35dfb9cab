"""``wanderer-console notify test TARGET``: send one test message and report Discord's answer."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from wanderer_console import __version__
from wanderer_console.command import EXIT_INVALID, EXIT_OK, EXIT_USAGE, Command, refuse_json
from wanderer_console.config.loader import load_config
from wanderer_console.config.model import Settings
from wanderer_console.config.routing import Route, resolve_target
from wanderer_console.delivery.discord import DiscordSender, Outcome
from wanderer_console.delivery.embeds import build_message
from wanderer_console.domain.notification import TargetKind
from wanderer_console.http.client import HttpClient

__all__ = ["COMMAND", "ROUTES", "parse_target", "run", "send_test"]

ROUTES: tuple[str, ...] = get_args(Route)


def add_arguments(notify: argparse.ArgumentParser) -> None:
    """The ``notify`` command's actions: ``test``."""
    notify_sub = notify.add_subparsers(dest="notify_command", metavar="ACTION", required=True)
    test = notify_sub.add_parser(
        "test",
        help="send a test message to a target and show what Discord answered",
        description="TARGET is MAP (the route used for kills in tracked systems) or MAP:ROUTE, "
        f"ROUTE one of {', '.join(ROUTES)}. Exit 0 when Discord accepted the message.",
    )
    test.add_argument("target", metavar="TARGET")
    test.add_argument(
        "--config", type=Path, metavar="PATH", default=argparse.SUPPRESS, help="TOML config file"
    )


def parse_target(settings: Settings, text: str) -> tuple[str, Route]:
    """Split ``MAP[:ROUTE]`` and check both exist; raise ``ValueError`` with advice."""
    tenant, _, route = text.partition(":")
    route = route or "system_kill"
    if tenant not in settings.maps:
        known = ", ".join(settings.maps) or "none configured"
        raise ValueError(f"unknown map {tenant!r} (maps: {known})")
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r} (routes: {', '.join(ROUTES)})")
    return tenant, route  # type: ignore[return-value]


async def send_test(settings: Settings, tenant: str, route: Route) -> dict[str, Any]:
    """Send the test message; the result is JSON-safe and secret-free."""
    target = resolve_target(settings, tenant, route)
    if target is None:
        return {"ok": False, "target": None, "detail": "no webhook or channel for this route"}
    map_settings = settings.maps[tenant]
    token_secret = map_settings.discord.bot_token or settings.discord.bot_token
    token = token_secret.get_secret_value() if token_secret else None
    embed = {
        "title": "Wanderer Console test message",
        "description": f"Route **{route}** of map **{map_settings.name}** reaches this channel.",
        "color": 0x3498DB,
        "timestamp": datetime.now(UTC).isoformat(),
        "footer": {"text": f"wanderer-console {__version__}"},
    }
    body = build_message([embed], username=settings.discord.username)
    http = HttpClient("discord", timeout=settings.discord.request_timeout_seconds)
    try:
        sender = DiscordSender(
            http, api_url=settings.discord.api_url, user_agent=settings.esi.user_agent
        )
        result = await sender.send(
            target, body, bot_token=token if target.kind is TargetKind.BOT_CHANNEL else None
        )
    finally:
        await http.aclose()
    return {
        "ok": result.outcome is Outcome.SENT,
        "target": target.key,
        "outcome": result.outcome.value,
        "status": result.status,
        "detail": result.detail,
        "retry_after": result.retry_after or None,
    }


def run(args: argparse.Namespace) -> int:
    """Handle ``notify test``; prints one JSON object, exit 0 when Discord accepted."""
    loaded = load_config(args, refusal=_config_refusal)
    if loaded is None:
        return EXIT_INVALID
    settings = loaded.settings
    try:
        tenant, route = parse_target(settings, args.target)
    except ValueError as exc:
        return refuse_json("notify test", str(exc), EXIT_USAGE)
    result = asyncio.run(send_test(settings, tenant, route))
    print(json.dumps(result, sort_keys=True))
    return EXIT_OK if result["ok"] else EXIT_INVALID


def _config_refusal(message: str, problems: list[str]) -> None:
    refuse_json("notify test", message, EXIT_INVALID, problems=problems)


COMMAND = Command(
    "notify",
    help="Discord target tools",
    add_arguments=add_arguments,
    run=run,
    answers_json=True,
)
