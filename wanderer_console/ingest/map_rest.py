"""Wanderer map REST (PROTOCOLS.md §2): the initial load of systems and tracked characters."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import quote, urlsplit

from wanderer_console.config.model import MapSettings
from wanderer_console.domain.tracking import TrackedCharacter, TrackedSystem
from wanderer_console.http.client import HttpClient, HttpResponse, TransportError

__all__ = ["MapApiError", "MapRestClient", "api_origin", "map_api_base", "not_found_hint"]

log = logging.getLogger(__name__)


class MapApiError(Exception):
    """The map API refused or answered something unusable."""

    def __init__(self, status: int | None, message: str) -> None:
        self.status = status
        super().__init__(f"map API {status or 'error'}: {message}")


def api_origin(url: str) -> str:
    """``scheme://host[:port]`` of a map URL: the map API lives there, whatever path follows.

    Wanderer Notifier reads ``MAP_URL`` the same way, so an older ``.env`` that sets it to the
    map's own address (``https://wanderer.example.com/my-map``) keeps working.
    """
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else url


def map_api_base(map_settings: MapSettings) -> str:
    """``origin/api/maps/<slug>``: where the map's own resources (REST, event stream) live.

    The slug is the map server's and goes in as one path segment, quoted: one with ``/``,
    ``?``, ``#`` or ``%`` (a hosted map host lists it as the server has it) would otherwise
    make another path, a query or a fragment of it."""
    return f"{api_origin(map_settings.url)}/api/maps/{quote(map_settings.slug, safe='')}"


def not_found_hint(map_settings: MapSettings) -> str:
    """What a 404 for the map's own resources most likely means, and what to change."""
    origin = api_origin(map_settings.url)
    hint = (
        f"no map {map_settings.slug!r} on {origin}: check the slug (MAP_NAME, or"
        " maps.<key>.slug: the map's slug or UUID as in its address) and the server"
        f" (MAP_URL: only its origin, {origin}, is used)"
    )
    if api_origin(map_settings.url) != map_settings.url.rstrip("/"):
        hint += f"; the path in {map_settings.url} is ignored"
    return hint


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _unusable(url: str, what: str, rows: int, usable: int) -> None:
    """Fail a load whose list had rows and not one usable (no id where the API names it:
    a renamed field, nulls): read as "none", a reload wiped the map's tracking. Some unusable
    rows among good ones are skipped with a warning."""
    if rows and not usable:
        raise MapApiError(None, f"{url}: malformed answer (none of the {rows} {what} has an id)")
    if usable < rows:
        log.warning(
            "map answer rows without an id skipped",
            extra={"ctx": {"url": url, "what": what, "skipped": rows - usable, "loaded": usable}},
        )


class MapRestClient:
    """Read-only REST calls for one map."""

    def __init__(
        self,
        http: HttpClient,
        map_settings: MapSettings,
        *,
        static_cache: MutableMapping[tuple[str, int], dict[str, Any]] | None = None,
    ) -> None:
        self._http = http
        self._static = static_cache
        origin = api_origin(map_settings.url)
        self._base = map_api_base(map_settings)
        self._slug = map_settings.slug
        self._common = f"{origin}/api/common"
        self._not_found = not_found_hint(map_settings)
        self._headers = {
            "authorization": f"Bearer {map_settings.api_key.get_secret_value()}",
            "accept": "application/json",
        }

    async def _data(self, url: str, params: dict[str, str] | None = None) -> Any:
        # Each map is its own client of the map server (its own key), paced in its own bucket
        # as a notifier per map would be; map_load_concurrency bounds the loads at once.
        response: HttpResponse = await self._http.get(
            url, params=params, headers=self._headers, rate_key=self._slug
        )
        if response.status == 404 and url.startswith(self._base):
            raise MapApiError(404, f"{url} not found: {self._not_found}")
        if not response.ok:
            raise MapApiError(response.status, response.text(200))
        try:
            body = response.json()
        except ValueError as exc:
            raise MapApiError(response.status, "response is not JSON") from exc
        if not isinstance(body, dict) or "data" not in body:
            raise MapApiError(response.status, "response has no 'data'")
        return body["data"]

    async def systems(self) -> list[TrackedSystem]:
        """Every system on the map, with custom and temporary names."""
        url = f"{self._base}/systems"
        data = await self._data(url)
        raw = data.get("systems") if isinstance(data, dict) else data
        if not isinstance(raw, list):
            # Read as "no systems", a reload would wipe the map's tracking; failed, the map
            # keeps what it had and the load is tried again.
            raise MapApiError(None, f"{url}: malformed answer (no list of systems in 'data')")
        systems = []
        for item in raw:
            system_id = _int(item.get("solar_system_id")) if isinstance(item, dict) else None
            if system_id is None:
                continue  # counted by _unusable below
            systems.append(
                TrackedSystem(
                    solar_system_id=system_id,
                    name=item.get("original_name") or item.get("name"),
                    custom_name=item.get("custom_name") or None,
                    temporary_name=item.get("temporary_name") or None,
                )
            )
        _unusable(url, "systems", len(raw), len(systems))
        return systems

    async def tracked_characters(self) -> list[TrackedCharacter]:
        """Tracked characters; ``eve_id`` arrives as a string and is converted."""
        url = f"{self._base}/tracked-characters"
        data = await self._data(url)
        if not isinstance(data, list):
            raise MapApiError(None, f"{url}: malformed answer ('data' is not a list)")
        characters = []
        untracked = 0
        for item in data:
            if isinstance(item, dict) and item.get("tracked") is False:
                untracked += 1
                continue
            if not isinstance(item, dict):
                continue
            character = item.get("character")
            if not isinstance(character, dict):
                continue  # no character object, so no eve_id: skipped like an entry without one
            eve_id = _int(character.get("eve_id"))
            if eve_id is None:
                continue
            characters.append(
                TrackedCharacter(
                    eve_id=eve_id,
                    name=character.get("name"),
                    internal_id=item.get("character_id"),
                    corporation_id=_int(character.get("corporation_id")),
                    corporation_ticker=character.get("corporation_ticker"),
                    alliance_id=_int(character.get("alliance_id")),
                    alliance_ticker=character.get("alliance_ticker"),
                )
            )
        _unusable(url, "tracked characters", len(data) - untracked, len(characters))
        return characters

    async def static_info(self, solar_system_id: int) -> dict[str, Any] | None:
        """Class, region, statics and effect of a system; ``None`` when unavailable (refused,
        or no answer: the system is then notified without them, never held or dropped).

        Static data: an answer is kept in ``static_cache`` (shared by the maps of the engine,
        keyed by the map server), so a system is asked for once, not per event or per map.
        """
        key = (self._common, solar_system_id)
        if self._static is not None and (cached := self._static.get(key)) is not None:
            return cached
        try:
            data = await self._data(
                f"{self._common}/system-static-info", {"id": str(solar_system_id)}
            )
        except MapApiError:
            return None
        except TransportError as exc:
            log.warning(
                "system static info did not arrive; the system is notified without it",
                extra={"ctx": {"system": solar_system_id, "error": str(exc)}},
            )
            return None
        if not isinstance(data, dict):
            return None
        if self._static is not None:
            self._static[key] = data
        return data
