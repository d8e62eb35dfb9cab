"""Tracing with ``exporter = "otlp"``: the engine's spans reach an OTLP/HTTP collector.

The collector is a small HTTP server on 127.0.0.1 in a thread of its own (the SDK's exporter
posts from its own thread with a blocking client, and the engine's final flush at stop runs on
the engine's loop: a collector on that loop could not answer it). It keeps every
``POST /v1/traces`` body; the test decodes them with the OTLP protobuf classes, as a collector
does, and checks the event's spans arrived whole: its trace id, the chain from the ingest API to
the Discord send, the service name.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from tests.server.conftest import server_settings
from tests.support import connected, wait_for
from wanderer_console.config.model import TracingSettings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.telemetry import tracing

pytestmark = pytest.mark.timeout(90)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


class Collector:
    """An OTLP/HTTP trace receiver: ``POST /v1/traces`` bodies kept, 200 answered (once
    :attr:`release` is set; set from the start unless a test clears it: a collector that
    holds every export, as one overloaded or behind a dead proxy does)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.content_types: list[str] = []
        self.release = threading.Event()
        self.release.set()
        self.held = 0
        """Exports received while :attr:`release` was clear."""
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if not collector.release.is_set():
                    collector.held += 1
                    collector.release.wait()
                if self.path == "/v1/traces":
                    collector.bodies.append(body)
                    collector.content_types.append(self.headers.get("content-type", ""))
                    self.send_response(200)
                else:
                    self.send_response(404)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """Every span received, with its resource's attributes."""
        out = []
        for body in self.bodies:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    out += [(resource, span) for span in scope.spans]
        return out


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    found = Collector()
    found.thread.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", found.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # ms between the exporter's batches
    try:
        yield found
    finally:
        found.release.set()
        tracing.shutdown()
        found.server.shutdown()
        found.server.server_close()


async def test_an_events_spans_reach_an_otlp_collector(
    sim: Simulator, tmp_path: Path, collector: Collector
) -> None:
    settings = server_settings(sim, tmp_path)
    settings.tracing = TracingSettings(enabled=True, sampling_ratio=0.0, exporter="otlp")
    runtime = Runtime(settings, data_dir=tmp_path)
    await runtime.start()
    try:
        await connected(runtime)
        assert runtime.tracing_error is None
        assert runtime.http is not None
        key = runtime.http.tenants.add(sim.map_slug)
        async with httpx.AsyncClient(base_url=runtime.http.url, timeout=10.0) as client:
            response = await client.post(
                "/api/v1/events",
                json={"title": "Collected", "notification_type": "system", "event_id": "o-1"},
                headers={"authorization": f"Bearer {key}", "traceparent": TRACEPARENT},
            )
        assert response.json()["results"][0]["status"] == "accepted", response.text
        await wait_for(
            lambda: [
                m for m in sim.discord.received if m.body["embeds"][0]["title"] == "Collected"
            ],
            what="the delivery",
        )
        # Exported in the background while the engine runs (the batch processor's own thread).
        await wait_for(
            lambda: any(span.name == "discord.send" for _r, span in collector.spans()),
            what="the send's span at the collector",
        )
    finally:
        await runtime.stop()

    assert collector.bodies
    assert set(collector.content_types) == {"application/x-protobuf"}
    spans = [(r, s) for r, s in collector.spans() if s.trace_id.hex() == TRACE_ID]
    names = {span.name for _r, span in spans}
    for name in ("POST /api/v1/events", "ingest.event", "event.process", "outbox.write"):
        assert name in names, (name, sorted(names))
    assert "discord.send" in names
    assert {r.get("service.name") for r, _s in spans} == {"wanderer-console"}
    # One trace, connected: every span but the request hangs from another span of it.
    ids = {span.span_id for _r, span in spans}
    (request,) = [span for _r, span in spans if span.name == "POST /api/v1/events"]
    assert request.parent_span_id.hex() == TRACEPARENT.split("-")[2]
    for _r, span in spans:
        if span is not request:
            assert span.parent_span_id in ids, span.name


