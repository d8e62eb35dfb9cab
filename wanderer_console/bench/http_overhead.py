"""Middleware overhead: the chained :class:`HttpClient` against bare httpx on loopback.

Serves a tiny Starlette app on 127.0.0.1 and times N sequential GETs with (a) a bare httpx client,
(b) a plain :class:`HttpClient` (no middleware) and (c) a client from ``build_client`` with the
full chain (rate limit set high enough never to wait), all in the same run, interleaved in rounds
so drift affects each alike.

Then (d) N webhook posts of a Discord-sized kill embed as :class:`DiscordSender` makes them: the
Discord client's chain and its transport (:mod:`~wanderer_console.http.h1`), against a canned
HTTP/1.1 responder on 127.0.0.1 in the same loop (a few microseconds per answer, so the figures
are the client's): ``discord_post_median_us`` (wall time per post) and ``discord_post_cpu_us``
(process CPU per post, the responder included).

Then (e) the map client's REST calls beside its open event streams (1,000, fewer when the
process may not open that many files): process CPU per call (the responder included) with the
streams and the calls in one httpcore pool, as until the twenty-fourth session, against the
split of :mod:`~wanderer_console.http.split`, alternating rounds: ``map_rest_cpu_us_one_pool``
and ``map_rest_cpu_us_split``. Prints one JSON object.

Run: ``python -m wanderer_console.bench.http_overhead [--quick] [-n N]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wanderer_console.delivery.discord import DiscordSender, Outcome
from wanderer_console.domain.notification import Target, TargetKind
from wanderer_console.http.bench_support import time_bare_gets
from wanderer_console.http.client import HttpClient
from wanderer_console.http.factory import build_client
from wanderer_console.http.middleware import httpcore_pool, network_transport
from wanderer_console.http.settings import HttpServiceSettings, resolve_settings
from wanderer_console.http.sse import open_sse
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


_CREATED = orjson.dumps(
    {"id": "1180000000000000001", "type": 0, "channel_id": "1170000000000000002", "embeds": []}
)
_ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
    b"x-ratelimit-limit: 5\r\nx-ratelimit-remaining: 4\r\nx-ratelimit-reset-after: 1.0\r\n"
    b"x-ratelimit-bucket: 0123abcd\r\n\r\n" % len(_CREATED)
) + _CREATED

KILL_EMBED: dict[str, Any] = {
    "username": "Wanderer",
    "embeds": [
        {
            "title": "Rifter destroyed in Jita",
            "url": "https://zkillboard.com/kill/123456789/",
            "description": "A" * 600,
            "color": 15158332,
            "timestamp": "2026-12-03T17:00:00Z",
            "thumbnail": {"url": "https://images.evetech.net/types/587/render?size=128"},
            "fields": [{"name": f"field {i}", "value": "v" * 60, "inline": True} for i in range(8)],
            "footer": {"text": "Wanderer Console"},
        }
    ],
}
"""About the size of a kill notification's body (~1.5 KiB of JSON)."""


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every request on the connection with a created message (keep-alive)."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    await reader.readexactly(int(line[15:]))
            writer.write(_ANSWER)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


@asynccontextmanager
async def _responder() -> AsyncIterator[str]:
    server = await asyncio.start_server(_answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def time_discord_posts(n: int, webhooks: int = 100) -> tuple[list[float], float]:
    """Seconds per webhook post (``n`` sequential ones over ``webhooks`` URLs) and the process
    CPU seconds per post."""
    async with _responder() as url:
        settings = resolve_settings("discord", {"rate_per_second": 0})
        client = build_client("discord", settings, metrics=Metrics(), headers={"user-agent": "b"})
        sender = DiscordSender(client, api_url=f"{url}/api/v10", user_agent="bench")
        targets = [
            Target(TargetKind.WEBHOOK, f"{url}/api/webhooks/{i}/token-{i:040d}", "bench")
            for i in range(webhooks)
        ]
        out: list[float] = []
        try:
            for target in targets:  # warm-up: one connection, every URL seen once
                await sender.send(target, KILL_EMBED)
            cpu = time.process_time()
            for i in range(n):
                started = time.perf_counter()
                result = await sender.send(targets[i % webhooks], KILL_EMBED)
                out.append(time.perf_counter() - started)
                if result.outcome is not Outcome.SENT:
                    raise RuntimeError(f"unexpected outcome {result}")
            cpu = time.process_time() - cpu
        finally:
            await client.aclose()
    return out, cpu / max(1, n)


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"d\r\n: keepalive\n\n\r\n"
)


