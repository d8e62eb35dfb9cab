"""ESI client: bulk names with id-range pre-filter and bisection, cached entity GETs.

Follows PROTOCOLS.md §6: ``POST /universe/names`` takes at most 1000 ids and answers 404 for the
whole batch when one id is unknown, so ids no ESI category can hold are dropped first and a 404
batch is split in halves until the unknown ids are isolated. Entity GETs honour ``Expires`` (no
request before it) and ``ETag`` (``If-None-Match`` → ``304`` reuses the cached body). The error
limit headers are tracked: when few errors are left, or after a ``420``, every call fails fast
with :class:`EsiErrorLimited` until the window resets.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache

from wanderer_console.http.client import HttpClient, HttpResponse, TransportError
from wanderer_console.telemetry import tracing

__all__ = [
    "NAMES_BATCH",
    "EsiClient",
    "EsiError",
    "EsiErrorLimited",
    "EsiResult",
    "plausible_name_id",
]

log = logging.getLogger(__name__)

NAMES_BATCH = 1000
"""Most ids ``POST /universe/names`` (and ``POST /characters/affiliation``) accept in one body."""

# Half-open id ranges /universe/names can resolve (PROTOCOLS.md §6 "ID ranges"). Everything else
# (celestials 40M-50M, items, structures > 2^31, negative ids) would 404 the whole batch.
_NAME_RANGES: tuple[tuple[int, int], ...] = (
    (1, 500_000),  # inventory types
    (500_000, 600_000),  # factions
    (1_000_000, 2_000_000),  # NPC corporations
    (3_000_000, 4_000_000),  # NPC characters
    (10_000_000, 33_000_000),  # regions, constellations, solar systems (k, J, abyssal)
    (60_000_000, 70_000_000),  # stations
    (90_000_000, 2_147_483_648),  # characters, corporations, alliances (incl. pre-2010, 2.1B+)
)


def plausible_name_id(entity_id: int) -> bool:
    """True when some ``/universe/names`` category can hold ``entity_id``."""
    return any(low <= entity_id < high for low, high in _NAME_RANGES)


class EsiError(Exception):
    """ESI gave no usable answer (transport failure, 5xx, 420/429, unexpected body)."""

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(f"ESI {status}: {detail}" if detail else f"ESI {status}")
        self.status = status
        """HTTP status, or 0 when the request got no HTTP answer."""
        self.detail = detail


class EsiErrorLimited(EsiError):
    """The ESI error limit is (nearly) exhausted; no call is made until ``retry_at``."""

    def __init__(self, retry_at: float, detail: str = "error limited") -> None:
        super().__init__(420, detail)
        self.retry_at = retry_at


@dataclass(frozen=True, slots=True)
class EsiResult:
    """One entity document. ``data`` is ``None`` when ESI says the id does not exist (404)."""

    data: dict[str, Any] | None
    expires_at: float | None = None
    """Unix time from the ``Expires`` header (``None`` when absent)."""
    etag: str | None = None
    from_cache: bool = False
    """True when answered without a 200 body: still fresh, or ``304 Not Modified``."""


@dataclass(slots=True)
class _Conditional:
    body: dict[str, Any] | None
    etag: str | None
    expires_at: float | None


@dataclass(slots=True)
class EsiStats:
    """Request counters, for the runtime snapshot."""

    requests: int = 0
    not_modified: int = 0
    fresh_reuses: int = 0
    errors: int = 0
    names_batches: int = 0
    names_bisections: int = 0
    names_unknown: int = 0
    names_skipped: int = 0
    names_malformed: int = 0
    """``/universe/names`` rows left out for a missing or mistyped id, name or category."""
    error_limit_remain: int | None = None
    blocked_until: float = 0.0
    by_route: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "not_modified": self.not_modified,
            "fresh_reuses": self.fresh_reuses,
            "errors": self.errors,
            "names_batches": self.names_batches,
            "names_bisections": self.names_bisections,
            "names_unknown": self.names_unknown,
            "names_skipped": self.names_skipped,
            "names_malformed": self.names_malformed,
            "error_limit_remain": self.error_limit_remain,
            "blocked_until": self.blocked_until,
            "by_route": dict(self.by_route),
        }


def _parse_http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _int_header(value: str | None) -> int | None:
    """A header's whole number, or ``None`` (absent, or not ASCII digits with an optional
    ``-``): ``str.isdigit`` also passes ``²`` (one stray ``0xB2`` byte), which ``int`` refuses,
    and a ``ValueError`` out of a look-up is no :class:`EsiError` its callers handle."""
    if value is None:
        return None
    text = value.strip()
    digits = text.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 4000:
        return None  # past 4,300 digits ``int`` refuses a string with ValueError
    return int(text)


def _name_row(row: Any) -> tuple[int, tuple[str, str]] | None:
    """``(id, (name, category))`` of one ``/universe/names`` row, or ``None`` when its id is
    not a whole number or its name or category is not a non-empty string (a ``null``)."""
    if not isinstance(row, dict):
        return None
    entity_id, name, category = row.get("id"), row.get("name"), row.get("category")
    if not isinstance(entity_id, int) or isinstance(entity_id, bool):
        return None
    if not (isinstance(name, str) and name and isinstance(category, str) and category):
        return None
    return entity_id, (name, category)


MAX_BLOCK_SECONDS = 600.0
"""Longest ESI's error-limit reset or ``Retry-After`` is obeyed (its error window is a minute;
the map stream caps ``Retry-After`` the same): a garbled huge value must not stop every look-up
until a restart."""


def _wait_header(value: str | None) -> float:
    """Seconds to wait from a reset or ``Retry-After`` header: 60 when absent or unreadable,
    at most :data:`MAX_BLOCK_SECONDS` (clamped as an integer: ``float`` of a 400-digit one
    raises ``OverflowError``, no :class:`EsiError` its callers handle)."""
    seconds = _int_header(value)
    if seconds is None or seconds < 0:
        return 60.0
    return float(min(seconds, int(MAX_BLOCK_SECONDS)))


class EsiClient:
    """Public ESI routes through the console's :class:`HttpClient`.

    ``base_url`` is the ESI root (``https://esi.evetech.net`` or a fake), or a getter of it read
    at every request (the engine passes ``esi.url`` of the running settings, so a reload
    applies at once); ``user_agent`` must name the app and a contact (PROTOCOLS.md §6).
    ``clock`` is wall time (``Expires`` is wall time). ``min_error_remain``: stop calling ESI
    when fewer errors are left in the window.
    """

    def __init__(
        self,
        http: HttpClient,
        base_url: str | Callable[[], str],
        user_agent: str,
        *,
        compatibility_date: str | None = None,
        min_error_remain: int = 10,
        conditional_entries: int = 20_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._base_url = base_url if callable(base_url) else lambda: base_url
        self.user_agent = user_agent
        self._headers: dict[str, str] = {"user-agent": user_agent, "accept": "application/json"}
        if compatibility_date:
            self._headers["x-compatibility-date"] = compatibility_date
        self._min_error_remain = min_error_remain
        self._clock = clock
        self._conditional: LRUCache[str, _Conditional] = LRUCache(maxsize=conditional_entries)
        self.stats = EsiStats()

    @property
    def base_url(self) -> str:
        """The ESI root requests go to now."""
        return self._base_url().rstrip("/")

    # -- plumbing ------------------------------------------------------------------------------

    def _check_blocked(self) -> None:
        if self.stats.blocked_until > self._clock():
            raise EsiErrorLimited(self.stats.blocked_until)

    def _note_limits(self, response: HttpResponse) -> None:
        headers = response.headers
        remain = _int_header(headers.get("x-esi-error-limit-remain"))
        reset_s = _wait_header(headers.get("x-esi-error-limit-reset"))
        if remain is not None:
            self.stats.error_limit_remain = remain
            if remain < self._min_error_remain:
                self.stats.blocked_until = self._clock() + reset_s
        if response.status == 420:
            self.stats.blocked_until = self._clock() + reset_s
        elif response.status == 429:
            wait = _wait_header(headers.get("retry-after"))
            self.stats.blocked_until = max(self.stats.blocked_until, self._clock() + wait)

    async def _send(
        self, method: str, route: str, path: str, *, json: Any = None, etag: str | None = None
    ) -> HttpResponse:
        self._check_blocked()
        headers = dict(self._headers)
        if etag:
            headers["if-none-match"] = etag
        self.stats.requests += 1
        self.stats.by_route[route] = self.stats.by_route.get(route, 0) + 1
        with tracing.span(f"esi {method} {route}") as current:
            try:
                response = await self._http.request(
                    method, f"{self.base_url}{path}", json=json, headers=headers
                )
            except TransportError as exc:
                self.stats.errors += 1
                raise EsiError(0, str(exc)) from None
            if current is not None:  # a span: tracing is on
                current.set_attribute("http.response.status_code", response.status)
        self._note_limits(response)
        if response.status >= 400 and response.status != 404:
            self.stats.errors += 1
            if response.status in (420, 429):
                raise EsiErrorLimited(self.stats.blocked_until, response.text(200))
            raise EsiError(response.status, response.text(200))
        if response.status == 404:
            self.stats.errors += 1
        return response

    # -- bulk names ----------------------------------------------------------------------------

    async def names(self, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """``id -> (name, category)`` for every id ESI knows; unknown ids are left out.

        Ids outside every ESI id range are never sent. A batch that 404s is bisected so one
        unknown id costs only its own lookups. Transient failures raise :class:`EsiError`.
        """
        unique = sorted({int(i) for i in ids})
        wanted = [i for i in unique if plausible_name_id(i)]
        self.stats.names_skipped += len(unique) - len(wanted)
        result: dict[int, tuple[str, str]] = {}
        for start in range(0, len(wanted), NAMES_BATCH):
            await self._names_batch(wanted[start : start + NAMES_BATCH], result)
        return result

    async def _names_batch(self, batch: list[int], out: dict[int, tuple[str, str]]) -> None:
        if not batch:
            return
        self.stats.names_batches += 1
        response = await self._send("POST", "/universe/names", "/universe/names", json=batch)
        if response.status == 404:
            if len(batch) == 1:
                self.stats.names_unknown += 1
                return
            self.stats.names_bisections += 1
            middle = len(batch) // 2
            await self._names_batch(batch[:middle], out)
            await self._names_batch(batch[middle:], out)
            return
        try:
            rows = response.json()
        except ValueError as exc:
            self.stats.errors += 1
            raise EsiError(response.status, f"malformed names body: {exc}") from None
        if not isinstance(rows, list):
            self.stats.errors += 1
            raise EsiError(response.status, "malformed names body: expected a JSON list")
        for row in rows:
            named = _name_row(row)
            if named is None:
                # One bad row must neither fail the batch (every other name lost) nor be
                # cached as a name ("None"): its id stays unknown, asked again after the
                # negative TTL.
                self.stats.names_malformed += 1
                continue
            out[named[0]] = named[1]

    async def affiliation(self, ids: Iterable[int]) -> dict[int, tuple[int, int | None]]:
        """``character id -> (corporation id, alliance id or None)`` from ``POST
        /characters/affiliation``, 1,000 pilots a call. Raises :class:`EsiError` when a batch
        gets no usable answer (ESI fails the whole body for one id it does not know)."""
        unique = sorted({int(i) for i in ids})
        result: dict[int, tuple[int, int | None]] = {}
        for start in range(0, len(unique), NAMES_BATCH):
            batch = unique[start : start + NAMES_BATCH]
            response = await self._send(
                "POST", "/characters/affiliation", "/characters/affiliation", json=batch
            )
            if response.status >= 300:
                raise EsiError(response.status, response.text(200))
            try:
                for row in response.json():
                    alliance = row.get("alliance_id")
                    result[int(row["character_id"])] = (
                        int(row["corporation_id"]),
                        None if alliance is None else int(alliance),
                    )
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                self.stats.errors += 1
                raise EsiError(response.status, f"malformed affiliation body: {exc}") from None
        return result

    # -- entity documents ----------------------------------------------------------------------

    async def _document(self, route: str, path: str) -> EsiResult:
        now = self._clock()
        cached = self._conditional.get(path)
        if cached is not None and cached.expires_at is not None and now < cached.expires_at:
            # Expires not reached: asking again would be cache circumvention.
            self.stats.fresh_reuses += 1
            return EsiResult(cached.body, cached.expires_at, cached.etag, from_cache=True)
        etag = cached.etag if cached is not None else None
        response = await self._send("GET", route, path, etag=etag)
        expires_at = _parse_http_date(response.headers.get("expires"))
        if response.status == 304 and cached is not None:
            self.stats.not_modified += 1
            cached.expires_at = expires_at
            cached.etag = response.headers.get("etag") or cached.etag
            return EsiResult(cached.body, expires_at, cached.etag, from_cache=True)
        if response.status == 404:
            self._conditional.pop(path, None)
            return EsiResult(None, expires_at)
        try:
            body = response.json()
        except ValueError as exc:
            self.stats.errors += 1
            raise EsiError(response.status, f"malformed body: {exc}") from None
        if not isinstance(body, dict):
            self.stats.errors += 1
            raise EsiError(response.status, "expected a JSON object")
        new_etag = response.headers.get("etag")
        if new_etag or expires_at is not None:
            self._conditional[path] = _Conditional(body, new_etag, expires_at)
        return EsiResult(body, expires_at, new_etag)

    async def character(self, character_id: int) -> EsiResult:
        """``GET /characters/{id}``."""
        return await self._document("/characters", f"/characters/{int(character_id)}")

    async def corporation(self, corporation_id: int) -> EsiResult:
        """``GET /corporations/{id}``."""
        return await self._document("/corporations", f"/corporations/{int(corporation_id)}")

    async def alliance(self, alliance_id: int) -> EsiResult:
        """``GET /alliances/{id}``."""
        return await self._document("/alliances", f"/alliances/{int(alliance_id)}")

    async def system(self, system_id: int) -> EsiResult:
        """``GET /universe/systems/{id}``."""
        return await self._document("/universe/systems", f"/universe/systems/{int(system_id)}")

    async def type(self, type_id: int) -> EsiResult:
        """``GET /universe/types/{id}``."""
        return await self._document("/universe/types", f"/universe/types/{int(type_id)}")

    async def killmail(self, killmail_id: int, killmail_hash: str) -> EsiResult:
        """``GET /killmails/{id}/{hash}`` (the victim's items, for notable loot)."""
        safe = "".join(c for c in killmail_hash if c.isalnum())
        return await self._document("/killmails", f"/killmails/{int(killmail_id)}/{safe}")

    async def route(self, origin: int, destination: int) -> EsiResult:
        """``GET /route/{origin}/{destination}/``: the shortest stargate route, as
        ``{"systems": [origin, ..., destination]}``; ``data`` is ``None`` when there is none
        (ESI answers 404 "No route found", e.g. from or to J-space)."""
        path = f"/route/{int(origin)}/{int(destination)}/"
        response = await self._send("GET", "/route", path)
        expires_at = _parse_http_date(response.headers.get("expires"))
        if response.status == 404:
            return EsiResult(None, expires_at)
        try:
            body = response.json()
            systems = [int(system) for system in body]
        except (ValueError, TypeError) as exc:
            self.stats.errors += 1
            raise EsiError(response.status, f"malformed route body: {exc}") from None
        if len(systems) < 1:
            self.stats.errors += 1
            raise EsiError(response.status, "empty route")
        return EsiResult({"systems": systems}, expires_at)

    def snapshot(self) -> Mapping[str, Any]:
        """Counters for the runtime snapshot."""
        return self.stats.as_dict()
