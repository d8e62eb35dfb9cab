"""Small text and URL helpers shared by the embed renderers (pure functions)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from wanderer_console.domain.discord_limits import escape_markdown, truncate

__all__ = [
    "NAME_MAX",
    "Names",
    "alliance_url",
    "character_url",
    "corporation_logo_url",
    "corporation_url",
    "discord_relative_time",
    "embed_field",
    "footer_with_map",
    "parse_eve_id",
    "static_data",
    "static_float",
    "static_text",
    "statics_summary",
    "wormhole_kind",
    "dotlan_region_url",
    "dotlan_system_url",
    "format_isk",
    "iso_timestamp",
    "kill_url",
    "link",
    "portrait_url",
    "safe_name",
    "ship_render_url",
    "system_icon_url",
]

NAME_MAX: Final = 64
"""Names are cut to this many characters before escaping (EVE names are at most 50)."""

_ZKILL: Final = "https://zkillboard.com"
_IMAGES: Final = "https://images.evetech.net"
_DOTLAN: Final = "https://evemaps.dotlan.net"
_UNITS: Final = (("", 1.0, 0), ("K", 1e3, 1), ("M", 1e6, 1), ("B", 1e9, 2), ("T", 1e12, 2))


@dataclass(frozen=True)
class Names:
    """Names resolved outside the killmail; names carried by the killmail itself win."""

    names: Mapping[int, str] = field(default_factory=dict)
    """Characters, corporations, alliances and systems by id."""
    tickers: Mapping[int, str] = field(default_factory=dict)
    """Corporation and alliance tickers by id."""
    ship_names: Mapping[int, str] = field(default_factory=dict)
    """Type names by type id."""

    def name(self, entity_id: int | None, embedded: str | None = None) -> str | None:
        """The embedded name if present, else the looked-up one, else ``None``."""
        return _pick(embedded, self.names, entity_id)

    def ticker(self, entity_id: int | None, embedded: str | None = None) -> str | None:
        """The embedded ticker if present, else the looked-up one, else ``None``."""
        return _pick(embedded, self.tickers, entity_id)

    def ship(self, type_id: int | None, embedded: str | None = None) -> str | None:
        """The embedded type name if present, else the looked-up one, else ``None``."""
        return _pick(embedded, self.ship_names, type_id)


def _pick(embedded: str | None, table: Mapping[int, str], key: int | None) -> str | None:
    if embedded and embedded.strip():
        return embedded
    found = table.get(key) if key is not None else None
    return found if found and found.strip() else None


def format_isk(value: float | None) -> str:
    """ISK with zKillboard-style abbreviations, no "ISK" suffix: "84.5M", "1.57B", "950.0K".

    Billions and trillions get two decimals, millions and thousands one; smaller values are
    whole numbers. ``None``, NaN and infinities are "Unknown". A value that rounds up to 1000 of
    a unit moves to the next unit ("1.00B", never "1000.0M"). Past 999.99T (no real kill is
    worth that; a bogus total would print hundreds of digits) it is written "1.00e+15".
    """
    if value is None or not math.isfinite(value):
        return "Unknown"
    sign = "-" if value < 0 else ""
    amount = abs(value)
    index = max(i for i, (_, scale, _) in enumerate(_UNITS) if amount >= scale or i == 0)
    while True:
        suffix, scale, decimals = _UNITS[index]
        text = f"{amount / scale:.{decimals}f}"
        if float(text) < 1000:
            return f"{sign}{text}{suffix}"
        if index + 1 == len(_UNITS):
            return f"{sign}{amount:.2e}"
        index += 1


def safe_name(text: str | None, fallback: str) -> str:
    """A user-supplied name ready for markdown: cut to :data:`NAME_MAX`, then escaped.

    Blank or missing names become ``fallback`` (which is escaped too).
    """
    name = (text or "").strip() or fallback
    return escape_markdown(truncate(name, NAME_MAX))


def link(text: str, url: str | None) -> str:
    """Markdown link ``[text](url)``, or just ``text`` without a URL; ``text`` must be escaped."""
    return f"[{text}]({url})" if url else text


def kill_url(killmail_id: int) -> str:
    """zKillboard page of a killmail."""
    return f"{_ZKILL}/kill/{killmail_id}/"


def character_url(character_id: int | None) -> str | None:
    """zKillboard page of a character, if the id is known."""
    return f"{_ZKILL}/character/{character_id}/" if character_id else None


def corporation_url(corporation_id: int | None) -> str | None:
    """zKillboard page of a corporation, if the id is known."""
    return f"{_ZKILL}/corporation/{corporation_id}/" if corporation_id else None


def alliance_url(alliance_id: int | None) -> str | None:
    """zKillboard page of an alliance, if the id is known."""
    return f"{_ZKILL}/alliance/{alliance_id}/" if alliance_id else None


def ship_render_url(type_id: int, size: int = 128) -> str:
    """Render image of a ship type."""
    return f"{_IMAGES}/types/{type_id}/render?size={size}"


def portrait_url(character_id: int, size: int = 128) -> str:
    """Portrait of a character."""
    return f"{_IMAGES}/characters/{character_id}/portrait?size={size}"


def corporation_logo_url(corporation_id: int, size: int = 64) -> str:
    """Logo of a corporation."""
    return f"{_IMAGES}/corporations/{corporation_id}/logo?size={size}"


def system_icon_url(icon_type_id: int) -> str:
    """64 px icon of a system-type item (45041 wormhole, 45038 high, 45039 low, 45040 null)."""
    return f"{_IMAGES}/types/{icon_type_id}/icon?size=64"


def _dotlan_slug(name: str) -> str:
    return quote(name.strip().replace(" ", "_"), safe="-_.")


def dotlan_system_url(name: str) -> str:
    """Dotlan page of a solar system by its EVE name."""
    return f"{_DOTLAN}/system/{_dotlan_slug(name)}"


def dotlan_region_url(name: str) -> str:
    """Dotlan page of a region by its EVE name."""
    return f"{_DOTLAN}/region/{_dotlan_slug(name)}"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, as an embed ``timestamp``; naive times count as UTC."""
    return _utc(moment).isoformat().replace("+00:00", "Z")


