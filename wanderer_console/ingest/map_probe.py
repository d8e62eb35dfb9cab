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

from wanderer_console.config.hosted import parse_notifier_config
from wanderer_console.config.model import HostedSettings, MapSettings
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.ingest.map_rest import MapApiError, MapRestClient, api_origin

__all__ = ["MapProbe", "probe_hosted", "probe_maps"]


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
    maps: int | None = None
    """Hosted mode: the maps the notifier config lists, when it answered."""


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


async def probe_hosted(
    hosted: HostedSettings, *, timeout: float = 10.0, user_agent: str = ""
) -> MapProbe:
    """Hosted mode: ask the notifier-config endpoint once. A refused key, a 404 (no notifier
    plugin at that server) or an answer that is not a list of maps is a problem; entries left
    out are warnings; an unreachable server is a warning."""
    from wanderer_console.ingest.hosted import CONFIG_PATH  # the endpoint, named once

    url = f"{api_origin(hosted.url or '')}{CONFIG_PATH}"
    key = "" if hosted.api_key is None else hosted.api_key.get_secret_value()
    headers = {"authorization": f"Bearer {key}", "accept": "application/json"}
    if user_agent:
        headers["user-agent"] = user_agent
    client = HttpClient("map", timeout=timeout)
    try:
        async with asyncio.timeout(timeout):
            response = await client.get(url, headers=headers)
    except (TransportError, TimeoutError) as exc:
        return MapProbe("hosted", warning=f"hosted: {url} did not answer ({exc}); not checked")
    finally:
        await client.aclose()
    if response.status in (401, 403):
        return MapProbe(
            "hosted",
            problem=f"hosted: {url} refused the key ({response.status}): check"
            " PLUGIN_NOTIFIER_API_KEY (hosted.api_key)",
        )
    if response.status == 404:
        return MapProbe(
            "hosted",
            problem=f"hosted: {url} not found: check MAP_URL (hosted.url), the server whose"
            " notifier plugin lists the maps",
        )
    if not response.ok:
        return MapProbe("hosted", warning=f"hosted: {url} answered {response.status}")
    try:
        maps, left_out = parse_notifier_config(response.json(), hosted)
    except ValueError as exc:
        return MapProbe("hosted", problem=f"hosted: {url}: {exc}")
    warning = "; ".join(f"hosted: map left out: {p}" for p in left_out) or None
    return MapProbe("hosted", warning=warning, maps=len(maps))
