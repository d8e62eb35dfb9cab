"""zKillboard R2Z2 poller (PROTOCOLS.md §8): the public killmail feed, one file per sequence.

Etiquette (§8.2), followed exactly:

- a User-Agent with a contact on every request; strictly sequential, no prefetch;
- after a 200 the next request waits ≥ 200 ms (≥ 100 ms while catching up to ``sequence.json``);
- after a 404 it waits 10 s (never less than 6 s) and asks for the same sequence again;
- 5xx, timeouts and non-JSON bodies back off 6 s doubling to 60 s, same sequence (a file that
  stays non-JSON after a few tries is logged, counted and skipped);
- 429 honours ``Retry-After`` (60 s without one); 403 stops the poller for 60 min and marks the
  source failed;
- a re-fetch (``sequence_updated``) that still fails after three tries is given up (logged,
  counted): it is an update of a kill already read and never holds the live feed;
- the cursor is saved after each sequence, but never past a kill the pipeline has not written
  yet: each sequence is saved once every item queued up to it is done (``checkpoints``, the
  queue's marks), so a pipeline that is never idle still moves it; a crash re-reads only what
  was not written, the engine de-duplicates. On start it is resumed when younger than 23 h, else
  ``sequence.json`` is the start (and the gap logged). 404s for more than 5 min while
  ``sequence.json`` is more than 100 ahead mean the cursor fell off the feed: resync, log the gap.

Packages are turned into the killstream's killmail shape (§4) and only kills in a tracked system
or involving a tracked character reach the sink; the rest are counted. ``sequence_updated`` makes
the poller re-fetch the re-published older file (the engine de-duplicates on ``killmail_id``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import orjson
from pydantic import ValidationError

from wanderer_console.domain.checkpoints import PendingMarks
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.http.client import HttpClient, HttpResponse, TransportError
from wanderer_console.ingest.health import ConnectionHealth, ConnectionState
from wanderer_console.ingest.items import Item, KillItem
from wanderer_console.store.writes import StoreWriteError
from wanderer_console.telemetry import tracing
from wanderer_console.telemetry.metrics import Metrics

__all__ = [
    "CURSOR_STREAM",
    "Checkpoints",
    "CursorStore",
    "R2z2Source",
    "R2z2Timing",
    "package_to_wire",
]

log = logging.getLogger(__name__)

CURSOR_STREAM: Final = "r2z2"
SOURCE: Final = "r2z2"
_NON_JSON_TRIES: Final = 3
"""A file still non-JSON after this many tries is malformed, not a transient error page."""
_REFETCH_MAX: Final = 100
_REFETCH_TRIES: Final = 3
"""An optional re-fetch still failing after this many tries is given up: the live feed goes on."""
_MARKS_MAX: Final = 10_000
"""Sequences waiting for their queue checkpoint; past this the oldest are forgotten (the cursor
then moves a little later, never too far)."""


class CursorStore(Protocol):
    """The part of the store the poller uses."""

    def get_cursor(self, stream: str) -> str | None: ...

    def set_cursor(self, stream: str, value: str) -> None: ...


class Checkpoints(Protocol):
    """The part of the pipeline's queue the poller uses to know what is written."""

    def mark(self) -> int:
        """A point after every item queued so far."""
        ...

    def passed(self, mark: int) -> bool:
        """Every item queued before ``mark`` is done (written)."""
        ...


