"""``wanderer-console kill KILLMAIL_ID [--hash H]``: why would this kill notify, or not?

Takes the killmail from the local event store when the engine received it (so a kill the
simulator or a private feed sent can be explained too), else fetches it (from ESI with its hash,
else from the killstream's REST API); loads every map's tracking from the map REST API, or, when
that cannot be reached, rebuilds it from the map events in the store; looks up what the live
pipeline would (``Engine.look_up``: map static info, routes, types, names); and runs the kill
through the same rules as live processing, ignoring the age gate. Nothing is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson
from pydantic import ValidationError

from wanderer_console.command import EXIT_INVALID, EXIT_OK, Command, refuse_json
from wanderer_console.config.loader import load_config
from wanderer_console.config.model import Settings
from wanderer_console.config.paths import command_store, store_arguments, unknown_location
from wanderer_console.config.routing import resolve_target
from wanderer_console.config.trackers import DEFAULT_TRACKER
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.map_events import MapEnvelope, UnknownEventType, parse_payload
from wanderer_console.domain.notification import NotificationType
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.esi import EsiClient
from wanderer_console.enrich.kills import CacheSystemInfo, KillEnricher
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.ingest.map_rest import MapApiError, MapRestClient
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.kill_facts import SystemInfo
from wanderer_console.pipeline.map_updates import MapHooks
from wanderer_console.pipeline.rules import (
    REFUSAL_REASONS,
    KillDecision,
    KillJudgement,
    Refusal,
    flags_allow,
    judge_kill,
)
from wanderer_console.pipeline.trackers import plan_kill_messages
from wanderer_console.store.backends import connect
from wanderer_console.store.base import StoreLocation
from wanderer_console.store.integrity import StorageError
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

__all__ = [
    "COMMAND",
    "NOT_NOTIFIED",
    "NOTIFYING_MAP_EVENTS",
    "DiagnoseError",
    "StoredEvents",
    "diagnose_kill",
    "explain_kill",
    "explain_map_event",
    "explain_reason",
    "explain_trackers",
    "fetch_killmail",
    "run",
    "stored_events",
    "verdicts",
]

_MAP_EVENT_LIMIT = 100_000
"""At most this many stored map events rebuild a map's tracking."""


class DiagnoseError(Exception):
    """The kill or a map could not be fetched; the message says which and why."""


def add_arguments(kill: argparse.ArgumentParser) -> None:
    """The ``kill`` command's arguments."""
    kill.add_argument("killmail_id", type=int, metavar="KILLMAIL_ID")
    kill.add_argument("--hash", metavar="H", help="zKillboard hash: fetch the kill from ESI")
    store_arguments(kill)  # the engine's store is read first


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


