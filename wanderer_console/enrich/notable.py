"""Notable loot: a kill's dropped items appraised by Janice (PARITY.md §4.7).

Only for a kill some map will be told about, only with ``[janice] enabled`` and a token, and
only once per killmail: :meth:`NotableItems.prefetch` reads the victim's items from the ESI
killmail (the killstream's kills carry none; ``zkb.hash`` names it), keeps those dropped
(``quantity_dropped > 0``), names them through the cache facade, and posts them to Janice's
appraisal endpoint as ``<name> <quantity>`` lines (``X-ApiKey``: the token, never logged). An
item is notable when its name says "abyssal" or its line is worth at least ``threshold_isk``;
the most valuable ``limit`` are kept, in the cache facade's ``appraisal`` namespace (6 hours,
as the notifier), and :meth:`NotableItems.peek` gives them to the renderer. Any failure (no
hash, ESI or Janice down, a refused token, an answer that is not an appraisal, no answer
within ``timeout``) means no list: the kill is still notified, the failure logged (the token
redacted) and counted by reason in ``wc_notable_failures_total`` (:data:`REASONS`). The
requests end by ``timeout`` themselves, so a silent Janice opens its circuit breaker after a few
kills and the next ones fail at once (``circuit_open``) instead of each waiting the bound.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter

from wanderer_console.config.model import JaniceSettings
from wanderer_console.domain.killmail import Killmail
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.esi import EsiClient, EsiError
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.http.deadline import bounded

__all__ = [
    "APPRAISAL_PATH",
    "NAMESPACE",
    "REASONS",
    "AppraisalError",
    "NotableItems",
    "parse_appraisal",
]

log = logging.getLogger(__name__)

NAMESPACE: Final = "appraisal"
APPRAISAL_PATH: Final = (
    "/api/rest/v2/appraisal?market=2&designation=appraisal&pricing=buy"
    "&pricingVariant=immediate&persist=false"
)
_TTL: Final = 6 * 3600.0
REASONS: Final = ("timeout", "circuit_open", "unreachable", "esi", "refused", "status", "invalid")
"""Why a kill went without its list: no answer within ``timeout``, Janice's breaker open (not
asked), Janice not reached (refused, reset), the ESI killmail or item names unavailable, the
token refused (401/403), another error status, an answer that is no appraisal."""


class AppraisalError(ValueError):
    """Janice answered, but no appraisal: ``reason`` is ``refused`` or ``status``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _reason(exc: Exception) -> str:
    """The :data:`REASONS` entry of a failed appraisal."""
    if isinstance(exc, AppraisalError):
        return exc.reason
    if isinstance(exc, EsiError):
        return "esi"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, TransportError):
        return exc.kind if exc.kind in ("timeout", "circuit_open") else "unreachable"
    return "invalid"


def _price(item: dict[str, Any]) -> float | None:
    for group in ("effectivePrices", "immediatePrices"):
        prices = item.get(group)
        if isinstance(prices, dict) and isinstance(prices.get("buyPriceTotal"), int | float):
            return float(prices["buyPriceTotal"])
    value = item.get("buyPriceTotal")
    return float(value) if isinstance(value, int | float) else None


def parse_appraisal(body: Any) -> list[dict[str, Any]]:
    """``name``, ``quantity`` and total ``value`` of each line of a Janice appraisal answer."""
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ValueError("the appraisal has no items list")
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("itemType") if isinstance(item.get("itemType"), dict) else {}
        name = kind.get("name") if isinstance(kind, dict) else None
        amount = item.get("amount")
        out.append(
            {
                "name": str(name) if name else None,
                "quantity": int(amount) if isinstance(amount, int | float) else 1,
                "value": _price(item),
            }
        )
    return out