@dataclass(frozen=True, slots=True)
class R2z2Timing:
    """Every delay of the poller, in seconds. Defaults are PROTOCOLS.md §8.2; tests shrink them."""

    after_ok: float = 0.2
    """After a 200 at the live edge."""
    catching_up: float = 0.1
    """After a 200 while behind ``sequence.json``."""
    after_miss: float = 10.0
    """After a 404 (the feed 403s a retry sooner than 6 s)."""
    error_base: float = 6.0
    """First wait after a 5xx, timeout or non-JSON body; doubles each time."""
    error_cap: float = 60.0
    default_retry_after: float = 60.0
    """429 without ``Retry-After``."""
    ban: float = 3600.0
    """Pause after a 403."""
    stale_after: float = 300.0
    """404s on one sequence this long make the poller compare with ``sequence.json``."""
    stale_lead: int = 100
    """…and resync when ``sequence.json`` is more than this far ahead."""
    max_cursor_age: float = 23 * 3600.0
    """A saved cursor older than this is not resumed (files live about 24 h)."""
    request_timeout: float = 10.0


def _cursor_value(seq: int, saved_at: float) -> str:
    # Zero-padded so the store's "keep the max" compares numerically; the save time rides along.
    return f"{seq:012d}:{int(saved_at)}"


def _parse_cursor(value: str) -> tuple[int, float | None] | None:
    head, _, stamp = value.partition(":")
    if not head.strip().isdigit():
        return None
    saved_at = float(stamp) if stamp.strip().isdigit() else None
    return int(head), saved_at


def package_to_wire(package: Any) -> dict[str, Any]:
    """An R2Z2 package as a killstream-shape killmail dict; ``ValueError`` when it is not one."""
    if not isinstance(package, dict):
        raise ValueError("package is not an object")
    esi = package.get("esi")
    if not isinstance(esi, dict):
        raise ValueError("package has no esi object")
    killmail_id = package.get("killmail_id", esi.get("killmail_id"))
    if not isinstance(killmail_id, int) or isinstance(killmail_id, bool):
        raise ValueError("package has no integer killmail_id")
    for key in ("killmail_time", "solar_system_id", "victim"):
        if key not in esi:
            raise ValueError(f"esi killmail lacks {key}")
    if not isinstance(esi["victim"], dict):
        raise ValueError("esi victim is not an object")
    zkb_raw = package.get("zkb")
    zkb = dict(zkb_raw) if isinstance(zkb_raw, dict) else {}
    if isinstance(package.get("hash"), str):
        zkb.setdefault("hash", package["hash"])
    victim = {k: v for k, v in esi["victim"].items() if k != "items"}
    attackers = esi.get("attackers", [])
    if not isinstance(attackers, list):
        raise ValueError("esi attackers is not a list")
    wire: dict[str, Any] = {
        "killmail_id": killmail_id,
        "kill_time": esi["killmail_time"],
        "system_id": esi["solar_system_id"],
    }
    for key in ("moon_id", "war_id"):
        if esi.get(key) is not None:
            wire[key] = esi[key]
    count = zkb.get("attackerCount")
    wire["attacker_count"] = count if isinstance(count, int) else len(attackers)
    wire["victim"] = victim
    wire["attackers"] = attackers
    wire["zkb"] = zkb
    return wire


class _Stop(Exception):
    """Internal: the current request ended the poll step (wait already scheduled)."""


