"""REST fallback for the killstream (PROTOCOLS.md §3.9): poll while the WebSocket is down,
and backfill every gap once it is back.

When the killstream socket has been down for longer than ``after`` seconds, the poller asks
``POST {rest_url}/api/v1/kills/systems`` for the tracked systems (10 per call, last hour) every
``interval`` seconds, until ``socket_up()`` says the socket is back. Kills are fed to the pipeline
with source ``fallback``; the engine de-duplicates on ``killmail_id`` against the socket's kills,
and the poller itself skips kills it already fed.

**Gaps.** The socket has no resume: kills published while it was down (a reconnect, a channel
rejoin, the process itself stopped or killed) are lost to it, and the rejoin's preload brings
back at most five per system. So after every new join (``joins()`` counts them) the poller
asks the same endpoint for the kills since the gap began, with ``since_hours``: the gap begins
at the last moment the socket was seen up, or, at the first join of a run, at ``resume_from``
(the previous run's watermark). The request reaches ``overlap`` seconds further back (kills are
published late; a crash loses what was read but not stored) and never more than ``max_age``
(older kills fail the max-age gate); kills older than that start are not fed. Backfilled kills
go through the normal pipeline with source ``backfill``, so a kill the socket also brought is
stored and notified once. While the socket is up and no gap is pending, ``mark_seen(now)``
records the watermark every few seconds; it never moves past an unfilled gap.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from pydantic import ValidationError

from wanderer_console.domain.killmail import Killmail
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.ingest.health import ConnectionHealth, ConnectionState
from wanderer_console.ingest.items import Item, KillItem
from wanderer_console.telemetry import tracing
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["BACKFILL_SOURCE", "BackfillPolicy", "FallbackPoller", "systems_kills"]

log = logging.getLogger(__name__)

SOURCE: Final = "fallback"
BACKFILL_SOURCE: Final = "backfill"
"""Source of kills fetched to fill a gap in the stream (metrics and logs tell them apart)."""
_SEEN_MAX: Final = 20_000
_MAX_SYSTEM_ID: Final = 50_000_000


@dataclass(frozen=True, slots=True)
class BackfillPolicy:
    """How far back and how hard a gap backfill reaches (every bound is per gap)."""

    overlap: float = 300.0
    """Seconds before the gap's start also asked for (late kills, reads lost in a crash)."""
    max_age: float = 3600.0
    """Never reach further back than this: older kills fail the max-age gate anyway."""
    limit: int = 200
    """Kills asked for per system (the endpoint's ``limit``)."""
    timeout: float = 60.0
    """One try's time budget; the systems it did not reach are left for the next try."""
    attempts: int = 3
    """Tries before a gap is given up (logged); tries are ``interval`` seconds apart."""
    mark_every: float = 5.0
    """Seconds between watermark writes while the socket is up and no gap is pending."""


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
        joins: Callable[[], int] | None = None,
        resume_from: float | None = None,
        mark_seen: Callable[[float], None] | None = None,
        policy: BackfillPolicy | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.source = SOURCE
        self.health = ConnectionHealth("killstream:fallback", "fallback")
        self.health.set_state(ConnectionState.STOPPED)
        self.active = False
        """True while polling (the socket is down past the threshold)."""
        self.polls = 0
        """Completed polling rounds."""
        self.counters: Counter[str] = Counter()
        """``requests``, ``errors``, ``kills``, ``fed``, ``malformed``, ``activations``; for
        gaps ``gaps``, ``backfilled`` (kills fed), ``backfill_too_old`` (before the gap's
        reach), ``gaps_filled`` and ``gaps_abandoned``."""
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
        self._joins = joins
        self._mark_seen = mark_seen
        self._policy = policy or BackfillPolicy()
        self._wall = wall
        self._epoch = 0  # the joins already handled
        self._last_up = resume_from  # wall time the socket was last seen up and whole
        self._born = wall()
        self._gap_from: float | None = None
        self._gap_left: list[int] | None = None  # systems a failed try did not reach
        self._gap_tries = 0
        self._next_try = 0.0
        self._marked = -math.inf

    async def run(self) -> None:
        """Watch the socket; poll while it is down past the threshold. Returns only if cancelled."""
        while True:
            now = self._clock()
            if self._socket_up():
                self._down_since = None
                if self.active:
                    self._deactivate()
                await self._while_up()
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

    # -- gaps ----------------------------------------------------------------------------------

    @property
    def gap_pending(self) -> bool:
        """True while a gap waits to be backfilled (the watermark does not move meanwhile)."""
        return self._gap_from is not None

    @property
    def settled(self) -> bool:
        """The latest join has been seen and no gap waits: from now on, no request until the
        socket goes down again."""
        seen = self._joins is None or self._joins() == self._epoch
        return seen and not self.active and self._gap_from is None

    async def _while_up(self) -> None:
        """Open a gap on a new join, try to fill a pending one, else advance the watermark."""
        epoch = self._joins() if self._joins is not None else 0  # no count: no gaps
        if self._joins is not None and epoch == 0:
            return  # never joined yet: nothing seen, nothing to mark
        if epoch != self._epoch:
            self._epoch = epoch
            # A pending gap starts earlier: it grows to cover this one too.
            since = self._last_up if self._gap_from is None else self._gap_from
            if since is None and epoch > 1:
                since = self._born  # lost before we ever saw it up: all of this run so far
            if since is not None:
                if self._gap_from is None:
                    self.counters["gaps"] += 1
                self._gap_from = since
                self._gap_left = None  # every system again: those done missed this one
                self._gap_tries = 0
                self._next_try = 0.0
        if self._gap_from is not None:
            if self._clock() >= self._next_try:
                await self._fill_gap(self._gap_from)
            # Not marked this round either way: the socket may have been lost meanwhile.
            return
        now = self._wall()
        self._last_up = now
        if self._mark_seen is not None and now - self._marked >= self._policy.mark_every:
            self._marked = now
            self._mark_seen(now)

    async def _fill_gap(self, since: float) -> None:
        """One try at the pending gap; close it when done or out of tries."""
        log.info(
            "killstream gap: backfilling over REST",
            extra={"ctx": {"since": round(since, 3), "try": self._gap_tries + 1}},
        )
        before = self.counters["backfilled"]
        left = await self.backfill(since, self._gap_left)
        self._gap_tries += 1
        fed = self.counters["backfilled"] - before
        if left and self._gap_tries < self._policy.attempts:
            self._gap_left = left
            self._next_try = self._clock() + self._interval
            return
        if left:
            self.counters["gaps_abandoned"] += 1
            self._metrics.errors.labels(component="killstream:backfill").inc()
            log.warning(
                "killstream gap not fully backfilled; giving up",
                extra={"ctx": {"systems_left": len(left), "tries": self._gap_tries}},
            )
        else:
            self.counters["gaps_filled"] += 1
            log.info("killstream gap backfilled", extra={"ctx": {"kills": fed}})
        self._gap_from = None
        self._gap_left = None

    async def backfill(self, since: float, systems: Iterable[int] | None = None) -> list[int]:
        """Ask for the kills of ``systems`` (default: every tracked one) since ``since``.

        ``since`` is a wall time; the request reaches ``overlap`` seconds further back but never
        more than ``max_age`` (``since_hours`` is whole hours, so older answers are cut here).
        Bounded: ``limit`` kills per system, ``batch`` systems per request, ``timeout`` seconds
        in all. Returns the systems not done (a failed request, or out of time).
        """
        policy = self._policy
        now = self._wall()
        start = max(since - policy.overlap, now - policy.max_age)
        since_hours = max(1, math.ceil((now - start) / 3600))
        wanted = self._systems() if systems is None else systems
        todo = sorted(s for s in wanted if 1 <= s <= _MAX_SYSTEM_ID)
        deadline = self._clock() + policy.timeout
        left: list[int] = []
        for begin in range(0, len(todo), self._batch):
            if self._clock() >= deadline:
                left.extend(todo[begin:])
                break
            chunk = todo[begin : begin + self._batch]
            kills = await self._request(chunk, since_hours, policy.limit)
            if isinstance(kills, str):
                left.extend(chunk)
                continue
            self.counters["backfilled"] += await self._feed(kills, BACKFILL_SOURCE, start)
        return left

    def forget(self) -> None:
        """Forget which kills were fed (a map was taken over from another instance: its kills
        must reach the pipeline again, where the event log and the outbox keep them once)."""
        self._seen.clear()

    # -- polling -------------------------------------------------------------------------------

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
            kills = await self._request(chunk, self._since_hours, self._limit)
            if isinstance(kills, str):
                failures += 1
                self.health.set_state(ConnectionState.DEGRADED, f"REST poll failed: {kills}")
                continue
            fed += await self._feed(kills, self.source)
        self.polls += 1
        if not failures:
            self.health.set_state(ConnectionState.CONNECTED)
        return fed

    async def _request(self, systems: list[int], since_hours: int, limit: int) -> list[Any] | str:
        """The kills of one request, or why it failed (counted and logged)."""
        body = {"system_ids": systems, "since_hours": since_hours, "limit": limit}
        self.counters["requests"] += 1
        try:
            response = await self._http.post(self._url, json=body)
            if not response.ok:
                raise ValueError(f"HTTP {response.status}: {response.text(200)}")
            return systems_kills(response.json())
        except (TransportError, ValueError) as exc:
            self.counters["errors"] += 1
            self._metrics.errors.labels(component="killstream:fallback").inc()
            log.warning("killstream REST poll failed", extra={"ctx": {"error": str(exc)}})
            return str(exc)

    async def _feed(self, kills: list[Any], source: str, not_before: float | None = None) -> int:
        """Hand kills not fed before to the pipeline; with ``not_before`` (a wall time), kills
        that happened earlier are skipped (a backfill's reach)."""
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
            if (
                not_before is not None
                and km.kill_time is not None
                and km.kill_time.timestamp() < not_before
            ):
                self.counters["backfill_too_old"] += 1
                continue
            self._seen[km.killmail_id] = None
            if len(self._seen) > _SEEN_MAX:
                self._seen.popitem(last=False)
            self.health.saw_event()
            self.counters["fed"] += 1
            fed += 1
            trace = None
            if tracing.enabled():
                attributes: dict[str, str | int] = {"killmail.id": km.killmail_id, "source": source}
                trace = tracing.source_span("killstream.rest.kill", attributes)
            await self._sink(KillItem(km, orjson.dumps(raw).decode(), source, trace_parent=trace))
        return fed


def systems_kills(body: Any) -> list[Any]:
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
