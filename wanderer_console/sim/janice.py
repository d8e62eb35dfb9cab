"""Fake Janice (PARITY.md §4.7): the appraisal endpoint notable loot asks.

``POST /api/rest/v2/appraisal`` with ``X-ApiKey`` and a ``text/plain`` body of ``<name> <qty>``
lines answers ``{"items": [...], "failures": ...}`` in Janice's shape (``itemType.name``,
``amount``, ``effectivePrices.buyPriceTotal``), priced from :attr:`FakeJanice.prices` (unit
price by name; unknown names are failures). A wrong key gets 401. Every request is logged.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["FakeJanice"]


class FakeJanice:
    """Janice's appraisal endpoint, served by ``app``."""

    def __init__(self, api_key: str, prices: dict[str, float] | None = None) -> None:
        self.api_key = api_key
        self.prices: dict[str, float] = dict(prices or {})
        """Unit buy price by item name."""
        self.requests: list[dict[str, Any]] = []
        """Per request: ``query``, ``lines``, ``key_ok``."""
        self.app = Starlette(
            routes=[Route("/api/rest/v2/appraisal", self._appraisal, methods=["POST"])]
        )

    async def _appraisal(self, request: Request) -> Response:
        text = (await request.body()).decode("utf-8", "replace")
        key_ok = request.headers.get("x-apikey") == self.api_key
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        self.requests.append(
            {"query": dict(request.query_params), "lines": lines, "key_ok": key_ok}
        )
        if not key_ok:
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        if request.headers.get("content-type", "").split(";")[0] != "text/plain":
            return JSONResponse({"error": "expected text/plain"}, status_code=415)
        items, failures = [], []
        for line in lines:
            name, _, qty = line.rpartition(" ")
            amount = int(qty) if qty.isdigit() else 1
            name = name if qty.isdigit() else line
            price = self.prices.get(name)
            if price is None:
                failures.append(line)
                continue
            total = price * amount
            items.append(
                {
                    "amount": amount,
                    "itemType": {"eid": abs(hash(name)) % 100_000, "name": name},
                    "effectivePrices": {"buyPrice": price, "buyPriceTotal": total},
                    "immediatePrices": {"buyPrice": price, "buyPriceTotal": total},
                }
            )
        return JSONResponse({"items": items, "failures": "\n".join(failures)})