class StoredEvents:
    """What the engine's event store holds for a diagnosis: a kill by id, a map's events."""

    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        """Where the store is (the SQLite file, or a PostgreSQL URL)."""

    def _rows(self, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
        if isinstance(self.location, Path) and not self.location.exists():
            return []
        try:
            connection = connect(self.location)
        except (StorageError, OSError):
            return []
        try:
            return list(connection.execute(sql, parameters).fetchall())
        except Exception:  # a store of another shape: as if it held nothing
            return []
        finally:
            connection.close()

    def killmail(self, killmail_id: int) -> Killmail | None:
        """The killmail as the engine received it, if it did."""
        rows = self._rows(
            "SELECT payload FROM events WHERE tenant_id = ? AND event_id = ?",
            ("*", f"kill:{killmail_id}"),
        )
        for (payload,) in rows:
            try:
                return Killmail.from_wire(orjson.loads(payload))
            except (ValueError, ValidationError):
                return None
        return None

    def notifications(self, killmail_id: int) -> list[dict[str, Any]]:
        """What the engine queued for the kill when it received it (the outbox keeps it): per
        map and route, the target, its state, attempts and when it was sent (ISO 8601)."""
        rows = self._rows(
            "SELECT tenant_id, dedup_key, target_key, status, attempts, sent_at, last_error"
            " FROM outbox WHERE dedup_key LIKE ? ORDER BY id",
            (f"kill:{killmail_id}:%",),
        )
        out: list[dict[str, Any]] = []
        for tenant, dedup_key, target, status, attempts, sent_at, error in rows:
            entry: dict[str, Any] = {
                "map": tenant,
                "route": str(dedup_key).split(":")[2] if str(dedup_key).count(":") >= 2 else "",
                "target": target,
                "status": status,
                "attempts": int(attempts),
            }
            if sent_at is not None:
                entry["sent_at"] = datetime.fromtimestamp(float(sent_at), UTC).isoformat()
            if error:
                entry["last_error"] = error
            out.append(entry)
        return out

    def map_events(self, tenant: str) -> list[tuple[MapEnvelope, object]]:
        """The map's stored events, oldest first, parsed (those that do not parse are left out)."""
        rows = self._rows(
            "SELECT payload FROM events WHERE tenant_id = ? AND type != 'custom'"
            f" ORDER BY received_at, id LIMIT {_MAP_EVENT_LIMIT}",
            (tenant,),
        )
        out: list[tuple[MapEnvelope, object]] = []
        for (payload,) in rows:
            try:
                envelope = MapEnvelope.model_validate(orjson.loads(payload))
                out.append((envelope, parse_payload(envelope)))
            except (ValueError, ValidationError, UnknownEventType):
                continue
        return out


def stored_events(location: StoreLocation | None) -> StoredEvents | None:
    """The event store at ``location``, or ``None`` for none."""
    return None if location is None else StoredEvents(location)


async def diagnose_kill(
    settings: Settings,
    killmail_id: int,
    killmail_hash: str | None = None,
    *,
    store: StoredEvents | None = None,
) -> dict[str, Any]:
    """The verdict of every map for one kill, JSON-safe.

    With ``store`` (the engine's event store), the killmail is taken from it when the engine
    received it, and a map whose REST API cannot be reached has its tracking rebuilt from the
    map events stored there.
    """
    http = HttpClient("diagnose", headers={"user-agent": settings.esi.user_agent})
    esi_http = HttpClient("esi", headers={"user-agent": settings.esi.user_agent})
    try:
        return await _diagnose(settings, killmail_id, killmail_hash, store, http, esi_http)
    finally:
        await http.aclose()
        await esi_http.aclose()


async def _no_refresh() -> None:
    """A diagnosis loads each map's tracked characters once, up front."""


async def _diagnose(
    settings: Settings,
    killmail_id: int,
    killmail_hash: str | None,
    store: StoredEvents | None,
    http: HttpClient,
    esi_http: HttpClient,
) -> dict[str, Any]:
    index = TrackingIndex()
    load_errors: dict[str, str] = {}
    tracking: dict[str, str] = {}
    rebuild: list[str] = []
    hooks: dict[str, MapHooks] = {}
    km = None if store is None else store.killmail(killmail_id)
    source = "event store"
    if km is None:
        km = await fetch_killmail(settings, http, killmail_id, killmail_hash)
        source = "esi" if killmail_hash else "killstream rest"
    for tenant, map_settings in settings.maps.items():
        if not map_settings.enabled:
            continue
        rest = MapRestClient(http, map_settings)
        # The engine asks a map for a tracked system's static info when a filter needs it.
        hooks[tenant] = MapHooks(rest.static_info, _no_refresh)
        try:
            index.replace(tenant, await rest.systems(), await rest.tracked_characters())
            tracking[tenant] = "rest"
        except (MapApiError, TransportError) as exc:
            load_errors[tenant] = str(exc)
            rebuild.append(tenant)
    now = datetime.now(UTC)
    info: CacheSystemInfo | None = None
    enricher: KillEnricher | None = None
    if settings.esi.enabled:
        cache = CacheFacade(EsiClient(esi_http, settings.esi.url, settings.esi.user_agent))
        info, enricher = CacheSystemInfo(cache), KillEnricher(cache)
    with tempfile.TemporaryDirectory(prefix="wc-diagnose-") as tmp:
        scratch = SqliteStore(Path(tmp) / "diagnose.db")
        try:
            # A private copy: the diagnosis must not be muted by start-up suppression.
            quiet = settings.model_copy(deep=True)
            quiet.console.startup_suppression_seconds = 0
            engine = Engine(
                quiet,
                scratch,
                index,
                Metrics(),
                hooks=hooks,
                clock=now.timestamp,
                system_info=info,
                enricher=enricher,
            )
            if store is not None:
                for tenant in rebuild:
                    events = store.map_events(tenant)
                    for envelope, payload in events:
                        await engine.map_notifications(tenant, envelope, payload)
                    if events:
                        tracking[tenant] = (
                            "stored map events (partial: what the map's REST API gave at"
                            " start is not stored)"
                        )
            # What the live pipeline looks up before it decides (static info, routes,
            # types, names), so the verdict is the engine's.
            await engine.look_up(km, ignore_age=True)
            judgement = engine.judge(km, ignore_age=True)
            notifications = engine.kill_notifications(km, ignore_age=True)
        finally:
            scratch.close()
    # The default tracker's message is the one keyed by its route (trackers may add others).
    routes = {d.tenant: d.route for d in judgement.decisions}
    default_notes = [n for n in notifications if n.dedup_key.endswith(f":{routes.get(n.tenant)}")]
    maps = verdicts(
        settings,
        judgement.decisions,
        judgement.refusals,
        targets={note.tenant: note.target.key for note in default_notes},
        embeds={note.tenant: note.body.get("embeds", []) for note in default_notes},
    )
    add_trackers(maps, km, judgement, settings)
    for tenant, error in load_errors.items():
        maps.setdefault(tenant, {}).update({"tracking_load_error": error})
    verdict: dict[str, Any] = {
        "killmail_id": km.killmail_id,
        "system_id": km.system_id,
        "killmail_source": source,
        "tracking": tracking,
        "maps": maps,
    }
    if store is not None and source == "event store":
        # What actually happened when it arrived; the rules above say what would happen now
        # (a tracking rebuilt from stored map events lacks what the map's REST API gave at start).
        verdict["when_received"] = {"notifications": store.notifications(killmail_id)}
    return verdict


NOT_NOTIFIED: Final[dict[str, str]] = {
    **REFUSAL_REASONS,
    "no_target": "no Discord target is configured for the route (maps.<map>.discord)",
    "not_notifying": "this event type updates the map's tracking only; it never notifies",
    "muted_on_arrival": "nothing filters it now: when it arrived it was muted by start-up"
    " suppression (history replayed at start), by the map's dedup_ttl_seconds (the same system"
    " or character notified shortly before), or by a switch turned on since",
}
"""Every reason a map is not notified, in words (the ``kill`` command and the console's events
browser say it so)."""

NOTIFYING_MAP_EVENTS: Final[dict[str, NotificationType]] = {
    "add_system": NotificationType.SYSTEM,
    "character_added": NotificationType.CHARACTER,
    "rally_point_added": NotificationType.RALLY,
}
"""The map event types that notify, and as what."""


def explain_reason(reason: str) -> str:
    """What a refusal reason means, in words (the reason itself when it has none)."""
    return NOT_NOTIFIED.get(reason, reason)


def verdicts(
    settings: Settings,
    decisions: Sequence[KillDecision],
    refusals: Sequence[Refusal],
    *,
    targets: Mapping[str, str],
    embeds: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each map's verdict on a kill, JSON-safe: notified (route, role, target and, when given,
    the embeds) or not (the reason, and what it means in words)."""
    maps: dict[str, dict[str, Any]] = {}
    for decision in decisions:
        maps[decision.tenant] = {"notify": True, "route": decision.route, "role": decision.role}
    for tenant, target in targets.items():
        if tenant in maps:
            maps[tenant]["target"] = target
            if embeds is not None and tenant in embeds:
                maps[tenant]["embeds"] = embeds[tenant]
    for refusal in refusals:
        refused = {
            "notify": False,
            "reason": refusal.reason,
            "explanation": explain_reason(refusal.reason),
        }
        if refusal.tenant == "*":
            for tenant in settings.maps:
                maps.setdefault(tenant, dict(refused))
        else:
            maps[refusal.tenant] = refused
    for per_map in maps.values():
        if per_map.get("notify") and "target" not in per_map:
            per_map.update(
                {"notify": False, "reason": "no_target", "explanation": explain_reason("no_target")}
            )
    return maps


def explain_kill(
    km: Killmail,
    settings: Settings,
    index: TrackingIndex,
    *,
    now: datetime,
    info: SystemInfo | None = None,
) -> dict[str, dict[str, Any]]:
    """Each map's verdict on ``km`` by the rules and tracking now (as :func:`diagnose_kill` gives
    it, age gate ignored); pure: nothing is fetched, stored, counted or sent."""
    judgement = judge_kill(
        km, settings=settings, index=index, now=now, suppressed=False, ignore_age=True, info=info
    )
    targets: dict[str, str] = {}
    for decision in judgement.decisions:
        target = resolve_target(settings, decision.tenant, decision.route)
        if target is not None:
            targets[decision.tenant] = target.key
    maps = verdicts(settings, judgement.decisions, judgement.refusals, targets=targets)
    add_trackers(maps, km, judgement, settings)
    return maps


def explain_trackers(
    km: Killmail, judgement: KillJudgement, settings: Settings
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per map with named trackers, each tracker's verdict (its default one first): matched and
    where it posts, or the first reason it refused and what that means."""
    messages = plan_kill_messages(km.killmail_id, judgement, settings)
    target_of = {(m.tenant, name): m.target.key for m in messages for name in m.tracker_names}
    default_reason = {r.tenant: r.reason for r in judgement.refusals}
    named = {(v.tenant, v.tracker): v.reason for v in judgement.trackers}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for tenant, map_settings in settings.maps.items():
        if not map_settings.trackers:
            continue
        fallback = default_reason.get(tenant, default_reason.get("*", "untracked"))
        notified = any(d.tenant == tenant for d in judgement.decisions)
        reasons: dict[str, str | None] = {DEFAULT_TRACKER: None if notified else fallback}
        for tracker in map_settings.trackers:
            reasons[tracker.name] = named.get((tenant, tracker.name), fallback)
        per_tracker: dict[str, dict[str, Any]] = {}
        for name, reason in reasons.items():
            target = target_of.get((tenant, name))
            if reason is None and target is None:
                reason = "no_target"
            if reason is None:
                per_tracker[name] = {"matched": True, "target": target}
            else:
                per_tracker[name] = {
                    "matched": False,
                    "reason": reason,
                    "explanation": explain_reason(reason),
                }
        out[tenant] = per_tracker
    return out