async def _held_export(runtime: Runtime, sim: Simulator, collector: Collector) -> None:
    """An event traced through the engine while the collector holds every export: the SDK's
    exporting thread is stuck in a request, the event's other spans wait behind it."""
    collector.release.clear()
    await connected(runtime)
    assert runtime.tracing_error is None
    assert runtime.http is not None
    key = runtime.http.tenants.add(sim.map_slug)
    async with httpx.AsyncClient(base_url=runtime.http.url, timeout=10.0) as client:
        response = await client.post(
            "/api/v1/events",
            json={"title": "Held", "notification_type": "system", "event_id": "h-1"},
            headers={"authorization": f"Bearer {key}", "traceparent": TRACEPARENT},
        )
    assert response.json()["results"][0]["status"] == "accepted", response.text
    await wait_for(
        lambda: [m for m in sim.discord.received if m.body["embeds"][0]["title"] == "Held"],
        what="the delivery",
    )
    await wait_for(lambda: collector.held, what="an export held by the collector")


async def test_a_stop_never_holds_the_event_loop_for_a_slow_collector(
    sim: Simulator, tmp_path: Path, collector: Collector
) -> None:
    """At a stop the spans recorded but not yet exported are flushed to the collector. That
    flush ran on the engine's loop: with the collector down or slow it held the loop (the
    console's screen, the stop itself) for up to 30 s, past the 10 s a container is given to
    stop, so the process was killed before it closed its store and released its lock. It now
    runs beside the loop, which goes on while it waits."""
    settings = server_settings(sim, tmp_path)
    settings.tracing = TracingSettings(enabled=True, sampling_ratio=0.0, exporter="otlp")
    runtime = Runtime(settings, data_dir=tmp_path)
    runtime.tracing_flush_seconds = 600.0  # waits for this collector: it answers when told
    await runtime.start()
    stop: asyncio.Task[None] | None = None
    try:
        await _held_export(runtime, sim, collector)
        stop = asyncio.create_task(runtime.stop())
        # The flush begins (tracing is off from then on) and waits for the collector ...
        await wait_for(lambda: not tracing.enabled(), timeout=60.0, what="the flush at stop")
        # ... while the loop runs this test, and the stop waits with it.
        assert not stop.done(), "the flush held the event loop until it gave up"
        collector.release.set()
        await stop
    finally:
        collector.release.set()
        if stop is None:
            await runtime.stop()
    names = {span.name for _r, span in collector.spans()}
    assert "discord.send" in names, sorted(names)  # what waited was exported once let through


async def test_a_stop_waits_for_a_collector_that_does_not_answer_only_so_long(
    sim: Simulator,
    tmp_path: Path,
    collector: Collector,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A collector that never answers costs a stop ``tracing_flush_seconds``, then the spans
    still waiting are left behind, and the log says so."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "600")  # never gives up by itself
    settings = server_settings(sim, tmp_path)
    settings.tracing = TracingSettings(enabled=True, sampling_ratio=0.0, exporter="otlp")
    runtime = Runtime(settings, data_dir=tmp_path)
    runtime.tracing_flush_seconds = 0.2
    await runtime.start()
    try:
        await _held_export(runtime, sim, collector)
    finally:
        with caplog.at_level(logging.WARNING, logger="wanderer_console"):
            await runtime.stop()
    assert collector.held
    assert not collector.release.is_set()  # it never answered
    (line,) = [r for r in caplog.records if "spans not exported" in r.getMessage()]
    assert getattr(line, "ctx", {})["waited_seconds"] == 0.2
    # Let through, the flush left behind ends (it must not outlive the collector).
    collector.release.set()
    await wait_for(
        lambda: not any(t.name == "wc-tracing-flush" for t in threading.enumerate()),
        what="the flush left behind to end",
    )
