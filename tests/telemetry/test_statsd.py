"""The StatsD exporter: the registry's counters, gauges and timings as StatsD lines over UDP.

A real UDP listener on 127.0.0.1 receives what the exporter sends; the runtime test wires it
from ``[statsd]`` and reads what an engine's own events produce.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import Counter

from tests.server.conftest import server_settings
from tests.support import wait_for
from wanderer_console.config.model import Settings, StatsdSettings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.telemetry.metrics import Metrics
from wanderer_console.telemetry.statsd import StatsdExporter, pack, statsd_lines

pytestmark = pytest.mark.timeout(60)


class Listener(asyncio.DatagramProtocol):
    """A StatsD daemon's socket: keeps every datagram it receives."""

    def __init__(self) -> None:
        self.datagrams: list[bytes] = []

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.datagrams.append(data)

    @property
    def lines(self) -> list[str]:
        return [line for d in self.datagrams for line in d.decode().split("\n")]

    def take(self) -> list[str]:
        lines = self.lines
        self.datagrams.clear()
        return lines


@pytest.fixture
async def listener() -> AsyncIterator[tuple[Listener, str]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Listener, local_addr=("127.0.0.1", 0))
    host, port = transport.get_extra_info("sockname")[:2]
    try:
        yield protocol, f"{host}:{port}"
    finally:
        transport.close()


async def test_counters_gauges_and_timings_arrive_as_statsd_lines(
    listener: tuple[Listener, str],
) -> None:
    received, address = listener
    metrics = Metrics()
    exporter = StatsdExporter(metrics, address, prefix="wc", tags="dogstatsd", interval=3600)
    await exporter.open()
    try:
        metrics.events_received.labels(source="api").inc(3)
        metrics.outbox_pending.set(7)
        metrics.delivery_seconds.observe(0.1)
        metrics.delivery_seconds.observe(0.3)
        assert exporter.flush() == 1
        lines = await wait_for(received.take, what="first datagram")
        assert "wc.wc_events_received:3|c|#source:api" in lines
        assert "wc.wc_outbox_pending:7|g" in lines
        assert "wc.wc_store_writable:1|g" in lines
        assert "wc.wc_delivery_seconds:200|ms|@0.5" in lines  # two observations, mean 200 ms
        assert not [line for line in lines if "_created" in line or "_bucket" in line]
        # Counters travel as their increase since the last send; unchanged ones not at all.
        metrics.events_received.labels(source="api").inc(2)
        metrics.events_received.labels(source="killstream").inc()
        metrics.delivery_seconds.observe(0.05)
        exporter.flush()
        lines = await wait_for(received.take, what="second datagram")
        assert "wc.wc_events_received:2|c|#source:api" in lines
        assert "wc.wc_events_received:1|c|#source:killstream" in lines
        assert "wc.wc_delivery_seconds:50|ms" in lines
        assert "wc.wc_outbox_pending:7|g" in lines  # gauges every time
        exporter.flush()
        lines = await wait_for(received.take, what="third datagram")
        assert not [line for line in lines if "|c" in line or "|ms" in line]
    finally:
        exporter.close()


def test_tag_styles() -> None:
    metrics = Metrics()
    metrics.errors.labels(component="map:home.x|y").inc()
    lines = {
        style: [
            line
            for line in statsd_lines(metrics.registry, prefix="p", tags=style)
            if line.startswith("p.wc_errors")
        ]
        for style in ("dogstatsd", "graphite", "none")
    }
    assert lines == {
        "dogstatsd": ["p.wc_errors:1|c|#component:map_home.x_y"],
        "graphite": ["p.wc_errors;component=map_home.x_y:1|c"],
        "none": ["p.wc_errors.map_home_x_y:1|c"],
    }
    assert "wc_outbox_pending:0|g" in statsd_lines(metrics.registry, tags="none")


def test_lines_are_packed_into_datagrams_within_the_limit() -> None:
    lines = [f"wc.series_{i}:{i}|c|#source:s{i}" for i in range(500)]
    datagrams = list(pack(lines, 1432))
    assert all(len(d) <= 1432 for d in datagrams)
    assert len(datagrams) > 1
    assert [line for d in datagrams for line in d.decode().split("\n")] == lines
    # Each datagram is full: the next line would not have fit.
    for datagram, following in itertools.pairwise(datagrams):
        assert len(datagram) + 1 + len(following.split(b"\n")[0]) > 1432
    long_line = "x" * 2000
    assert list(pack(["a:1|c", long_line, "b:1|c"], 1432)) == [
        b"a:1|c",
        long_line.encode(),
        b"b:1|c",
    ]


async def test_many_series_arrive_in_full_datagrams_over_udp(
    listener: tuple[Listener, str],
) -> None:
    received, address = listener
    metrics = Metrics()
    many = Counter("wc_many", "many series", ["n"], registry=metrics.registry)
    for i in range(300):
        many.labels(n=str(i)).inc(i + 1)
    exporter = StatsdExporter(metrics, address, prefix="", interval=3600)
    await exporter.open()
    try:
        sent = exporter.flush()
        assert sent > 1
        await wait_for(lambda: len(received.datagrams) == sent, what="every datagram")
        assert all(len(d) <= 1432 for d in received.datagrams)
        got = {line for line in received.lines if line.startswith("wc_many:")}
        assert got == {f"wc_many:{i + 1}|c|#n:{i}" for i in range(300)}
    finally:
        exporter.close()


async def test_a_daemon_that_is_not_there_never_stops_the_exporter() -> None:
    metrics = Metrics()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    transport.close()  # nobody listens there now
    exporter = StatsdExporter(metrics, f"127.0.0.1:{port}", interval=3600)
    await exporter.open()
    try:
        for _ in range(3):
            metrics.events_received.labels(source="api").inc()
            assert exporter.flush() == 1
            await asyncio.sleep(0)
        # ICMP port unreachable comes back as a counted error, not an exception.
        await wait_for(lambda: metrics.value("wc_errors_total", component="statsd") >= 1)
    finally:
        exporter.close()


@pytest.fixture
def runtime_settings(sim: Simulator, tmp_path: Path, listener: tuple[Listener, str]) -> Settings:
    settings = server_settings(sim, tmp_path)
    settings.statsd = StatsdSettings(address=listener[1], prefix="console", interval_seconds=0.1)
    return settings


@pytest.mark.slow
async def test_the_runtime_sends_its_metrics_to_the_configured_address(
    runtime: Runtime, listener: tuple[Listener, str]
) -> None:
    received, _ = listener
    assert runtime.statsd is not None
    assert runtime.http is not None
    key = runtime.http.tenants.add(runtime.settings.maps[next(iter(runtime.settings.maps))].slug)
    item_posted = await _post_event(runtime.http.url, key)
    assert item_posted == 200

    def delivered() -> bool:
        return any(
            line.startswith("console.wc_notifications_delivered:1|c|#type:system")
            for line in received.lines
        )

    await wait_for(delivered, what="the delivery counted over StatsD")
    lines = received.lines
    assert "console.wc_events_received:1|c|#source:api" in lines
    assert any(line.startswith("console.wc_delivery_seconds:") for line in lines)
    assert any(line.startswith("console.wc_queue_depth:") for line in lines)


async def _post_event(url: str, key: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        response = await client.post(
            "/api/v1/events",
            json={"title": "Fleet forming", "notification_type": "system"},
            headers={"authorization": f"Bearer {key}"},
        )
        return response.status_code