_HANDLERS: set[asyncio.Task[Any]] = set()


async def _stream_or_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """``GET /stream``: an event stream held open until the client goes; anything else: a small
    JSON answer per request (keep-alive)."""
    task = asyncio.current_task()
    if task is not None:  # awaited before the loop ends (left running, they are cancelled)
        _HANDLERS.add(task)
        task.add_done_callback(_HANDLERS.discard)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"GET /stream"):
                writer.write(_STREAM_HEAD)
                await reader.read()  # until the client closes
                break
            writer.write(_ANSWER)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


def _stream_count(wanted: int = 1000) -> int:
    """Streams one process may hold open (two descriptors each, both ends here)."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 100
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(10, min(wanted, (soft - 200) // 2))


async def time_rest_beside_streams(
    n: int, streams: int = 1000, rounds: int = 2
) -> dict[str, float | int]:
    """Process CPU per map REST call with the client's event streams open, one pool for both
    against the split, alternating (``rounds`` of each, each opening its streams anew)."""
    streams = _stream_count(streams)
    settings = resolve_settings("map", {"rate_per_second": 0})
    server = await asyncio.start_server(_stream_or_answer, "127.0.0.1", 0, backlog=4096)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    cpu: dict[str, list[float]] = {"one_pool": [], "split": []}
    try:
        for _ in range(rounds):
            for label in cpu:
                network = (
                    httpcore_pool(settings) if label == "one_pool" else network_transport(settings)
                )
                client = build_client("map", settings, metrics=Metrics(), transport=network)
                async with contextlib.AsyncExitStack() as stack:
                    stack.push_async_callback(client.aclose)
                    for _ in range(streams):
                        stream = await stack.enter_async_context(open_sse(client, f"{url}/stream"))
                        if stream.status != 200:
                            raise RuntimeError(f"stream refused: {stream.status}")
                    for _ in range(10):  # warm-up: the REST connection open, code paths seen
                        await client.get(f"{url}/systems")
                    started = time.process_time()
                    for _ in range(n):
                        response = await client.get(f"{url}/systems")
                        if not response.ok:
                            raise RuntimeError(f"unexpected status {response.status}")
                    cpu[label].append((time.process_time() - started) / n)
    finally:
        server.close()
        if _HANDLERS:  # every client is closed: each handler ends at its end of stream
            await asyncio.wait(list(_HANDLERS), timeout=5.0)
    return {
        "map_streams_open": streams,
        "map_rest_cpu_us_one_pool": round(statistics.median(cpu["one_pool"]) * 1e6, 1),
        "map_rest_cpu_us_split": round(statistics.median(cpu["split"]) * 1e6, 1),
    }


async def run(n: int, rounds: int = 4, streams: int = 1000) -> dict[str, float | int]:
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
    posts, post_cpu = await time_discord_posts(n)
    beside_streams = await time_rest_beside_streams(max(50, n // 10), streams)
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
        "discord_post_median_us": round(statistics.median(posts) * 1e6, 1),
        "discord_post_cpu_us": round(post_cpu * 1e6, 1),
        **beside_streams,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="200 requests per client")
    parser.add_argument("-n", type=int, default=None, help="requests per client")
    parser.add_argument(
        "--streams", type=int, default=1000, help="map event streams open beside REST calls"
    )
    args = parser.parse_args(argv)
    n = args.n or (200 if args.quick else 2000)
    result = asyncio.run(run(n, streams=max(1, args.streams)))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
