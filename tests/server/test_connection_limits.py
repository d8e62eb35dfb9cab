"""Slow, idle and surplus connections are closed by the server, over real loopback sockets.

The flood test runs the console in a child process whose descriptor limit is lowered to 256 and
opens more slow connections than that from this process: ``/health`` must still answer, an
ingest event must still be delivered to the (fake) Discord, which needs outbound sockets, and
every slow connection must be closed by the server within its read deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from tests.server.conftest import server_settings
from tests.support import connected, wait_for
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

PARSERS = ["httptools", "h11"]
"""Both guarded protocols get every test below (``[server] http_parser``)."""

REPO = Path(__file__).resolve().parents[2]
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_slow(host: str, port: int, kind: str, map_slug: str = "demo") -> Connection:
    """A connection that sends nothing, half its headers, or headers and a tenth of its body."""
    reader, writer = await asyncio.open_connection(host, port)
    if kind == "headers":
        writer.write(b"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: app")
    elif kind == "body":
        writer.write(
            f"POST /api/v1/maps/{map_slug}/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n".encode()
            + b'{"id": "01'
        )
    await writer.drain()
    return reader, writer


async def seconds_until_closed(reader: asyncio.StreamReader, start: float, limit: float) -> float:
    """When (since ``start``) the server closed the connection; ``inf`` if not within ``limit``."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(limit):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return float("inf")
    except OSError:
        pass  # reset: closed as well
    return loop.time() - start


def close_all(connections: list[Connection]) -> None:
    for _, writer in connections:
        writer.close()


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus exposition (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


async def test_300_slow_connections_under_256_descriptors_leave_health_and_delivery_working() -> (
    None
):
    header_timeout = body_timeout = 4.0
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.server.fdlimit_child",
        "256",
        str(header_timeout),
        str(body_timeout),
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    connections: list[Connection] = []
    try:
        info = orjson.loads(await asyncio.wait_for(child.stdout.readline(), 30))
        url = urlsplit(info["url"])
        assert url.hostname is not None
        assert url.port is not None
        loop = asyncio.get_running_loop()
        start = loop.time()
        kinds = ("idle", "headers", "body")
        # In batches the server's listen backlog can take: a connection the kernel could not
        # queue completes its handshake only on a later SYN-ACK, seconds afterwards, and the
        # server's deadline starts when it accepts.
        for batch in range(15):
            opened = await asyncio.gather(
                *(
                    open_slow(url.hostname, url.port, kinds[i % 3], info["map"])
                    for i in range(batch * 20, batch * 20 + 20)
                )
            )
            connections += opened
            await asyncio.sleep(0.05)

        async with httpx.AsyncClient(base_url=info["url"], timeout=2.0) as http:
            asked = loop.time()
            health = await http.get("/health")
            assert health.status_code == 200
            assert loop.time() - asked < 2.0
            event = {"title": "Still delivering", "notification_type": "rally"}
            auth = {"authorization": f"Bearer {info['key']}"}
            posted = await http.post("/api/v1/events", json=event, headers=auth)
            assert posted.json()["accepted"] == 1, posted.text

            async def delivered() -> bool:
                text = (await http.get("/metrics")).text
                return metric(text, "wc_notifications_delivered_total", type="rally") >= 1

            deadline = loop.time() + 5.0
            while not await delivered():
                assert loop.time() < deadline, "the engine delivered nothing during the flood"
                await asyncio.sleep(0.1)

        closed = await asyncio.gather(
            *(seconds_until_closed(reader, start, 10.0) for reader, _ in connections)
        )
        assert max(closed) <= max(header_timeout, body_timeout) + 2.0, sorted(closed)[-5:]
    finally:
        close_all(connections)
        child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), 10)
        except TimeoutError:
            child.kill()
            await child.wait()


@contextlib.asynccontextmanager
async def serving(sim: Simulator, tmp_path: Path, **server: Any) -> AsyncIterator[Runtime]:
    """A runtime over the simulator with some ``[server]`` settings changed (``http_parser``
    among them: the tests run once per parser)."""
    settings = server_settings(sim, tmp_path)
    settings.server = settings.server.model_copy(update=server)
    engine = Runtime(settings, data_dir=tmp_path)
    await engine.start()
    try:
        await connected(engine)
        assert engine.http is not None, engine.http_error
        yield engine
    finally:
        await engine.stop()


