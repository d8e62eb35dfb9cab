"""``config check``'s look at the map API: does each configured map answer for its slug?

One plain request per map (``GET …/api/maps/<slug>/systems``, no retries: a check must answer
in seconds), so a wrong slug, a ``MAP_URL`` on the wrong server or a refused key is said at
``config check`` with the URL tried and the likely fix (:func:`~.map_rest.not_found_hint`), not
found later as an engine retrying in silence. A server that cannot be reached is only a warning:
the check may run on another host than the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from wanderer_console.config.model import MapSettings
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.ingest.map_rest import MapApiError, MapRestClient, api_origin

__all__ = ["MapProbe", "probe_maps"]


@dataclass(frozen=True, slots=True)
class MapProbe:
    """What the map API said for one map."""

    key: str
    """The map's key (``maps.<key>``)."""
    problem: str | None = None
    """Why an engine on this configuration would not stream the map (``config check`` fails)."""
    warning: str | None = None
    """Something not known to be wrong (the server did not answer)."""
    systems: int | None = None
    """Systems on the map, when it answered."""


async def _probe(key: str, map_settings: MapSettings, client: HttpClient) -> MapProbe:
    rest = MapRestClient(client, map_settings)
    where = f"maps.{key}"
    try:
        systems = await rest.systems()
    except MapApiError as exc:
        if exc.status == 404:
            return MapProbe(key, problem=f"{where}: {exc}")
        if exc.status in (401, 403):
            return MapProbe(
                key,
                problem=(
                    f"{where}: the map API on {api_origin(map_settings.url)} refused the key"
                    f" ({exc.status}): check the map's API key (MAP_API_KEY, or"
                    f" {where}.api_key) against the map's settings"
                ),
            )
        return MapProbe(key, warning=f"{where}: the map API answered {exc}")
    except TransportError as exc:
        return MapProbe(
            key,
            warning=f"{where}: the map API on {api_origin(map_settings.url)} did not answer"
            f" ({exc}); not checked",
        )
    return MapProbe(key, systems=len(systems))


async def probe_maps(
    maps: Mapping[str, MapSettings], *, timeout: float = 10.0, user_agent: str = ""
) -> list[MapProbe]:
    """Ask the map API once for each enabled map's systems; one result per map, in order."""
    headers = {"user-agent": user_agent} if user_agent else None
    client = HttpClient("map", timeout=timeout, headers=headers)
    try:

        async def bounded(key: str, map_settings: MapSettings) -> MapProbe:
            try:
                async with asyncio.timeout(timeout):
                    return await _probe(key, map_settings, client)
            except TimeoutError:
                return MapProbe(
                    key, warning=f"maps.{key}: the map API did not answer in time; not checked"
                )

        enabled = [(key, m) for key, m in maps.items() if m.enabled]
        return list(await asyncio.gather(*(bounded(key, m) for key, m in enabled)))
    finally:
        await client.aclose()
