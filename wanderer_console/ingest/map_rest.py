"""Wanderer map REST (PROTOCOLS.md §2): the initial load of systems and tracked characters."""

from __future__ import annotations

from typing import Any

from wanderer_console.config.model import MapSettings
from wanderer_console.domain.tracking import TrackedCharacter, TrackedSystem
from wanderer_console.http.client import HttpClient, HttpResponse

__all__ = ["MapApiError", "MapRestClient"]


class MapApiError(Exception):
    """The map API refused or answered something unusable."""

    def __init__(self, status: int | None, message: str) -> None:
        self.status = status
        super().__init__(f"map API {status or 'error'}: {message}")


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


class MapRestClient:
    """Read-only REST calls for one map."""

    def __init__(self, http: HttpClient, map_settings: MapSettings) -> None:
        self._http = http
        self._base = f"{map_settings.url}/api/maps/{map_settings.slug}"
        self._common = f"{map_settings.url}/api/common"
        self._headers = {
            "authorization": f"Bearer {map_settings.api_key.get_secret_value()}",
            "accept": "application/json",
        }

    async def _data(self, url: str, params: dict[str, str] | None = None) -> Any:
        response: HttpResponse = await self._http.get(url, params=params, headers=self._headers)
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
        data = await self._data(f"{self._base}/systems")
        raw = data.get("systems", []) if isinstance(data, dict) else data
        systems = []
        for item in raw if isinstance(raw, list) else []:
            system_id = _int(item.get("solar_system_id")) if isinstance(item, dict) else None
            if system_id is None:
                continue
            systems.append(
                TrackedSystem(
                    solar_system_id=system_id,
                    name=item.get("original_name") or item.get("name"),
                    custom_name=item.get("custom_name") or None,
                    temporary_name=item.get("temporary_name") or None,
                )
            )
        return systems

    async def tracked_characters(self) -> list[TrackedCharacter]:
        """Tracked characters; ``eve_id`` arrives as a string and is converted."""
        data = await self._data(f"{self._base}/tracked-characters")
        characters = []
        for item in data if isinstance(data, list) else []:
            if not isinstance(item, dict) or item.get("tracked") is False:
                continue
            character = item.get("character") or {}
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
        return characters

    async def static_info(self, solar_system_id: int) -> dict[str, Any] | None:
        """Class, region, statics and effect of a system; ``None`` when unavailable."""
        try:
            data = await self._data(
                f"{self._common}/system-static-info", {"id": str(solar_system_id)}
            )
        except MapApiError:
            return None
        return data if isinstance(data, dict) else None