def discord_relative_time(moment: datetime) -> str:
    """Discord timestamp markup shown as relative time (``<t:1768069241:R>``)."""
    return f"<t:{int(_utc(moment).timestamp())}:R>"


def embed_field(name: str, value: str, *, inline: bool = True) -> dict[str, Any]:
    """One embed field (inline by default)."""
    return {"name": name, "value": value, "inline": inline}


def footer_with_map(text: str, map_name: str | None) -> dict[str, str]:
    """Footer ``{"text": …}``: ``text``, then "Map: <name>" when a map name is given."""
    suffix = f"Map: {map_name.strip()}" if map_name and map_name.strip() else ""
    return {"text": " • ".join(part for part in (text, suffix) if part)}


def parse_eve_id(*candidates: str | int | None) -> int | None:
    """The first candidate that is a positive integer (EVE ids arrive as strings in map events)."""
    for candidate in candidates:
        text = str(candidate).strip() if candidate is not None else ""
        if text.isdigit() and int(text) > 0:
            return int(text)
    return None


def static_data(info: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The facts of a map's ``system-static-info`` answer, ``{}`` for none.

    The map client hands on the answer's ``data``; the whole answer (``{"data": {…}}``) is
    accepted too, so a caller holding either gets the same facts. The one place that knows the
    wrapper: the tracking (``pipeline/map_updates``) and the system embed both read through it.
    """
    if not info:
        return {}
    data = info.get("data")
    return data if isinstance(data, Mapping) else info


def static_float(value: Any) -> float | None:
    """A number from static info (``"security": "-1.0"``), or ``None`` when absent or invalid.

    Not-a-number and infinities (``float`` reads the strings "NaN" and "inf") are invalid: they
    would show as "nan" and fall into a security band they do not belong to.
    """
    try:
        number = float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and math.isfinite(number) else None


def static_text(info: Mapping[str, Any], key: str) -> str | None:
    """A non-blank string from static info, else ``None``."""
    value = info.get(key)
    if value is None:
        return None
    return str(value).strip() or None


def statics_summary(info: Mapping[str, Any]) -> str | None:
    """Static wormholes, escaped: "C247 → C3, P060 → C1" (``static_details``, else ``statics``)."""
    details = info.get("static_details")
    parts: list[str] = []
    if isinstance(details, list) and details:
        for item in details:
            if not isinstance(item, Mapping) or not item.get("name"):
                continue
            destination = item.get("destination")
            short = destination.get("short_name") if isinstance(destination, Mapping) else None
            parts.append(f"{item['name']} → {short}" if short else str(item["name"]))
    elif isinstance(info.get("statics"), list):
        parts = [str(name) for name in info["statics"] if name]
    return escape_markdown(", ".join(parts)) if parts else None


def wormhole_kind(info: Mapping[str, Any]) -> str:
    """Kind of J-space system, e.g. "Class 4 wormhole system" (type description or class title)."""
    described = static_text(info, "type_description")
    title = static_text(info, "class_title")
    if not described and title and re.fullmatch(r"C\d+", title):
        described = f"Class {title[1:]}"
    return f"{described or ''} wormhole system".strip()