def add_trackers(
    maps: dict[str, dict[str, Any]], km: Killmail, judgement: KillJudgement, settings: Settings
) -> None:
    """Put each map's per-tracker verdicts (:func:`explain_trackers`) under its ``trackers``."""
    for tenant, per_tracker in explain_trackers(km, judgement, settings).items():
        refused = {
            "notify": False,
            "reason": "untracked",
            "explanation": explain_reason("untracked"),
        }
        maps.setdefault(tenant, refused)["trackers"] = per_tracker


def explain_map_event(settings: Settings, tenant: str, event_type: str) -> dict[str, Any]:
    """Why a map event notified nothing, as far as the settings now tell."""
    kind = NOTIFYING_MAP_EVENTS.get(event_type)
    map_settings = settings.maps.get(tenant)
    if kind is None:
        reason = "not_notifying"
    elif map_settings is None or not map_settings.enabled:
        reason = "map_disabled"
    elif not flags_allow(settings, map_settings, kind):
        reason = "disabled"
    elif resolve_target(settings, tenant, kind.value) is None:  # type: ignore[arg-type]
        reason = "no_target"
    else:
        reason = "muted_on_arrival"
    return {"notify": False, "reason": reason, "explanation": explain_reason(reason)}


def run(args: argparse.Namespace) -> int:
    """Handle ``kill``: print the verdict as JSON; exit 1 when the kill cannot be fetched."""
    loaded = load_config(args, refusal=_config_refusal)
    if loaded is None:
        return EXIT_INVALID
    unknown = unknown_location(args)
    if unknown is not None:  # not an SQLite file in place of the engine's PostgreSQL database
        return refuse_json("kill", unknown, EXIT_INVALID)
    try:
        location: StoreLocation | None = command_store(args)
    except (ValueError, StorageError):
        location = None
    try:
        verdict = asyncio.run(
            diagnose_kill(
                loaded.settings, args.killmail_id, args.hash, store=stored_events(location)
            )
        )
    except DiagnoseError as exc:
        database = None if location is None else str(location)
        return refuse_json("kill", str(exc), EXIT_INVALID, database=database)
    verdict["database"] = None if location is None else str(location)  # password masked
    print(json.dumps(verdict, indent=2, sort_keys=True))
    return EXIT_OK


def _config_refusal(message: str, problems: list[str]) -> None:
    refuse_json("kill", message, EXIT_INVALID, problems=problems)


COMMAND = Command(
    "kill",
    help="run one killmail through every map's rules and explain the outcome",
    description="Take a killmail from the engine's event store (when it received it), else "
    "fetch it (ESI with --hash, else the killstream REST API), load each map's tracking (its "
    "REST API, else the map events in the store), and print as JSON which notifications it "
    "would produce and why the other maps filter it; for a map with [[trackers]], each "
    "tracker's verdict (matched and its target, or the first clause it failed). The age gate "
    "is ignored; nothing is sent.",
    add_arguments=add_arguments,
    run=run,
    answers_json=True,
)
