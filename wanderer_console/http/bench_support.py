"""Bare-httpx timing loop for ``bench/http_overhead.py`` (bench/ may not import httpx)."""

from __future__ import annotations

import time

import httpx

__all__ = ["time_bare_gets"]


async def time_bare_gets(url: str, n: int, *, timeout: float = 10.0) -> list[float]:
    """Seconds per ``GET url`` for ``n`` sequential requests on one pooled bare httpx client."""
    out: list[float] = []
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout)) as client:
        for _ in range(n):
            started = time.perf_counter()
            response = await client.get(url)
            _ = response.content
            out.append(time.perf_counter() - started)
    return out