async def dribble(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Send ``data`` a byte every 0.1 s (each byte is progress, none finishes the phase)."""
    with contextlib.suppress(OSError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("parser", PARSERS)
async def test_idle_and_dribbling_clients_are_closed_after_their_read_timeouts(
    sim: Simulator, tmp_path: Path, parser: str
) -> None:
    async with serving(
        sim, tmp_path, http_parser=parser, header_timeout_seconds=1.0, body_timeout_seconds=1.0
    ) as rt:
        assert rt.http is not None
        host, port = "127.0.0.1", int(urlsplit(rt.http.url).port or 0)
        loop = asyncio.get_running_loop()
        start = loop.time()
        idle = await open_slow(host, port, "idle")
        headers = await open_slow(host, port, "headers")
        body = await open_slow(host, port, "body", sim.map_slug)
        feeders = [
            asyncio.create_task(dribble(headers[1], b"lication/json\r\nX-Slow: " + b"a" * 200)),
            asyncio.create_task(dribble(body[1], b"0" * 900)),
        ]
        try:
            closed = await asyncio.gather(
                *(seconds_until_closed(c[0], start, 5.0) for c in (idle, headers, body))
            )
        finally:
            for feeder in feeders:
                feeder.cancel()
            close_all([idle, headers, body])
        assert max(closed) < 2.5, closed
        metrics = rt.metrics
        assert metrics.value("wc_server_connections_closed_total", reason="header_timeout") == 2
        assert metrics.value("wc_server_connections_closed_total", reason="body_timeout") == 1
        # The webhook handler was reading the body: it saw a disconnect, not an error.
        await wait_for(
            lambda: metrics.value("wc_server_client_disconnects_total", endpoint="webhook") == 1
        )


@pytest.mark.parametrize("parser", PARSERS)
async def test_at_the_connection_cap_a_new_request_evicts_the_longest_waiting_connection(
    sim: Simulator, tmp_path: Path, parser: str
) -> None:
    async with serving(sim, tmp_path, http_parser=parser, max_connections=8) as rt:
        assert rt.http is not None
        port = int(urlsplit(rt.http.url).port or 0)
        stalled = [await open_slow("127.0.0.1", port, "headers") for _ in range(8)]
        await wait_for(lambda: rt.metrics.value("wc_server_connections") == 8)
        try:
            async with httpx.AsyncClient(base_url=rt.http.url, timeout=2.0) as http:
                health = await http.get("/health")
            assert health.status_code == 200
            loop = asyncio.get_running_loop()
            oldest = await seconds_until_closed(stalled[0][0], loop.time(), 2.0)
            assert oldest < 2.0
            assert rt.metrics.value("wc_server_connections_closed_total", reason="evicted") == 1
        finally:
            close_all(stalled)


@pytest.mark.parametrize("parser", PARSERS)
async def test_a_client_over_its_connection_cap_gets_503(
    sim: Simulator, tmp_path: Path, parser: str
) -> None:
    async with serving(sim, tmp_path, http_parser=parser, max_connections_per_client=2) as rt:
        assert rt.http is not None
        port = int(urlsplit(rt.http.url).port or 0)
        held = [await open_slow("127.0.0.1", port, "idle") for _ in range(2)]
        try:
            await wait_for(lambda: rt.metrics.value("wc_server_connections") == 2)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            held.append((reader, writer))
            answer = await asyncio.wait_for(reader.read(), 2.0)
            assert answer.startswith(b"HTTP/1.1 503 ")
            assert (
                rt.metrics.value("wc_server_connections_closed_total", reason="per_client_limit")
                == 1
            )
        finally:
            close_all(held)


@pytest.mark.parametrize("parser", PARSERS)
async def test_malformed_requests_are_counted_and_logged_throttled_not_once_each(
    sim: Simulator, tmp_path: Path, parser: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(sim, tmp_path, http_parser=parser) as rt:
        assert rt.http is not None
        port = int(urlsplit(rt.http.url).port or 0)
        for _ in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 2.0)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 400 ")
        closed = rt.metrics.value("wc_server_connections_closed_total", reason="bad_request")
        assert closed == 5
    lines = [r for r in caplog.records if "Invalid HTTP request" in r.getMessage()]
    throttled = [
        r for r in caplog.records if r.getMessage() == "http connection closed by the server"
    ]
    assert not lines
    assert len(throttled) == 1


@pytest.mark.parametrize("parser", PARSERS)
async def test_an_upgrade_request_is_answered_as_http_and_leaves_no_connection_behind(
    sim: Simulator, tmp_path: Path, parser: str
) -> None:
    async with serving(sim, tmp_path, http_parser=parser, max_connections=4) as rt:
        assert rt.http is not None
        port = int(urlsplit(rt.http.url).port or 0)
        for _ in range(6):  # more than the cap: a leaked slot would end in 503s
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
                b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
            assert answer.startswith(b"HTTP/1.1 200 "), answer
            writer.close()
            await writer.wait_closed()
        await wait_for(lambda: rt.metrics.value("wc_server_connections") == 0, timeout=5.0)
        assert rt.metrics.total("wc_server_connections_closed_total") == 0


@pytest.mark.parametrize("parser", PARSERS)
async def test_an_unfinished_head_over_16_kib_is_answered_400_at_once_and_one_under_is_served(
    sim: Simulator, tmp_path: Path, parser: str
) -> None:
    async with serving(sim, tmp_path, http_parser=parser) as rt:
        assert rt.http is not None
        port = int(urlsplit(rt.http.url).port or 0)
        start = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"

        async def ask(pieces: list[bytes]) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                for piece in pieces:
                    writer.write(piece)
                    with contextlib.suppress(OSError):
                        await writer.drain()
                return await asyncio.wait_for(reader.read(65536), 5.0)
            finally:
                writer.close()

        under = await ask([start + b"X-Pad: " + b"a" * (15 * 1024) + b"\r\n\r\n"])
        assert under.startswith(b"HTTP/1.1 200 "), under[:80]
        # What the parser holds unfinished is capped (h11's rule, which httptools follows): a
        # 17 KiB head not yet ended is refused at once, without waiting for its deadline.
        whole = await ask([start + b"X-Pad: " + b"a" * (17 * 1024)])
        assert whole.startswith(b"HTTP/1.1 400 "), whole[:80]
        # The same head in 1 KiB pieces, never finished: refused once it passes the limit.
        pieces = [start] + [b"X-Pad-%d: " % i + b"a" * 1000 + b"\r\n" for i in range(40)]
        dribbled = await ask(pieces)
        assert dribbled.startswith(b"HTTP/1.1 400 "), dribbled[:80]
        closed = rt.metrics.value("wc_server_connections_closed_total", reason="bad_request")
        assert closed == 2


@pytest.mark.parametrize("parser", PARSERS)
async def test_a_kept_alive_connection_is_closed_a_header_timeout_after_its_last_response(
    sim: Simulator, tmp_path: Path, parser: str
) -> None:
    async with serving(
        sim, tmp_path, http_parser=parser, header_timeout_seconds=1.0, keep_alive_seconds=60
    ) as rt:
        assert rt.http is not None
        port = int(urlsplit(rt.http.url).port or 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(3):  # the deadline restarts after each response
                writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
                assert head.startswith(b"HTTP/1.1 200 "), head
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                await asyncio.sleep(0.6)  # more than half the deadline, three times over
            loop = asyncio.get_running_loop()
            idle = await seconds_until_closed(reader, loop.time(), 5.0)
        finally:
            writer.close()
        assert idle < 1.5, idle
        assert rt.metrics.value("wc_server_connections_closed_total", reason="header_timeout") == 1


@pytest.mark.parametrize("parser", PARSERS)
async def test_pipelined_requests_are_all_answered_in_order_and_the_connection_stays_admitted(
    sim: Simulator, tmp_path: Path, parser: str
) -> None:
    async with serving(sim, tmp_path, http_parser=parser, header_timeout_seconds=1.0) as rt:
        assert rt.http is not None
        port = int(urlsplit(rt.http.url).port or 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            body = b'{"title": "pipelined"}'
            writer.write(
                b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                b"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % len(body)
                + body
                + b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: third\r\n\r\n"
            )
            statuses = []
            for _ in range(3):
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
                statuses.append(int(head.split(b" ")[1]))
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
            # /health, the ingest API without a key, then /ready tagged with its own id.
            assert statuses[0] == 200
            assert statuses[1] == 401
            assert b"x-request-id: third" in head
            assert rt.metrics.value("wc_server_connections") == 1
        finally:
            writer.close()
        assert rt.metrics.total("wc_server_connections_closed_total") == 0
