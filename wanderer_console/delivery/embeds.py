"""Discord embeds for kills, systems, characters and rally points (PARITY.md §5.3, §10).

Pure renderers: every name they need is passed in (the enrichment layer resolves names before
rendering), so nothing here does I/O. Every user-supplied name is escaped with
:func:`~wanderer_console.domain.discord_limits.escape_markdown`; footers and author names are
plain text in Discord and are left as they are. :func:`build_message` wraps embeds into a
message body with ``allowed_mentions`` so that no name can ever ping, and passes it through
:func:`~wanderer_console.domain.discord_limits.enforce_limits`.

Choices made where the notifier and the brief left room:

- Kill title is ``<victim ship> destroyed in <system>`` (PROTOCOLS.md §5.1 style): the notifier's
  literal "Ship destroyed in …" wastes the most visible line. Names are not re-capitalised.
- Kill embeds carry no fields (as in the notifier); the description holds the whole story.
- The kill author reads "Loss", "Kill", or "Killmail" when no tracked character is involved.
- The map name, when given, is appended to the footer ("Killmail ID: 1 • Map: Home").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from wanderer_console.delivery.formatting import (
    Names,
    alliance_url,
    character_url,
    corporation_logo_url,
    corporation_url,
    discord_relative_time,
    dotlan_region_url,
    dotlan_system_url,
    embed_field,
    footer_with_map,
    format_isk,
    iso_timestamp,
    kill_url,
    link,
    parse_eve_id,
    portrait_url,
    safe_name,
    ship_render_url,
    static_data,
    static_float,
    static_text,
    statics_summary,
    system_icon_url,
    wormhole_kind,
)
from wanderer_console.domain.discord_limits import (
    MessageTemplate,
    build_message,
    build_template,
    escape_markdown,
    truncate,
)
from wanderer_console.domain.eve import SecurityClass, displayed_security, security_class
from wanderer_console.domain.killmail import Attacker, Killmail, Victim
from wanderer_console.domain.map_events import AddSystem, CharacterAdded, RallyPointAdded

__all__ = [
    "CHARACTER_COLOR",
    "KILL_COLOR",
    "LOSS_COLOR",
    "RALLY_COLOR",
    "RALLY_CONTENT",
    "KillContext",
    "KillRole",
    "KillStory",
    "MessageTemplate",
    "Names",
    "OrgInfo",
    "build_message",
    "build_template",
    "format_isk",
    "isk_color",
    "kill_story",
    "kill_color",
    "kill_footer",
    "kill_role",
    "rally_message",
    "render_character",
    "render_kill",
    "render_rally",
    "render_system",
]

KillRole = Literal["kill", "loss", "neutral"]
"""How the map relates to a kill: a tracked attacker, a tracked victim, or neither."""

OrgInfo = tuple[int, str | None, str | None]
"""A corporation or alliance as ``(id, name, ticker)``; name and ticker may be unknown."""

LOSS_COLOR: Final = 0xE74C3C
KILL_COLOR: Final = 0x2ECC71
CHARACTER_COLOR: Final = 0x00FFFF
RALLY_COLOR: Final = 0xFF6B00
RALLY_CONTENT: Final = "Rally point created!"
"""Message content of a rally notification, after the role mentions."""

_ISK_SCALE: Final = ((5e9, 0xFF0000), (1e9, 0xFF6600), (1e8, 0xFFFF00), (1e7, 0x00FF00))
_ISK_DEFAULT: Final = 0x808080
_AUTHOR: Final[dict[str, str]] = {"kill": "Kill", "loss": "Loss", "neutral": "Killmail"}
_SYSTEM_STYLE: Final[dict[SecurityClass, tuple[int, int | None, str]]] = {
    SecurityClass.WORMHOLE: (0x9D4EDD, 45041, "Wormhole"),
    SecurityClass.HIGH: (0x00FF00, 45038, "High-sec"),
    SecurityClass.LOW: (0xFFFF00, 45039, "Low-sec"),
    SecurityClass.NULL: (0xFF0000, 45040, "Null-sec"),
    SecurityClass.UNKNOWN: (0x3498DB, None, ""),
}
_MESSAGE_MAX: Final = 1000


@dataclass(frozen=True)
class KillContext:
    """What a kill embed needs beyond the killmail, for one map and channel."""

    map_name: str
    role: KillRole
    """See :func:`kill_role`; decides colour and author."""
    system_name: str | None = None
    """The EVE name of the system, when resolved outside the killmail."""
    custom_system_name: str | None = None
    """A display name (the map's custom name); used in the title when given."""
    names: Names = field(default_factory=Names)
    notable_items: Sequence[Mapping[str, Any]] = ()
    """Notable dropped items (``name``, ``quantity``, ``value``; :mod:`~..enrich.notable`)."""


def kill_role(km: Killmail, tracked_character_ids: Collection[int]) -> KillRole:
    """Role of a map in a kill from *that map's* tracked characters; a tracked victim wins."""
    if km.victim.character_id is not None and km.victim.character_id in tracked_character_ids:
        return "loss"
    if any(a.character_id in tracked_character_ids for a in km.attackers if a.character_id):
        return "kill"
    return "neutral"


def isk_color(value: float | None) -> int:
    """Colour on the notifier's ISK scale: ≥5B red, ≥1B orange, ≥100M yellow, ≥10M green."""
    for threshold, color in _ISK_SCALE:
        if value is not None and value >= threshold:
            return color
    return _ISK_DEFAULT


def kill_color(km: Killmail, role: KillRole) -> int:
    """Red for a loss, green for a kill, else the ISK scale on dropped, then total, value."""
    if role == "loss":
        return LOSS_COLOR
    if role == "kill":
        return KILL_COLOR
    dropped = km.zkb.dropped_value
    return isk_color(dropped if dropped is not None else km.zkb.total_value)


def _pilot(party: Victim | Attacker, names: Names) -> str:
    """Bold linked pilot name plus linked corp ticker; a structure victim shows its corp."""
    corp_link = corporation_url(party.corporation_id)
    if party.character_id is None and not party.character_name:
        corp = names.name(party.corporation_id, party.corporation_name)
        if corp:
            return f"**{link(safe_name(corp, ''), corp_link)}**"
    name = names.name(party.character_id, party.character_name)
    text = f"**{link(safe_name(name, 'Unknown Pilot'), character_url(party.character_id))}**"
    ticker = names.ticker(party.corporation_id, party.corporation_ticker)
    if ticker:
        text += f" ({link(safe_name(ticker, ''), corp_link)})"
    return text


def _ship(party: Victim | Attacker, names: Names) -> str:
    return safe_name(names.ship(party.ship_type_id, party.ship_name), "Unknown Ship")


def _attacker(attacker: Attacker, names: Names) -> str:
    if attacker.character_id is None and not attacker.character_name:
        return f"a **{_ship(attacker, names)}**"  # an NPC or a structure
    return f"{_pilot(attacker, names)} flying a **{_ship(attacker, names)}**"


def _kill_story(km: Killmail, names: Names) -> str:
    story = f"{_pilot(km.victim, names)} lost their **{_ship(km.victim, names)}** to "
    final = km.final_blow()
    if final is None:
        return story + "unknown attackers."
    story += _attacker(final, names)
    total = max(km.attacker_total, len(km.attackers))
    if total <= 1:
        return story + " solo."
    top = km.top_damage()
    if top is not None and top is not final:
        story += f", Top Damage was done by {_attacker(top, names)}"
    others = total - 1
    return story + f", and {others} other{'s' if others != 1 else ''}."


def notable_items_text(items: Sequence[Mapping[str, Any]]) -> str:
    """The notifier's "**Notable Items:**" block: one bullet per item, ``Name xQty (~value)``;
    empty without items."""
    lines = []
    for item in items:
        name = safe_name(str(item.get("name") or ""), "Unknown Item")
        quantity = item.get("quantity")
        count = f" x{int(quantity)}" if isinstance(quantity, int | float) and quantity > 1 else ""
        value = item.get("value")
        lines.append(f"• {name}{count} (~{format_isk(value)} ISK)")
    return "**Notable Items:**\n" + "\n".join(lines) if lines else ""


@dataclass(frozen=True, slots=True)
class KillStory:
    """What a kill's embed says whichever map it goes to: rendered once for all the maps a
    kill notifies (a popular system's kill notifies hundreds), see :func:`kill_story`."""

    victim_ship: str
    description: str
    """The narrative, the notable loot, the value and the relative time."""


def kill_story(
    km: Killmail, names: Names, notable_items: Sequence[Mapping[str, Any]] = ()
) -> KillStory:
    """The map-independent part of :func:`render_kill`'s embed."""
    value_line = []
    if km.zkb.total_value is not None:
        value_line.append(f"Value: {format_isk(km.zkb.total_value)} ISK")
    if km.kill_time is not None:
        value_line.append(discord_relative_time(km.kill_time))
    description = _kill_story(km, names)
    notable = notable_items_text(notable_items)
    if notable:
        description += "\n\n" + notable
    if value_line:
        description += "\n\n" + " • ".join(value_line)
    return KillStory(_ship(km.victim, names), description)


def kill_footer(km: Killmail, map_name: str | None) -> dict[str, str]:
    """A kill embed's footer: the killmail's id, then the map's name (all a kill's embeds for
    the maps it notifies may differ in, see :meth:`~wanderer_console.domain.discord_limits.
    MessageTemplate.with_footer`)."""
    return footer_with_map(f"Killmail ID: {km.killmail_id}", map_name)


def render_kill(km: Killmail, ctx: KillContext, story: KillStory | None = None) -> dict[str, Any]:
    """Kill embed: ``<Ship> destroyed in <System>``, narrative, value and relative time.

    ``story``: :func:`kill_story` of ``km`` with ``ctx``'s names and notable items, when the
    caller renders the kill for several maps (made here otherwise)."""
    names = ctx.names
    system = (
        ctx.custom_system_name
        or ctx.system_name
        or names.name(km.system_id, km.solar_system_name)
        or f"System {km.system_id}"
    )
    if story is None:
        story = kill_story(km, names, ctx.notable_items)

    final = km.final_blow()
    icon_corp = km.victim.corporation_id
    if ctx.role != "loss" and final is not None and final.corporation_id:
        icon_corp = final.corporation_id
    url = kill_url(km.killmail_id)
    author: dict[str, str] = {"name": _AUTHOR[ctx.role], "url": url}
    if icon_corp:
        author["icon_url"] = corporation_logo_url(icon_corp)

    embed: dict[str, Any] = {
        "title": f"{story.victim_ship} destroyed in {safe_name(system, f'System {km.system_id}')}",
        "url": url,
        "color": kill_color(km, ctx.role),
        "author": author,
        "description": story.description,
        "footer": kill_footer(km, ctx.map_name),
    }
    if km.victim.ship_type_id:
        embed["thumbnail"] = {"url": ship_render_url(km.victim.ship_type_id)}
    elif km.victim.character_id:
        embed["thumbnail"] = {"url": portrait_url(km.victim.character_id)}
    if km.kill_time is not None:
        embed["timestamp"] = iso_timestamp(km.kill_time)
    return embed


def recent_kills_text(kills: Sequence[Mapping[str, Any]]) -> str:
    """The "Recent Kills" field's value: one line per kill (victim ship linked to zKillboard,
    value, relative time), newest first; "No recent kills" for none."""
    lines = []
    for kill in kills:
        killmail_id = kill.get("killmail_id")
        if not isinstance(killmail_id, int):
            continue
        ship = safe_name(kill.get("ship"), "Unknown Ship")
        value = kill.get("value")
        line = f"{link(ship, kill_url(killmail_id))} • {format_isk(value)} ISK"
        at = kill.get("kill_time")
        if isinstance(at, int | float):
            line += f" • <t:{int(at)}:R>"
        lines.append(line)
    return "\n".join(lines) if lines else "No recent kills"


def render_system(
    payload: AddSystem,
    *,
    map_name: str,
    system_name: str | None,
    static_info: Mapping[str, Any] | None,
    recent_kills: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Embed "New System Tracked: <name>" for a system added to the map (always, §10).

    ``static_info`` is the map's ``system-static-info`` data (the ``{"data": …}`` wrapper is
    accepted too); only the fields it knows are shown. The display name is ``system_name``, then
    the payload name, then the static EVE name, then "System <id>". ``recent_kills``
    (:mod:`~wanderer_console.enrich.recent_kills` summaries) adds the notifier's "Recent Kills"
    field, last and not inline; ``None`` (unknown) leaves it out.
    """
    info = static_data(static_info)
    system_id = payload.solar_system_id
    eve_name = static_text(info, "solar_system_name")
    fallback = f"System {system_id}"
    display = (system_name or "").strip() or (payload.name or "").strip() or eve_name or fallback
    shown = safe_name(display, fallback)
    security = static_float(info.get("security"))
    band = security_class(system_id, security)
    color, icon, label = _SYSTEM_STYLE[band]

    if band is SecurityClass.WORMHOLE:
        kind = wormhole_kind(info)
    elif band is SecurityClass.UNKNOWN:
        kind = "system"
    else:
        kind = f"{label.lower()} system"
    dotlan_name = eve_name or (display if display != fallback else None)
    fields = [
        embed_field("System", link(shown, dotlan_system_url(dotlan_name) if dotlan_name else None))
    ]
    class_title = static_text(info, "class_title")
    if band is SecurityClass.WORMHOLE and class_title:
        fields.append(embed_field("Class", escape_markdown(class_title)))
    if security is not None and band not in (SecurityClass.WORMHOLE, SecurityClass.UNKNOWN):
        fields.append(embed_field("Security", f"{displayed_security(security):.1f} ({label})"))
    if info.get("is_shattered") is True:
        fields.append(embed_field("Shattered", "Yes"))
    statics = statics_summary(info)
    if statics:
        fields.append(embed_field("Static Wormholes", statics))
    region = static_text(info, "region_name")
    if region:
        fields.append(
            embed_field("Region", link(escape_markdown(region), dotlan_region_url(region)))
        )
    effect = static_text(info, "effect_name")
    if effect:
        fields.append(embed_field("Effect", escape_markdown(effect)))
    if recent_kills is not None:
        fields.append(embed_field("Recent Kills", recent_kills_text(recent_kills), inline=False))

    embed: dict[str, Any] = {
        "title": f"New System Tracked: {shown}",
        "description": f"A new {kind} has been added to tracking.",
        "color": color,
        "fields": fields,
        "footer": footer_with_map(f"System ID: {system_id}", map_name),
    }
    if icon is not None:
        embed["thumbnail"] = {"url": system_icon_url(icon)}
    return embed


def _org(org: OrgInfo | None, url: str | None, unknown: str) -> str:
    if org is None:
        return unknown
    _, name, ticker = org
    return link(safe_name(ticker or name, unknown), url)


def render_character(
    payload: CharacterAdded,
    *,
    eve_id: int | None,
    name: str | None,
    corporation: OrgInfo | None,
    alliance: OrgInfo | None,
    map_name: str | None = None,
) -> dict[str, Any]:
    """Embed "New Character Tracked: <name>"; ``eve_id`` and ``name`` fall back to the payload."""
    character_id = eve_id or parse_eve_id(payload.character_eve_id, payload.eve_id)
    shown = safe_name(name or payload.name, "Unknown Pilot")
    zkill = character_url(character_id)
    fields = [
        embed_field("Character", link(shown, zkill)),
        embed_field(
            "Corporation",
            _org(
                corporation,
                corporation_url(corporation[0] if corporation else None),
                "Unknown Corporation",
            ),
        ),
    ]
    if alliance is not None:
        fields.append(
            embed_field("Alliance", _org(alliance, alliance_url(alliance[0]), "Unknown Alliance"))
        )
    fields.append(embed_field("Status", "🟢 Tracked"))
    embed: dict[str, Any] = {
        "title": f"New Character Tracked: {shown}",
        "description": "A new character has been added to tracking.",
        "color": CHARACTER_COLOR,
        "fields": fields,
    }
    if zkill and character_id:
        embed["url"] = zkill
        embed["thumbnail"] = {"url": portrait_url(character_id)}
    footer = footer_with_map(f"Character ID: {character_id}" if character_id else "", map_name)
    if footer["text"]:
        embed["footer"] = footer
    return embed


def render_rally(
    payload: RallyPointAdded,
    *,
    system_display_name: str | None,
    now: datetime,
    map_name: str | None = None,
) -> dict[str, Any]:
    """Embed "⚔️ Rally Point Created", stamped with ``now``."""
    fallback = f"System {payload.solar_system_id}"
    system = safe_name(system_display_name or payload.system_name, fallback)
    pilot = safe_name(payload.character_name, "Unknown Pilot")
    description = f"**{pilot}** has created a rally point in **{system}**"
    message = (payload.message or "").strip()
    if message:
        description += f"\n💬 {escape_markdown(truncate(message, _MESSAGE_MAX))}"
    dotlan = dotlan_system_url(payload.system_name) if payload.system_name else None
    pilot_url = character_url(parse_eve_id(payload.character_eve_id))
    embed: dict[str, Any] = {
        "title": "⚔️ Rally Point Created",
        "description": description,
        "color": RALLY_COLOR,
        "fields": [
            embed_field("System", link(system, dotlan)),
            embed_field("Created By", link(pilot, pilot_url)),
        ],
        "timestamp": iso_timestamp(now),
    }
    footer = footer_with_map(
        f"Rally ID: {payload.rally_point_id}" if payload.rally_point_id else "", map_name
    )
    if footer["text"]:
        embed["footer"] = footer
    return embed


def rally_message(
    payload: RallyPointAdded,
    *,
    system_display_name: str | None,
    now: datetime,
    role_mentions: Sequence[str] = (),
    mention_here: bool = False,
    username: str | None = None,
    map_name: str | None = None,
    user_mentions: Sequence[str] = (),
) -> dict[str, Any]:
    """Rally notification body: "Rally point created!" after the role (and voice) mentions,
    plus the embed."""
    embed = render_rally(
        payload, system_display_name=system_display_name, now=now, map_name=map_name
    )
    return build_message(
        [embed],
        content=RALLY_CONTENT,
        username=username,
        role_mentions=role_mentions,
        mention_here=mention_here,
        user_mentions=user_mentions,
    )
