"""``wanderer-console kill KILLMAIL_ID [--hash H]``: why would this kill notify, or not?

Fetches one killmail (from ESI with its hash, else from the killstream's REST API), loads every
map's tracking from the map REST API, and runs the kill through the same rules as live
processing, ignoring the age gate. Nothing is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from wanderer_console.command import EXIT_INVALID, Command
from wanderer_console.config.loader import load_config
from wanderer_console.config.model import Settings
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.ingest.map_rest import MapApiError, MapRestClient
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.rules import decide_kill
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["COMMAND", "DiagnoseError", "diagnose_kill", "fetch_killmail", "run"]


class DiagnoseError(Exception):
    """The kill or a map could not be fetched; the message says which and why."""


def add_arguments(kill: argparse.ArgumentParser) -> None:
    """The ``kill`` command's arguments."""
    kill.add_argument("killmail_id", type=int, metavar="KILLMAIL_ID")
    kill.add_argument("--hash", metavar="H", help="zKillboard hash: fetch the kill from ESI")
    kill.add_argument(
        "--config", type=Path, metavar="PATH", default=argparse.SUPPRESS, help="TOML config file"
    )


async def fetch_killmail(
    settings: Settings, http: HttpClient, killmail_id: int, killmail_hash: str | None
) -> Killmail:
    """Fetch and validate one killmail."""
    if killmail_hash:
        url = f"{settings.esi.url}/killmails/{killmail_id}/{killmail_hash}/"
    else:
        url = f"{settings.killstream.rest_url}/api/v1/killmail/{killmail_id}"
    try:
        response = await http.get(url)
    except TransportError as exc:
        raise DiagnoseError(f"cannot fetch killmail {killmail_id}: {exc}") from exc
    if response.status == 404:
        raise DiagnoseError(f"killmail {killmail_id} not found ({url.split('/api')[0]})")
    if not response.ok:
        raise DiagnoseError(f"killmail {killmail_id}: HTTP {response.status} {response.text(200)}")
    try:
        data = response.json()
        if isinstance(data, dict) and isinstance(data.get("data"), dict):
            data = data["data"]  # the killstream REST envelope
        return Killmail.from_wire(data)
    except (ValueError, ValidationError) as exc:
        raise DiagnoseError(f"killmail {killmail_id}: unusable answer: {exc}") from exc


async def diagnose_kill(
    settings: Settings, killmail_id: int, killmail_hash: str | None = None
) -> dict[str, Any]:
    """The verdict of every map for one kill, JSON-safe."""
    http = HttpClient("diagnose", headers={"user-agent": settings.esi.user_agent})
    index = TrackingIndex()
    load_errors: dict[str, str] = {}
    try:
        km = await fetch_killmail(settings, http, killmail_id, killmail_hash)
        for tenant, map_settings in settings.maps.items():
            if not map_settings.enabled:
                continue
            rest = MapRestClient(http, map_settings)
            try:
                index.replace(tenant, await rest.systems(), await rest.tracked_characters())
            except (MapApiError, TransportError) as exc:
                load_errors[tenant] = str(exc)
    finally:
        await http.aclose()
    now = datetime.now(UTC)
    decisions, refusals = decide_kill(
        km, settings=settings, index=index, now=now, suppressed=False, ignore_age=True
    )
    with tempfile.TemporaryDirectory(prefix="wc-diagnose-") as tmp:
        store = SqliteStore(Path(tmp) / "diagnose.db")
        try:
            # A private copy: the diagnosis must not be muted by start-up suppression.
            quiet = settings.model_copy(deep=True)
            quiet.console.startup_suppression_seconds = 0
            engine = Engine(quiet, store, index, Metrics(), clock=now.timestamp)
            notifications = engine.kill_notifications(km, ignore_age=True)
        finally:
            store.close()
    maps: dict[str, Any] = {}
    for decision in decisions:
        maps[decision.tenant] = {"notify": True, "route": decision.route, "role": decision.role}
    for note in notifications:
        maps[note.tenant]["target"] = note.target.key
        maps[note.tenant]["embeds"] = note.body.get("embeds", [])
    for refusal in refusals:
        if refusal.tenant == "*":
            for tenant in settings.maps:
                maps.setdefault(tenant, {"notify": False, "reason": refusal.reason})
        else:
            maps[refusal.tenant] = {"notify": False, "reason": refusal.reason}
    for tenant, error in load_errors.items():
        maps.setdefault(tenant, {}).update({"tracking_load_error": error})
    for verdict in maps.values():
        if verdict.get("notify") and "target" not in verdict:
            verdict.update({"notify": False, "reason": "no_target"})
    return {"killmail_id": km.killmail_id, "system_id": km.system_id, "maps": maps}


def run(args: argparse.Namespace) -> int:
    """Handle ``kill``: print the verdict as JSON; exit 1 when the kill cannot be fetched."""
    loaded = load_config(args)
    if loaded is None:
        return EXIT_INVALID
    try:
        verdict = asyncio.run(diagnose_kill(loaded.settings, args.killmail_id, args.hash))
    except DiagnoseError as exc:
        print(f"wanderer-console kill: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(verdict, indent=2, sort_keys=True))
    return 0


COMMAND = Command(
    "kill",
    help="run one killmail through every map's rules and explain the outcome",
    description="Fetch a killmail (ESI with --hash, else the killstream REST API), load each "
    "map's tracking, and print as JSON which notifications it would produce and why the "
    "other maps filter it. The age gate is ignored; nothing is sent.",
    add_arguments=add_arguments,
    run=run,
)
