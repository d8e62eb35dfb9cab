"""The "Recent Kills" of a system, for its new-system notification (PARITY.md §5.3, §9).

Wanderer Notifier adds up to three lines of a system's recent kills, read from wanderer-kills,
to the embed of a system added to the map. :class:`RecentKills` asks the killstream's REST API
(``POST {rest_url}/api/v1/kills/systems`` for the one system, the last ``since_hours``, at most
``limit`` kills), keeps each system's answer in the cache facade's ``recent_kills`` namespace for
``ttl`` seconds (a system added on several maps, or added again, is asked once), and hands the
renderer small summaries: killmail id, time, victim ship and value. A failed or slow request
gives ``None`` (the field is left out; the notification is not held), logged and counted, and
is not cached.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from pydantic import ValidationError

from wanderer_console.domain.killmail import Killmail
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.http.deadline import bounded
from wanderer_console.ingest.fallback import systems_kills

__all__ = ["NAMESPACE", "RecentKills", "summary"]

log = logging.getLogger(__name__)

NAMESPACE: Final = "recent_kills"


def summary(km: Killmail) -> dict[str, Any]:
    """What a "Recent Kills" line shows of a killmail (JSON-safe, so it persists in the cache)."""
    return {
        "killmail_id": km.killmail_id,
        "kill_time": None if km.kill_time is None else km.kill_time.timestamp(),
        "ship": km.victim.ship_name,
        "value": km.zkb.total_value,
    }


class RecentKills:
    """Recent kills per system, through the cache (see the module docstring)."""

    def __init__(
        self,
        cache: CacheFacade,
        http: HttpClient,
        rest_url: str,
        *,
        since_hours: int = 24,
        limit: int = 3,
        ttl: float = 300.0,
        timeout: float = 3.0,
    ) -> None:
        self._cache = cache
        self._http = http
        self._url = f"{rest_url.rstrip('/')}/api/v1/kills/systems"
        self.since_hours = since_hours
        self.limit = limit
        self.ttl = ttl
        self.timeout = timeout
        self.requests = 0
        self.failures = 0

    async def for_system(self, system_id: int) -> list[dict[str, Any]] | None:
        """Up to ``limit`` summaries, newest first; ``[]`` when none; ``None`` when unknown."""
        cached, value = self._cache.lookup(NAMESPACE, system_id)
        if cached:
            return list(value or [])
        self.requests += 1
        body = {"system_ids": [system_id], "since_hours": self.since_hours, "limit": self.limit}
        try:
            # Its request ends by the bound itself (a silent host's timeouts open its breaker;
            # cancelled, it was no verdict, and every new system waited the whole bound).
            response = await bounded(self._http.post(self._url, json=body), self.timeout)
            if not response.ok:
                raise ValueError(f"HTTP {response.status}: {response.text(200)}")
            raw = systems_kills(response.json())
        except (TransportError, ValueError, TimeoutError) as exc:
            self.failures += 1
            log.warning(
                "recent kills unavailable; the system notification goes without them",
                extra={"ctx": {"system_id": system_id, "error": str(exc) or type(exc).__name__}},
            )
            return None
        kills = []
        for item in raw:
            try:
                kills.append(Killmail.from_wire(item) if isinstance(item, dict) else None)
            except (ValidationError, ValueError):
                continue
        found = [k for k in kills if k is not None and k.system_id == system_id]
        found.sort(key=lambda k: k.kill_time.timestamp() if k.kill_time else 0.0, reverse=True)
        summaries = [summary(k) for k in found[: self.limit]]
        self._cache.put_with_ttl(NAMESPACE, system_id, summaries, self.ttl)
        return summaries
