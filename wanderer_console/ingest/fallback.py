"""REST fallback for the killstream (PROTOCOLS.md §3.9): poll while the WebSocket is down.

When the killstream socket has been down for longer than ``after`` seconds, the poller asks
``POST {rest_url}/api/v1/kills/systems`` for the tracked systems (10 per call, last hour) every
``interval`` seconds, until ``socket_up()`` says the socket is back. Kills are fed to the pipeline
with source ``fallback``; the engine de-duplicates on ``killmail_id`` against the socket's kills,
and the poller itself skips kills it already fed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from pydantic import ValidationError

from wanderer_console.domain.killmail import Killmail
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.ingest.health import ConnectionHealth, ConnectionState
from wanderer_console.pipeline.items import Item, KillItem
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["FallbackPoller"]

log = logging.getLogger(__name__)

SOURCE: Final = "fallback"
_SEEN_MAX: Final = 20_000


class FallbackPoller:
    """Polls wanderer-kills REST for the tracked systems while the killstream socket is down."""

    def __init__(
        self,
        http: HttpClient,
        rest_url: str,
        systems: Callable[[], set[int]],
        socket_up: Callable[[], bool],
        sink: Callable[[Item], Awaitable[None]],
        metrics: Metrics,
        *,
        after: float = 60.0,
        interval: float = 30.0,
        batch: int = 10,
        since_hours: int = 1,
        limit: int = 50,
        check: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.source = SOURCE
        self.health = ConnectionHealth("killstream:fallback", "fallback")
        self.health.set_state(ConnectionState.STOPPED)
        self.active = False
        """True while polling (the socket is down past the threshold)."""
        self.polls = 0
        """Completed polling rounds."""
        self.counters: Counter[str] = Counter()
        """``requests``, ``errors``, ``kills``, ``fed``, ``malformed``, ``activations``."""
        self._http = http
        self._url = f"{rest_url.rstrip('/')}/api/v1/kills/systems"
        self._systems = systems
        self._socket_up = socket_up
        self._sink = sink
        self._metrics = metrics
        self._after = after
        self._interval = interval
        self._batch = max(1, batch)
        self._since_hours = since_hours
        self._limit = limit
        self._check = check
        self._clock = clock
        self._sleep = sleep
        self._down_since: float | None = None
        self._seen: OrderedDict[int, None] = OrderedDict()

    async def run(self) -> None:
        """Watch the socket; poll while it is down past the threshold. Returns only if cancelled."""
        while True:
            now = self._clock()
            if self._socket_up():
                self._down_since = None
                if self.active:
                    self._deactivate()
                await self._sleep(self._check)
                continue
            if self._down_since is None:
                self._down_since = now
            if now - self._down_since < self._after:
                await self._sleep(min(self._check, self._after - (now - self._down_since)))
                continue
            if not self.active:
                self._activate(now - self._down_since)
            await self.poll_once()
            await self._wait_interval()

    async def _wait_interval(self) -> None:
        """Sleep until the next round, waking early when the socket comes back."""
        deadline = self._clock() + self._interval
        while True:
            left = deadline - self._clock()
            if left <= 0 or self._socket_up():
                return
            await self._sleep(min(self._check, left))

    def _activate(self, down_for: float) -> None:
        self.active = True
        self.counters["activations"] += 1
        self.health.set_state(ConnectionState.CONNECTING)
        log.warning(
            "killstream down; polling REST instead",
            extra={"ctx": {"down_seconds": round(down_for, 1), "url": self._url}},
        )

    def _deactivate(self) -> None:
        self.active = False
        self.health.set_state(ConnectionState.STOPPED)
        log.info("killstream back; REST polling stopped", extra={"ctx": {"polls": self.polls}})

    async def poll_once(self) -> int:
        """One round over every tracked system; return how many new kills were fed."""
        systems = sorted(s for s in self._systems() if 1 <= s <= 50_000_000)
        fed = 0
        failures = 0
        for start in range(0, len(systems), self._batch):
            chunk = systems[start : start + self._batch]
            body = {"system_ids": chunk, "since_hours": self._since_hours, "limit": self._limit}
            self.counters["requests"] += 1
            try:
                response = await self._http.post(self._url, json=body)
                if not response.ok:
                    raise ValueError(f"HTTP {response.status}: {response.text(200)}")
                kills = _systems_kills(response.json())
            except (TransportError, ValueError) as exc:
                failures += 1
                self.counters["errors"] += 1
                self.health.set_state(ConnectionState.DEGRADED, f"REST poll failed: {exc}")
                self._metrics.errors.labels(component="killstream:fallback").inc()
                log.warning("killstream REST poll failed", extra={"ctx": {"error": str(exc)}})
                continue
            fed += await self._feed(kills)
        self.polls += 1
        if not failures:
            self.health.set_state(ConnectionState.CONNECTED)
        return fed

    async def _feed(self, kills: list[Any]) -> int:
        fed = 0
        for raw in kills:
            self.counters["kills"] += 1
            try:
                if not isinstance(raw, dict):
                    raise ValueError("killmail is not an object")
                km = Killmail.from_wire(raw)
            except (ValidationError, ValueError) as exc:
                self.counters["malformed"] += 1
                self._metrics.events_invalid.labels(source=self.source, reason="killmail").inc()
                log.warning("malformed killmail skipped", extra={"ctx": {"error": str(exc)[:300]}})
                continue
            if km.killmail_id in self._seen:
                continue
            self._seen[km.killmail_id] = None
            if len(self._seen) > _SEEN_MAX:
                self._seen.popitem(last=False)
            self.health.saw_event()
            self.counters["fed"] += 1
            fed += 1
            await self._sink(KillItem(km, orjson.dumps(raw).decode(), self.source))
        return fed


def _systems_kills(body: Any) -> list[Any]:
    """Every killmail of a ``{"data": {"systems_kills": {"<id>": [...]}}}`` answer."""
    data = body.get("data") if isinstance(body, dict) else None
    by_system = data.get("systems_kills") if isinstance(data, dict) else None
    if not isinstance(by_system, dict):
        raise ValueError("answer has no data.systems_kills object")
    out: list[Any] = []
    for kills in by_system.values():
        if isinstance(kills, list):
            out.extend(kills)
    return out
