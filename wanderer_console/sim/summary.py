"""What the fake Discord received, in structured form, and the demo's summaries built from it.

The fake reads each accepted message once, when it accepts it (:func:`notifications_in`), and
keeps the result on the :class:`~wanderer_console.sim.discord.ReceivedMessage`: per embed the kind
of notification and, for a kill, its killmail id. This module is the only place in the simulator
that knows how the console's embeds look (titles, the "Killmail ID: N" footer);
:func:`discord_summary` and :func:`scenario_summary` only count those records.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from wanderer_console.sim.discord import FakeDiscord
    from wanderer_console.sim.simulator import ScenarioStats

__all__ = [
    "NOTIFICATION_KINDS",
    "CarriedNotification",
    "NotificationKind",
    "delivered_killmail_ids",
    "discord_summary",
    "notifications_in",
    "scenario_summary",
]

NotificationKind = Literal["kill", "system", "character", "rally", "other"]
NOTIFICATION_KINDS: Final[tuple[NotificationKind, ...]] = (
    "kill",
    "system",
    "character",
    "rally",
    "other",
)

_KILL_FOOTER: Final = "Killmail ID"


@dataclass(frozen=True, slots=True)
class CarriedNotification:
    """One notification (one embed) an accepted message carried."""

    kind: NotificationKind
    killmail_id: int | None
    """The kill's id (from its "Killmail ID: N" footer); ``None`` when the embed has none."""
    identity: str
    """Equal for two deliveries of the same notification to the same target."""


def _kind_of(title: str, footer: str) -> NotificationKind:
    if title.startswith("New System Tracked"):
        return "system"
    if title.startswith("New Character Tracked"):
        return "character"
    if "Rally" in title:
        return "rally"
    if footer.startswith(_KILL_FOOTER):
        return "kill"
    return "other"


def _killmail_id(footer: str) -> int | None:
    """``N`` of a footer "Killmail ID: N" (the map name may follow: "… • Map: Home")."""
    prefix = f"{_KILL_FOOTER}: "
    if not footer.startswith(prefix):
        return None
    first = footer.removeprefix(prefix).split(maxsplit=1)
    return int(first[0]) if first and first[0].isdigit() else None


def notifications_in(target: str, body: dict[str, Any]) -> tuple[CarriedNotification, ...]:
    """The notifications a message body accepted for ``target`` carries, one per embed."""
    carried = []
    for embed in body.get("embeds") or []:
        if not isinstance(embed, dict):
            continue
        title = str(embed.get("title", ""))
        footer_field = embed.get("footer")
        footer = str((footer_field or {}).get("text", "")) if isinstance(footer_field, dict) else ""
        identity = json.dumps(
            [target, embed.get("title"), embed.get("url"), footer_field], sort_keys=True
        )
        carried.append(CarriedNotification(_kind_of(title, footer), _killmail_id(footer), identity))
    return tuple(carried)


def delivered_killmail_ids(fake: FakeDiscord) -> set[int]:
    """Ids of the kills whose notification the fake accepted."""
    return {
        notice.killmail_id
        for message in fake.received
        for notice in message.notifications
        if notice.killmail_id is not None
    }


def discord_summary(fake: FakeDiscord) -> dict[str, Any]:
    """What the fake Discord got: notifications (embeds) per kind, and any delivered twice."""
    per_type: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for message in fake.received:
        for notice in message.notifications:
            per_type[notice.kind] += 1
            seen[notice.identity] += 1
    duplicates = sum(count - 1 for count in seen.values() if count > 1)
    return {
        "messages": len(fake.received),
        "per_type": dict(per_type),
        "duplicate_deliveries": duplicates,
    }


def scenario_summary(stats: ScenarioStats | None, fake: FakeDiscord) -> dict[str, Any] | None:
    """What the simulator sent, and which expected kills never reached the fake Discord."""
    if stats is None:
        return None
    delivered = delivered_killmail_ids(fake)
    expected = set(stats.expected_kill_ids)
    return {
        "sent": dict(stats.counts),
        "kills_expected": len(expected),
        "kills_missing": sorted(expected - delivered),
        "untracked_kills_notified": sorted(set(stats.untracked_kill_ids) & delivered),
    }