class R2z2Source:
    """Polls R2Z2 one sequence at a time and feeds tracked kills to the pipeline."""

    def __init__(
        self,
        http: HttpClient,
        store: CursorStore,
        index: TrackingIndex,
        sink: Callable[[Item], Awaitable[None]],
        metrics: Metrics,
        *,
        url: str = "https://r2z2.zkillboard.com",
        user_agent: str,
        max_age_hours: float = 1.0,
        timing: R2z2Timing | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        if not user_agent.strip():
            raise ValueError("R2Z2 needs a User-Agent with a contact")
        self.source = SOURCE
        self.health = ConnectionHealth("r2z2", "r2z2")
        self.counters: Counter[str] = Counter()
        """``fetched``, ``delivered``, ``untracked``, ``too_old``, ``malformed``, ``missed``,
        ``throttled``, ``forbidden``, ``errors``, ``refetched``, ``refetch_failed``,
        ``resyncs``."""
        self.sequence: int | None = None
        """The next sequence to fetch."""
        self.head: int | None = None
        """The last value ``sequence.json`` gave."""
        self.gaps: list[int] = []
        """Sequences skipped by each resync (start with an old cursor, or a stale cursor)."""
        self._http = http
        self._store = store
        self._index = index
        self._sink = sink
        self._metrics = metrics
        self._base = url.rstrip("/")
        self._headers = {"user-agent": user_agent, "accept": "application/json"}
        self._max_age = timedelta(hours=max_age_hours) if max_age_hours > 0 else None
        self.timing = timing or R2z2Timing()
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._checkpoints = checkpoints
        self._marks: PendingMarks[int] = PendingMarks(_MARKS_MAX)
        """The sequences done here and not yet saved, each with its queue mark: a sequence is
        saved once its mark has passed."""
        self._next_at = 0.0
        self._errors = 0
        self._non_json = 0
        self._missing_since: float | None = None
        self._refetch: deque[int] = deque(maxlen=_REFETCH_MAX)
        self._refetch_failures: Counter[int] = Counter()

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll forever (returns only when cancelled)."""
        self.health.set_state(ConnectionState.CONNECTING)
        while self.sequence is None:
            self.sequence = await self._start_sequence()
        while True:
            await self.step()

    async def step(self) -> None:
        """One request: a pending re-fetch, else the current sequence."""
        self._save_settled()
        if self._refetch:
            await self._fetch_update(self._refetch.popleft())
        else:
            await self._fetch_current()

    async def _start_sequence(self) -> int | None:
        saved = self._store.get_cursor(CURSOR_STREAM)
        parsed = _parse_cursor(saved) if saved else None
        if parsed is not None:
            seq, saved_at = parsed
            age = None if saved_at is None else self._wall() - saved_at
            if age is None or age < self.timing.max_cursor_age:
                log.info("r2z2 resuming", extra={"ctx": {"cursor": seq, "age": age}})
                return seq + 1
        head = await self._head()
        if head is None:
            return None
        if parsed is not None:
            gap = max(0, head - parsed[0] - 1)
            self.gaps.append(gap)
            self.counters["resyncs"] += 1
            log.warning(
                "r2z2 cursor too old; starting from sequence.json",
                extra={"ctx": {"cursor": parsed[0], "sequence": head, "gap": gap}},
            )
        else:
            log.info("r2z2 starting from sequence.json", extra={"ctx": {"sequence": head}})
        return head

    async def _head(self) -> int | None:
        """``sequence.json``, paced like any request; None after a failure (wait scheduled)."""
        try:
            response = await self._get("sequence.json")
            if response.status != 200:
                self._on_status(response, missing=False)
                return None
            body = self._json(response)
        except _Stop:
            return None
        seq = body.get("sequence") if isinstance(body, dict) else None
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            self._on_error("sequence.json has no integer sequence")
            return None
        self.head = seq
        self._healthy()
        self._wait(self.timing.after_ok)
        return seq

    async def _fetch_current(self) -> None:
        seq = self.sequence
        assert seq is not None
        try:
            response = await self._get(f"{seq}.json")
            if response.status == 404:
                await self._on_missing(seq)
                return
            if response.status != 200:
                self._on_status(response, missing=False)
                return
            try:
                package = self._json(response)
            except _Stop:
                if self._non_json < _NON_JSON_TRIES:
                    return
                package = None
        except _Stop:
            return
        self._missing_since = None
        self._non_json = 0
        self._healthy()
        self.counters["fetched"] += 1
        if package is None:
            self._malformed(seq, "body is not JSON")
        else:
            await self._handle_package(seq, package)
        self._advance(seq)
        self.sequence = seq + 1
        behind = self.head is not None and seq < self.head
        self._wait(self.timing.catching_up if behind else self.timing.after_ok)

    async def _fetch_update(self, seq: int) -> None:
        try:
            response = await self._get(f"{seq}.json")
            if response.status == 404:
                # An updated file that is gone: nothing to re-read; never ask for it again.
                self._wait(self.timing.after_miss)
                return
            if response.status != 200:
                self._on_status(response, missing=False)
                self._refetch_failures[seq] += 1
                if self._refetch_failures[seq] < _REFETCH_TRIES:
                    self._refetch.appendleft(seq)
                    return
                # Only an update of a kill already read: never worth stalling the feed for.
                del self._refetch_failures[seq]
                self.counters["refetch_failed"] += 1
                log.warning(
                    "r2z2 re-fetch of an updated file given up",
                    extra={"ctx": {"sequence": seq, "status": response.status}},
                )
                return
            package = self._json(response)
        except _Stop:
            return
        self._refetch_failures.pop(seq, None)
        self._healthy()
        self.counters["refetched"] += 1
        await self._handle_package(seq, package, updated=True)
        self._wait(self.timing.after_ok)

    # -- answers ---------------------------------------------------------------------------

    async def _get(self, name: str) -> HttpResponse:
        delay = self._next_at - self._clock()
        if delay > 0:
            await self._sleep(delay)
        try:
            response = await self._http.get(
                f"{self._base}/ephemeral/{name}",
                headers=self._headers,
                timeout=self.timing.request_timeout,
            )
        except TransportError as exc:
            self._on_error(f"transport: {exc}")
            raise _Stop from None
        # The floor between any two requests; each outcome then sets its own (longer) wait.
        self._wait(min(self.timing.catching_up, self.timing.after_ok))
        return response

    def _json(self, response: HttpResponse) -> Any:
        try:
            return response.json()
        except ValueError:
            self._non_json += 1
            self._on_error(f"body is not JSON: {response.text(80)!r}")
            raise _Stop from None

    def _on_status(self, response: HttpResponse, *, missing: bool) -> None:
        status = response.status
        if status == 429:
            self.counters["throttled"] += 1
            wait = _retry_after(response.headers.get("retry-after"))
            if wait is None:
                wait = self.timing.default_retry_after
            self.health.set_state(
                ConnectionState.DEGRADED, f"429 rate limited; waiting {wait:.0f} s"
            )
            log.warning("r2z2 rate limited", extra={"ctx": {"wait": wait}})
            self._wait(wait)
        elif status == 403:
            self.counters["forbidden"] += 1
            minutes = self.timing.ban / 60
            message = f"403 Forbidden from R2Z2: polling stopped for {minutes:.0f} min"
            self.health.set_state(ConnectionState.FAILED, message)
            self._metrics.errors.labels(component="r2z2:forbidden").inc()
            log.error("r2z2 forbidden; stopping", extra={"ctx": {"pause": self.timing.ban}})
            self._wait(self.timing.ban)
        else:
            self._on_error(f"HTTP {status}")

    async def _on_missing(self, seq: int) -> None:
        """404: not published yet, or fallen off the feed (stale cursor)."""
        self.counters["missed"] += 1
        self._healthy()
        now = self._clock()
        if self._missing_since is None:
            self._missing_since = now
        self._wait(self.timing.after_miss)
        if now - self._missing_since <= self.timing.stale_after:
            return
        self._missing_since = now  # compare again only after another stale period
        saved_wait = self._next_at
        self._next_at = 0.0  # a different file: the ordinary pacing applies
        self._wait(self.timing.after_ok)
        head = await self._head()
        if head is not None and head - seq > self.timing.stale_lead:
            gap = head - seq
            self.gaps.append(gap)
            self.counters["resyncs"] += 1
            log.warning(
                f"r2z2 cursor fell off the feed; resyncing, gap {gap}",
                extra={"ctx": {"cursor": seq, "sequence": head, "gap": gap}},
            )
            self._advance(head - 1)
            self.sequence = head
            self._missing_since = None
            self._wait(self.timing.after_ok)
        else:
            # Never ask for the missing file again sooner than the 404 wait, whatever happened.
            self._next_at = max(self._next_at, saved_wait)

    def _on_error(self, error: str) -> None:
        self.counters["errors"] += 1
        wait = min(self.timing.error_cap, self.timing.error_base * 2**self._errors)
        self._errors += 1
        self.health.set_state(ConnectionState.DEGRADED, error)
        self._metrics.errors.labels(component="r2z2").inc()
        log.warning("r2z2 request failed", extra={"ctx": {"error": error, "wait": wait}})
        self._wait(wait)

    def _healthy(self) -> None:
        self._errors = 0
        self.health.set_state(ConnectionState.CONNECTED)

    def _wait(self, seconds: float) -> None:
        self._next_at = self._clock() + max(0.0, seconds)

    def _advance(self, seq: int) -> None:
        """``seq`` is done here: save it as the cursor once the pipeline has written every kill
        queued up to it (a crash before that must not resume past a kill that is not stored).

        Waiting for the queue's checkpoint, not for an idle queue: under steady load the queue
        is never empty, and a cursor saved only then would not move for hours."""
        if self._checkpoints is None:
            self._save(seq)
            return
        self._marks.offer(seq, self._checkpoints.mark())
        self._save_settled()

    def _save_settled(self) -> None:
        """Save the newest sequence whose queue checkpoint has passed."""
        if self._checkpoints is None:
            return
        done = self._marks.settled(self._checkpoints.passed)
        if done is not None and not self._save(done[0]):
            self._marks.keep(done)  # saved at the next step the store takes it

    def _save(self, seq: int) -> bool:
        """Save ``seq`` as the cursor; False when the store refuses it (a full disk): the store
        reports its own fault, and the poller goes on (the cursor stays behind, never ahead)."""
        try:
            self._store.set_cursor(CURSOR_STREAM, _cursor_value(seq, self._wall()))
        except StoreWriteError:
            return False
        return True

    # -- packages --------------------------------------------------------------------------

    async def _handle_package(self, seq: int, package: Any, *, updated: bool = False) -> None:
        try:
            wire = package_to_wire(package)
            km = Killmail.from_wire(wire)
        except (ValidationError, ValueError) as exc:
            self._malformed(seq, str(exc))
            return
        if not updated and isinstance(package, dict):
            older = package.get("sequence_updated")
            if isinstance(older, int) and not isinstance(older, bool) and 0 < older < seq:
                self._refetch.append(older)
        self.health.saw_event()
        if self._max_age is not None and km.kill_time is not None:
            kill_time = km.kill_time if km.kill_time.tzinfo else km.kill_time.replace(tzinfo=UTC)
            if datetime.fromtimestamp(self._wall(), UTC) - kill_time > self._max_age:
                self.counters["too_old"] += 1
                return
        if not self._tracked(km):
            self.counters["untracked"] += 1
            return
        self.counters["delivered"] += 1
        trace = None
        if tracing.enabled():
            trace = tracing.source_span("r2z2.kill", {"killmail.id": km.killmail_id})
        await self._sink(KillItem(km, orjson.dumps(wire).decode(), self.source, trace_parent=trace))

    def _tracked(self, km: Killmail) -> bool:
        if self._index.maps_for_system(km.system_id):
            return True
        return any(self._index.maps_for_character(c) for c in km.character_ids())

    def _malformed(self, seq: int, error: str) -> None:
        self.counters["malformed"] += 1
        self._metrics.events_invalid.labels(source=self.source, reason="package").inc()
        log.warning(
            "malformed r2z2 package skipped",
            extra={"ctx": {"sequence": seq, "error": error[:300]}},
        )

    def snapshot(self) -> dict[str, Any]:
        """Position and counters for diagnostics."""
        return {
            "sequence": self.sequence,
            "head": self.head,
            "gaps": list(self.gaps),
            "counters": dict(self.counters),
        }


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