class NotableItems:
    """Appraisals of notified kills (see the module docstring)."""

    def __init__(
        self,
        settings: Callable[[], JaniceSettings],
        cache: CacheFacade,
        esi: EsiClient,
        http: HttpClient,
        *,
        timeout: float = 5.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._settings = settings
        self._cache = cache
        self._esi = esi
        self._http = http
        self.timeout = timeout
        """Longest an appraisal may take (ESI killmail, item names, Janice): the engine waits
        for it before the next event, so a silent Janice must not hold the pipeline."""
        self.appraisals = 0
        self.failures = 0
        self._failed = Counter(
            "wc_notable_failures",
            "Kills notified without their notable loot, by reason",
            ["reason"],
            registry=registry if registry is not None else CollectorRegistry(),
        )
        for reason in REASONS:
            self._failed.labels(reason)  # every reason exported from the start (at 0)

    def wanted(self, km: Killmail) -> bool:
        """True when the kill should be appraised and is not yet (nor known to fail)."""
        if not self._settings().active or not km.zkb.hash:
            return False
        cached, _value = self._cache.lookup(NAMESPACE, km.killmail_id)
        return not cached

    def peek(self, km: Killmail) -> list[dict[str, Any]]:
        """The kill's notable items once appraised (``[]`` otherwise, or when off)."""
        if not self._settings().active:
            return []
        value = self._cache.peek(NAMESPACE, km.killmail_id)
        return list(value or [])

    async def prefetch(self, km: Killmail) -> None:
        """Appraise the kill's dropped items (never raises; see the module docstring)."""
        if not self.wanted(km):
            return
        try:
            # Its requests end by the bound (a silent Janice's timeouts open its breaker).
            notable = await bounded(self._appraise(km), self.timeout)
        except (EsiError, TransportError, ValueError, TimeoutError) as exc:
            self.failures += 1
            reason = _reason(exc)
            self._failed.labels(reason).inc()
            error = str(exc)[:300] or f"no answer within {self.timeout:g} s"
            log.warning(
                "notable items unavailable; the kill goes without them",
                extra={"ctx": {"killmail_id": km.killmail_id, "reason": reason, "error": error}},
            )
            # Remembered briefly, so a burst of re-renders does not ask again and again.
            self._cache.put_with_ttl(NAMESPACE, km.killmail_id, [], 300.0)
            return
        self._cache.put_with_ttl(NAMESPACE, km.killmail_id, notable, _TTL)

    async def _appraise(self, km: Killmail) -> list[dict[str, Any]]:
        settings = self._settings()
        result = await self._esi.killmail(km.killmail_id, str(km.zkb.hash))
        victim = (result.data or {}).get("victim")
        raw_items = victim.get("items") if isinstance(victim, dict) else None
        dropped: dict[int, int] = {}
        for item in raw_items if isinstance(raw_items, list) else []:
            if not isinstance(item, dict):
                continue
            type_id, quantity = item.get("item_type_id"), item.get("quantity_dropped")
            if isinstance(type_id, int) and isinstance(quantity, int) and quantity > 0:
                dropped[type_id] = dropped.get(type_id, 0) + quantity
        if not dropped:
            return []
        names = await self._cache.names(dropped)
        lines = [f"{names.get(t, (str(t), ''))[0]} {q}" for t, q in dropped.items()]
        self.appraisals += 1
        token = "" if settings.api_token is None else settings.api_token.get_secret_value()
        response = await self._http.request(
            "POST",
            f"{settings.url}{APPRAISAL_PATH}",
            content="\n".join(lines).encode(),
            headers={"x-apikey": token, "content-type": "text/plain", "accept": "application/json"},
            idempotent=True,  # an appraisal changes nothing (persist=false)
        )
        if response.status in (401, 403):
            raise AppraisalError(
                "refused", f"Janice refused the token ({response.status}): check JANICE_API_TOKEN"
            )
        if not response.ok:
            raise AppraisalError("status", f"Janice answered {response.status}")
        appraised = parse_appraisal(response.json())
        threshold = settings.threshold_isk
        notable = [
            item
            for item in appraised
            if (item["value"] or 0.0) >= threshold or "abyssal" in str(item["name"]).lower()
        ]
        notable.sort(key=lambda item: item["value"] or 0.0, reverse=True)
        return notable[: settings.limit]
