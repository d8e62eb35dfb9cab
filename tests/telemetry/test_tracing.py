"""Tracing: one event's trace from the ingest API request to the fake Discord, in-memory spans.

The event is posted with a W3C ``traceparent``; the fake Discord answers 429 while the first
engine runs, that engine stops with the notification still in the outbox, and a second engine on
the same data directory delivers it. Every span of the event, from both engines, belongs to the
caller's trace and hangs from it without a gap.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.server.conftest import WEBHOOK_SECRET, server_settings
from tests.support import connected, wait_for
from tests.telemetry.conftest import JsonCapture
from wanderer_console.config.model import TracingSettings
from wanderer_console.runtime import Runtime
from wanderer_console.server.webhook import sign
from wanderer_console.sim import Simulator
from wanderer_console.sim.ulid import new_ulid
from wanderer_console.telemetry import tracing

pytestmark = pytest.mark.timeout(90)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
RATE_LIMITED = (
    429,
    {"message": "You are being rate limited.", "retry_after": 0.2, "global": False},
    {"Retry-After": "1"},
)


@pytest.fixture(autouse=True)
def tracing_off_afterwards() -> Iterator[None]:
    yield
    tracing.shutdown()


def by_name(spans: Sequence[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for item in spans:
        out.setdefault(item.name, []).append(item)
    return out


def parent_id(item: ReadableSpan) -> int | None:
    return item.parent.span_id if item.parent is not None else None


def attrs(item: ReadableSpan) -> dict[str, Any]:
    return dict(item.attributes or {})


@contextlib.asynccontextmanager
async def traced_engine(
    sim: Simulator, tmp_path: Path, ratio: float
) -> AsyncIterator[tuple[Runtime, InMemorySpanExporter]]:
    """An engine on the server settings, tracing at ``ratio`` into an in-memory exporter."""
    exporter = InMemorySpanExporter()
    settings = server_settings(sim, tmp_path)
    settings.tracing = TracingSettings(enabled=True, sampling_ratio=ratio, exporter="none")
    engine = Runtime(settings, data_dir=tmp_path, span_exporter=exporter)
    await engine.start()
    try:
        yield engine, exporter
    finally:
        await engine.stop()


@pytest.mark.slow
async def test_one_event_is_one_trace_across_a_429_and_a_restart(
    sim: Simulator, tmp_path: Path, json_logs: JsonCapture
) -> None:
    exporter = InMemorySpanExporter()
    settings = server_settings(sim, tmp_path)
    # Ratio 0: the engine's own events (the simulator's map stream) start unsampled traces;
    # the caller's sampled traceparent decides for this event's trace.
    settings.tracing = TracingSettings(enabled=True, sampling_ratio=0.0, exporter="none")

    first = Runtime(settings, data_dir=tmp_path, span_exporter=exporter)
    await first.start()
    try:
        await connected(first)
        assert first.tracing_error is None
        assert first.http is not None
        key = first.http.tenants.add(sim.map_slug)
        sim.discord.outage = RATE_LIMITED
        async with httpx.AsyncClient(base_url=first.http.url, timeout=10.0) as client:
            response = await client.post(
                "/api/v1/events",
                json={"title": "Traced fleet", "notification_type": "system", "event_id": "t-1"},
                headers={"authorization": f"Bearer {key}", "traceparent": TRACEPARENT},
            )
        assert response.json()["results"][0]["status"] == "accepted", response.text
        # Discord answers 429, the engine waits and tries again, and gets 429 again.
        await wait_for(
            lambda: len(by_name(exporter.get_finished_spans()).get("discord.send", [])) >= 2,
            what="two rate-limited attempts",
        )
    finally:
        await first.stop()
    assert sim.discord.received == []

    sim.discord.outage = None
    # A new process, a new exporter (the first one was shut down with its engine); a collector
    # joins what both exported by trace id.
    restarted = InMemorySpanExporter()
    second = Runtime(settings, data_dir=tmp_path, span_exporter=restarted)
    await second.start()
    try:
        await wait_for(
            lambda: [
                m for m in sim.discord.received if m.body["embeds"][0]["title"] == "Traced fleet"
            ],
            what="the delivery after the restart",
        )
        await second.drain(timeout=5.0)
    finally:
        await second.stop()

    exported = [*exporter.get_finished_spans(), *restarted.get_finished_spans()]
    spans = [s for s in exported if f"{s.context.trace_id:032x}" == TRACE_ID]
    assert [s for s in restarted.get_finished_spans() if s in spans]  # the second engine's
    names = by_name(spans)
    for name in (
        "POST /api/v1/events",
        "ingest.event",
        "event.process",
        "dedup",
        "rules",
        "outbox.write",
    ):
        assert len(names.get(name, [])) == 1, (name, sorted(names))
    sends = sorted(names["discord.send"], key=lambda s: s.start_time or 0)
    assert len(sends) >= 3
    outcomes = [attrs(s)["discord.outcome"] for s in sends]
    assert outcomes[-1] == "sent"
    assert set(outcomes[:-1]) == {"rate_limited"}
    assert [attrs(s).get("http.response.status_code") for s in sends[:-1]] == [429] * (
        len(sends) - 1
    )

    # Connected: the request hangs from the caller's span, every other span from one of ours.
    ids = {s.context.span_id for s in spans}
    (request,) = names["POST /api/v1/events"]
    assert parent_id(request) == int(CALLER_SPAN, 16)
    assert request.parent is not None
    assert request.parent.is_remote
    assert all(parent_id(s) in ids for s in spans if s is not request)
    (ingest,) = names["ingest.event"]
    (process,) = names["event.process"]
    (write,) = names["outbox.write"]
    assert parent_id(ingest) == request.context.span_id
    assert parent_id(process) == ingest.context.span_id
    assert {parent_id(s) for s in names["dedup"] + names["rules"]} == {process.context.span_id}
    assert parent_id(write) == process.context.span_id
    # Both engines' attempts continue from the outbox row's stored context.
    assert {parent_id(s) for s in sends} == {write.context.span_id}
    assert attrs(process)["event.id"] == "api:t-1"

    # The log lines inside the event carry its correlation id and trace id together.
    decided = [line for line in json_logs.lines() if line["event"] == "event decided"]
    traced = [line for line in decided if line.get("trace_id") == TRACE_ID]
    assert traced, decided
    assert all(line.get("correlation_id") for line in traced)


@pytest.mark.slow
async def test_without_tracing_no_span_and_no_trace_context_is_made(
    sim: Simulator, tmp_path: Path
) -> None:
    settings = server_settings(sim, tmp_path)
    engine = Runtime(settings, data_dir=tmp_path)
    await engine.start()
    try:
        await connected(engine)
        assert not tracing.enabled()
        assert engine.http is not None
        key = engine.http.tenants.add(sim.map_slug)
        async with httpx.AsyncClient(base_url=engine.http.url, timeout=10.0) as client:
            response = await client.post(
                "/api/v1/events",
                json={"title": "Untraced", "notification_type": "system"},
                headers={"authorization": f"Bearer {key}", "traceparent": TRACEPARENT},
            )
        assert response.status_code == 200
        await wait_for(lambda: engine.metrics.total("wc_notifications_delivered_total") >= 1)
        with contextlib.closing(sqlite3.connect(str(engine.store.path))) as db:
            rows = db.execute("SELECT trace_parent FROM outbox").fetchall()
        assert rows
        assert all(row[0] is None for row in rows)
    finally:
        await engine.stop()


def test_without_the_extra_tracing_says_how_to_install_it_and_stays_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [m for m in sys.modules if m.startswith("opentelemetry")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    reason = tracing.configure(enabled=True, exporter="none")
    assert reason is not None
    assert "pip install 'wanderer-console[otel]'" in reason
    assert not tracing.enabled()
    assert tracing.source_span("sse.event") is None
    assert tracing.span("dedup") is tracing.NOOP_SPAN


@pytest.mark.slow
def test_the_engine_never_imports_opentelemetry_unless_tracing_is_enabled() -> None:
    code = (
        "import sys, wanderer_console.runtime, wanderer_console.cli;"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_otlp_without_its_exporter_and_otel_sdk_disabled_keep_tracing_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The dev environment has the exporter (tests/telemetry/test_otlp.py): hide it, as on an
    # install without the [otlp] extra.
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    reason = tracing.configure(enabled=True, exporter="otlp")
    assert reason is not None
    assert "wanderer-console[otlp]" in reason
    assert not tracing.enabled()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.configure(enabled=True, exporter="none") == "OTEL_SDK_DISABLED is set"
    assert not tracing.enabled()


def test_the_sampling_ratio_draws_new_traces_and_a_parent_decides_for_its_own() -> None:
    exporter = InMemorySpanExporter()
    assert tracing.configure(enabled=True, sampling_ratio=0.0, span_exporter=exporter) is None
    assert [tracing.source_span("sse.event") for _ in range(50)] == [None] * 50
    assert tracing.span("dedup") is tracing.NOOP_SPAN  # no recorded span is current
    with tracing.event_span("POST /api/v1/events", TRACEPARENT, kind="server"):
        child = tracing.source_span("ingest.event")
    assert child is not None
    assert child.split("-")[1] == TRACE_ID
    unsampled = f"00-{TRACE_ID}-{CALLER_SPAN}-00"
    with tracing.event_span("POST /api/v1/events", unsampled, kind="server"):
        assert tracing.source_span("ingest.event") is None
    assert tracing.configure(enabled=True, sampling_ratio=1.0, span_exporter=exporter) is None
    assert all(tracing.source_span("sse.event") for _ in range(20))
    drawn = [tracing.sample() for _ in range(20)]
    assert all(drawn)
    tracing.configure(enabled=True, sampling_ratio=0.25, span_exporter=exporter)
    share = sum(tracing.sample() for _ in range(4000)) / 4000
    assert 0.2 < share < 0.3


async def test_an_api_request_left_out_by_the_ratio_leaves_its_events_out(
    sim: Simulator, tmp_path: Path
) -> None:
    # One draw per unparented request, for the request and its events: an event of a request
    # left out must not be drawn a second time (it would be traced with r + (1 - r) * r).
    requests = 120
    async with traced_engine(sim, tmp_path, 0.5) as (runtime, exporter):
        assert runtime.http is not None
        key = runtime.http.tenants.add(sim.map_slug)
        async with httpx.AsyncClient(base_url=runtime.http.url, timeout=10.0) as client:
            for index in range(requests):
                response = await client.post(
                    "/api/v1/events",
                    json={"title": f"Ping {index}", "notification_type": "system"},
                    headers={"authorization": f"Bearer {key}"},
                )
                assert response.json()["results"][0]["status"] == "accepted", response.text
    names = by_name(exporter.get_finished_spans())
    posts = {s.context.span_id for s in names.get("POST /api/v1/events", [])}
    events = names.get("ingest.event", [])
    # Every traced event hangs from its drawn request; none started a trace of its own.
    assert [parent_id(s) for s in events if parent_id(s) not in posts] == []
    assert len(events) == len(posts)
    # Half of the requests, give or take (binomial: 4 standard deviations either way).
    assert 60 - 22 <= len(posts) <= 60 + 22, len(posts)


@pytest.mark.slow
async def test_a_kill_and_a_map_event_are_traced_from_their_sources_to_discord(
    sim: Simulator, tmp_path: Path
) -> None:
    async with traced_engine(sim, tmp_path, 1.0) as (engine, exporter):
        await connected(engine)
        system = sorted(sim.tracked_system_ids)[0]
        kill = sim.generator.make_killmail(system_id=system, with_names=False)
        await sim.killstream.push_kill(kill)
        footer = f"Killmail ID: {kill['killmail_id']}"

        def sent() -> bool:
            return any(
                embed.get("footer", {}).get("text", "").startswith(footer)
                for message in sim.discord.received
                for embed in message.body.get("embeds", [])
            )

        await wait_for(sent, what="the kill's notification")
        await wait_for(
            lambda: any(
                s.name == "discord.send"
                and attrs(s).get("discord.outcome") == "sent"
                and any(
                    r.name == "killstream.kill"
                    and attrs(r).get("killmail.id") == kill["killmail_id"]
                    and r.context.trace_id == s.context.trace_id
                    for r in exporter.get_finished_spans()
                )
                for s in exporter.get_finished_spans()
            ),
            what="the delivery span",
        )
        # A map stream event: its own trace from the sse.event span to its delivery.
        added = sim.generator.new_system()
        sim.map.add_system(added.system_id, name=added.name)

        def map_trace() -> list[ReadableSpan]:
            spans = exporter.get_finished_spans()
            roots = [
                s
                for s in spans
                if s.name == "sse.event" and attrs(s).get("event.type") == "add_system"
            ]
            for root in roots:
                trace = [s for s in spans if s.context.trace_id == root.context.trace_id]
                if any(attrs(s).get("discord.outcome") == "sent" for s in trace):
                    return trace
            return []

        map_spans = await wait_for(map_trace, what="the map event's delivered trace")
    (source,) = [
        s
        for s in exporter.get_finished_spans()
        if s.name == "killstream.kill" and attrs(s).get("killmail.id") == kill["killmail_id"]
    ]
    trace = [
        s for s in exporter.get_finished_spans() if s.context.trace_id == source.context.trace_id
    ]
    names = by_name(trace)
    (process,) = names["event.process"]
    assert parent_id(process) == source.context.span_id
    (enrich,) = names["enrich"]
    assert parent_id(enrich) == process.context.span_id
    esi = [s for s in trace if s.name.startswith("esi ")]
    assert esi, sorted(names)
    by_id = {s.context.span_id: s for s in trace}

    def ancestors(item: ReadableSpan) -> list[str]:
        out = []
        while (parent := parent_id(item)) in by_id:
            item = by_id[parent]
            out.append(item.name)
        return out

    # Each ESI call hangs from the enrichment (directly, or under a cache load it started).
    assert all("enrich" in ancestors(s) for s in esi), [ancestors(s) for s in esi]
    assert all(attrs(s)["http.response.status_code"] == 200 for s in esi)
    (write,) = names["outbox.write"]
    assert {parent_id(s) for s in names["discord.send"]} == {write.context.span_id}
    on_map = by_name(map_spans)
    (root,) = on_map["sse.event"]
    assert attrs(root)["map"] == sim.map_slug
    (map_process,) = on_map["event.process"]
    assert parent_id(map_process) == root.context.span_id
    for name in ("dedup", "rules", "outbox.write"):
        assert [parent_id(s) for s in on_map[name]] == [map_process.context.span_id], name


async def test_a_map_webhook_with_a_traceparent_continues_the_senders_trace(
    sim: Simulator, tmp_path: Path
) -> None:
    # Ratio 0: nothing is drawn; only the sender's sampled traceparent makes this trace.
    async with traced_engine(sim, tmp_path, 0.0) as (engine, exporter):
        await connected(engine)
        assert engine.http is not None
        system = sim.generator.new_system(wormhole=True)
        body = orjson.dumps(
            {
                "id": new_ulid(),
                "type": "add_system",
                "map_id": sim.map_id,
                "timestamp": "2025-01-01T00:00:00.000000Z",
                "payload": {"solar_system_id": system.system_id, "name": system.name},
            }
        )
        stamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "x-wanderer-timestamp": stamp,
            "x-wanderer-signature": sign(WEBHOOK_SECRET, stamp, body),
            "traceparent": TRACEPARENT,
        }
        async with httpx.AsyncClient(base_url=engine.http.url, timeout=10.0) as client:
            response = await client.post(
                f"/api/v1/maps/{sim.map_slug}/webhook", content=body, headers=headers
            )
        assert response.status_code == 202, response.text

        def delivered() -> list[ReadableSpan]:
            return [
                s
                for s in exporter.get_finished_spans()
                if s.name == "discord.send"
                and attrs(s).get("discord.outcome") == "sent"
                and f"{s.context.trace_id:032x}" == TRACE_ID
            ]

        await wait_for(delivered, what="the webhook event's delivery in the sender's trace")
    spans = [s for s in exporter.get_finished_spans() if f"{s.context.trace_id:032x}" == TRACE_ID]
    names = by_name(spans)
    (request,) = names["POST /api/v1/maps/{map}/webhook"]
    assert parent_id(request) == int(CALLER_SPAN, 16)
    assert attrs(request)["http.response.status_code"] == 202
    (source,) = names["webhook.event"]
    assert parent_id(source) == request.context.span_id
    (process,) = names["event.process"]
    assert parent_id(process) == source.context.span_id
    assert "outbox.write" in names


def test_only_a_well_formed_traceparent_is_honoured() -> None:
    assert tracing.incoming(TRACEPARENT) == TRACEPARENT
    assert tracing.incoming(f" {TRACEPARENT.upper()} ") == TRACEPARENT
    for bad in (
        None,
        "",
        "garbage",
        f"00-{'0' * 32}-{CALLER_SPAN}-01",  # an all-zero trace id is invalid
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"00-{TRACE_ID}-{CALLER_SPAN}",
        f"00-{TRACE_ID}x-{CALLER_SPAN}-01",
    ):
        assert tracing.incoming(bad) is None, bad


@pytest.mark.slow
async def test_an_engine_asked_to_trace_without_the_extra_logs_why_and_runs_untraced(
    sim: Simulator, tmp_path: Path, json_logs: JsonCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m.startswith("opentelemetry")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    settings = server_settings(sim, tmp_path)
    settings.tracing = TracingSettings(enabled=True)
    engine = Runtime(settings, data_dir=tmp_path)
    await engine.start()
    try:
        await connected(engine)
        assert engine.tracing_error is not None
        assert "pip install 'wanderer-console[otel]'" in engine.tracing_error
        (line,) = [x for x in json_logs.lines() if x["event"] == "tracing stays off"]
        assert line["level"] == "error"
        assert line["reason"] == engine.tracing_error
        assert not tracing.enabled()
        assert engine.http is not None
        key = engine.http.tenants.add(sim.map_slug)
        async with httpx.AsyncClient(base_url=engine.http.url, timeout=10.0) as client:
            response = await client.post(
                "/api/v1/events",
                json={"title": "Still delivered", "notification_type": "system"},
                headers={"authorization": f"Bearer {key}", "traceparent": TRACEPARENT},
            )
        assert response.status_code == 200
        await wait_for(
            lambda: [
                m for m in sim.discord.received if m.body["embeds"][0]["title"] == "Still delivered"
            ]
        )
        assert not [x for x in json_logs.lines() if "trace_id" in x]
    finally:
        await engine.stop()
