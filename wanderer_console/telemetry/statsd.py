"""The ``/metrics`` registry sent to a StatsD daemon over UDP, in batches, never blocking the loop.

Every ``interval`` the exporter reads the console's Prometheus registry (the same families
``/metrics`` exposes) and sends:

* a counter as ``name:<increase since the last send>|c`` (only when it grew);
* a gauge as ``name:<value>|g`` (every time: a restarted daemon gets it back at once);
* a histogram as a timing: ``name:<mean of the interval's observations in ms>|ms|@<1/count>``,
  so the daemon counts each observation (its count and mean are exact; its percentiles are
  those of the means, since the registry keeps buckets, not observations).

Labels become DogStatsD tags (``|#source:api``), Graphite tags (``name;source=api``) or, with no
tag support, dotted name segments (``name.api``). Lines are packed into datagrams of at most
``max_datagram_bytes`` and handed to an asyncio datagram transport, which buffers instead of
blocking; a daemon that is down costs nothing but the ICMP errors, which are counted.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Iterable, Iterator
from typing import Final, Literal

from prometheus_client import CollectorRegistry

from wanderer_console.telemetry.metrics import Metrics

__all__ = ["StatsdExporter", "TagStyle", "pack", "statsd_lines"]

log = logging.getLogger(__name__)

TagStyle = Literal["none", "dogstatsd", "graphite"]

_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_\-./]")
_UNSAFE_SEGMENT: Final = re.compile(r"[^A-Za-z0-9_\-]")

_SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


class _Renderer:
    """Names and tags in one style."""

    def __init__(self, prefix: str, style: TagStyle) -> None:
        self._prefix = f"{prefix}." if prefix else ""
        self._style = style

    def line(self, name: str, labels: tuple[tuple[str, str], ...], value: str, kind: str) -> str:
        base = self._prefix + name
        if not labels:
            return f"{base}:{value}|{kind}"
        if self._style == "dogstatsd":
            tags = ",".join(f"{k}:{_UNSAFE.sub('_', v)}" for k, v in labels)
            return f"{base}:{value}|{kind}|#{tags}"
        if self._style == "graphite":
            tags = "".join(f";{k}={_UNSAFE.sub('_', v) or '_'}" for k, v in labels)
            return f"{base}{tags}:{value}|{kind}"
        segments = "".join(f".{_UNSAFE_SEGMENT.sub('_', v) or '_'}" for _, v in labels)
        return f"{base}{segments}:{value}|{kind}"


class _Reader:
    """Turns successive reads of a registry into StatsD lines (keeps the last counter values)."""

    def __init__(self, registry: CollectorRegistry, renderer: _Renderer) -> None:
        self._registry = registry
        self._render = renderer
        self._last: dict[_SeriesKey, float] = {}

    def _delta(self, key: _SeriesKey, value: float) -> float:
        previous = self._last.get(key, 0.0)
        self._last[key] = value
        return value - previous if value >= previous else value  # a reset counter restarts

    def lines(self) -> Iterator[str]:
        render = self._render.line
        for family in self._registry.collect():
            if family.type == "counter":
                for sample in family.samples:
                    if not sample.name.endswith("_total"):
                        continue  # _created
                    labels = tuple(sorted(sample.labels.items()))
                    delta = self._delta((sample.name, labels), sample.value)
                    if delta > 0:
                        yield render(family.name, labels, _number(delta), "c")
            elif family.type == "gauge":
                for sample in family.samples:
                    if math.isfinite(sample.value):
                        labels = tuple(sorted(sample.labels.items()))
                        yield render(family.name, labels, _number(sample.value), "g")
            elif family.type in ("histogram", "summary"):
                sums: dict[tuple[tuple[str, str], ...], float] = {}
                counts: dict[tuple[tuple[str, str], ...], float] = {}
                for sample in family.samples:
                    if sample.name.endswith("_sum"):
                        sums[tuple(sorted(sample.labels.items()))] = sample.value
                    elif sample.name.endswith("_count"):
                        counts[tuple(sorted(sample.labels.items()))] = sample.value
                for labels, count in counts.items():
                    added = self._delta((family.name + "_count", labels), count)
                    total = self._delta((family.name + "_sum", labels), sums.get(labels, 0.0))
                    if added <= 0:
                        continue
                    mean = total / added
                    if family.name.endswith("_seconds"):
                        mean *= 1000.0
                    value = f"{mean:.3f}".rstrip("0").rstrip(".") or "0"
                    rate = "" if added == 1 else f"|@{1.0 / added:.6g}"
                    yield render(family.name, labels, value, "ms") + rate


def statsd_lines(
    registry: CollectorRegistry, *, prefix: str = "", tags: TagStyle = "dogstatsd"
) -> list[str]:
    """One read of ``registry`` as StatsD lines (counters as their whole value: a first send)."""
    return list(_Reader(registry, _Renderer(prefix, tags)).lines())


def pack(lines: Iterable[str], limit: int) -> Iterator[bytes]:
    """Newline-joined datagrams of at most ``limit`` bytes (a longer line travels alone)."""
    batch: list[bytes] = []
    size = 0
    for line in lines:
        data = line.encode()
        added = len(data) + (1 if batch else 0)
        if batch and size + added > limit:
            yield b"\n".join(batch)
            batch, size = [], 0
            added = len(data)
        batch.append(data)
        size += added
    if batch:
        yield b"\n".join(batch)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the daemon is down; the next send tries again.
        self._metrics.errors.labels(component="statsd").inc()


class StatsdExporter:
    """Reads the registry every ``interval`` seconds and sends it to ``host:port`` over UDP."""

    def __init__(
        self,
        metrics: Metrics,
        address: str,
        *,
        prefix: str = "wanderer_console",
        tags: TagStyle = "dogstatsd",
        interval: float = 10.0,
        max_datagram_bytes: int = 1432,
    ) -> None:
        host, _, port = address.rpartition(":")
        self._remote = (host.strip("[]"), int(port))
        self._metrics = metrics
        self._reader = _Reader(metrics.registry, _Renderer(prefix, tags))
        self._interval = interval
        self._limit = max_datagram_bytes
        self._transport: asyncio.DatagramTransport | None = None
        self.datagrams_sent = 0
        """Datagrams handed to the transport since start."""

    async def open(self) -> None:
        """Open the UDP socket (connected to the daemon's address; nothing is sent yet)."""
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self._metrics), remote_addr=self._remote
        )

    def flush(self) -> int:
        """Read the registry and send what changed now; returns the datagrams sent."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return 0
        sent = 0
        for datagram in pack(self._reader.lines(), self._limit):
            transport.sendto(datagram)  # buffered by the transport: never blocks the loop
            sent += 1
        self.datagrams_sent += sent
        return sent

    def close(self) -> None:
        """Close the socket."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def run(self) -> None:
        """Open, send every interval until cancelled, send once more and close."""
        await self.open()
        log.info(
            "statsd exporter started",
            extra={"ctx": {"address": f"{self._remote[0]}:{self._remote[1]}"}},
        )
        try:
            while True:
                await asyncio.sleep(self._interval)
                self.flush()
        finally:
            self.flush()  # what changed since the last interval
            self.close()
