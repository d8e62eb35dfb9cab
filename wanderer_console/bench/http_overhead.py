"""Middleware overhead: the chained :class:`HttpClient` against bare httpx on loopback.

Serves a tiny Starlette app on 127.0.0.1 and times N sequential GETs with (a) a bare httpx client,
(b) a plain :class:`HttpClient` (no middleware) and (c) a client from ``build_client`` with the
full chain (rate limit set high enough never to wait), all in the same run, interleaved in rounds
so drift affects each alike. Prints one JSON object.

Run: ``python -m wanderer_console.bench.http_overhead [--quick] [-n N]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Sequence

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wanderer_console.http.bench_support import time_bare_gets
from wanderer_console.http.client import HttpClient
from wanderer_console.http.factory import build_client
from wanderer_console.http.settings import HttpServiceSettings
from wanderer_console.sim.server import AppServer
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["main", "run"]


async def _ping(_: Request) -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


async def _time_client(client: HttpClient, url: str, n: int) -> list[float]:
    out: list[float] = []
    for _ in range(n):
        response = await client.get(url)
        if not response.ok:
            raise RuntimeError(f"unexpected status {response.status}")
        out.append(response.elapsed)
    return out


async def run(n: int, rounds: int = 4) -> dict[str, float | int]:
    """Measure and return the summary (median microseconds per request)."""
    server = AppServer(Starlette(routes=[Route("/ping", _ping)]))
    await server.start()
    url = f"{server.url}/ping"
    settings = HttpServiceSettings(rate_per_second=0, retry_attempts=3, breaker_failures=1000)
    chained = build_client("bench", settings, metrics=Metrics())
    plain = HttpClient("bench", metrics=Metrics())
    bare: list[float] = []
    plain_t: list[float] = []
    chain_t: list[float] = []
    per_round = max(1, n // rounds)
    try:
        # Warm-up: open pooled connections, import lazily loaded code paths.
        await time_bare_gets(url, 10)
        await _time_client(plain, url, 10)
        await _time_client(chained, url, 10)
        for _ in range(rounds):
            bare += await time_bare_gets(url, per_round)
            plain_t += await _time_client(plain, url, per_round)
            chain_t += await _time_client(chained, url, per_round)
    finally:
        await chained.aclose()
        await plain.aclose()
        await server.stop()
    bare_us = statistics.median(bare) * 1e6
    plain_us = statistics.median(plain_t) * 1e6
    chain_us = statistics.median(chain_t) * 1e6
    return {
        "n": len(chain_t),
        "bare_httpx_median_us": round(bare_us, 1),
        "plain_client_median_us": round(plain_us, 1),
        "chain_median_us": round(chain_us, 1),
        "overhead_us": round(chain_us - bare_us, 1),
        "middleware_overhead_us": round(chain_us - plain_us, 1),
        "ratio": round(chain_us / bare_us, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="200 requests per client")
    parser.add_argument("-n", type=int, default=None, help="requests per client")
    args = parser.parse_args(argv)
    n = args.n or (200 if args.quick else 2000)
    result = asyncio.run(run(n))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
