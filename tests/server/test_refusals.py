"""Refusals are counted with their reason, logged throttled without secrets, and echo little."""

from __future__ import annotations

import asyncio
import io
import logging
import random
import string
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.server.test_webhook import envelope, signed
from tests.support import wait_for
from wanderer_console.runtime import Runtime
from wanderer_console.server.webhook import sign
from wanderer_console.sim import Simulator
from wanderer_console.telemetry.logging import ContextFilter, JsonFormatter

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

PAYLOAD_MARK = "PAYLOAD-MARK-7f3a"
LEAKY_KEY = "wci_LeakyKeyThatMustNeverBeLogged0123"


class JsonLines:
    """The console's log records as the production formatter writes them."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())
        self.handler.addFilter(ContextFilter())

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def events(self, event: str) -> list[dict[str, Any]]:
        lines = [orjson.loads(line) for line in self.text.splitlines() if line.strip()]
        return [line for line in lines if line["event"] == event]


@pytest.fixture
def json_lines() -> Iterator[JsonLines]:
    capture = JsonLines()
    logger = logging.getLogger("wanderer_console")
    level = logger.level
    logger.addHandler(capture.handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        logger.removeHandler(capture.handler)
        logger.setLevel(level)


def refused(runtime: Runtime, endpoint: str, reason: str) -> float:
    return runtime.metrics.value("wc_server_refusals_total", endpoint=endpoint, reason=reason)


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def event(**extra: object) -> dict[str, object]:
    return {"title": "Structure under attack", "notification_type": "system", **extra}


async def test_each_ingest_refusal_is_counted_with_its_reason(
    runtime: Runtime, client: httpx.AsyncClient, ingest_key: str
) -> None:
    key = auth(ingest_key)
    calls: list[tuple[str, int, httpx.Response]] = [
        ("no_key", 401, await client.post("/api/v1/events", json=event())),
        ("bad_key", 401, await client.post("/api/v1/events", json=event(), headers=auth("x"))),
        ("json", 400, await client.post("/api/v1/events", content=b"{nope", headers=key)),
        ("shape", 400, await client.post("/api/v1/events", json=[1, 2], headers=key)),
        ("shape", 400, await client.post("/api/v1/events", json={"events": 3}, headers=key)),
        (
            "too_large",
            413,
            await client.post("/api/v1/events", content=b"x" * 300_000, headers=key),
        ),
        (
            "too_many_events",
            422,
            await client.post("/api/v1/events", json={"events": [event()] * 51}, headers=key),
        ),
        (
            "invalid_events",
            422,
            await client.post("/api/v1/events", json={"events": ["a", 1]}, headers=key),
        ),
        (
            "other_tenant",
            401,
            await client.post("/api/v1/events", json=event(tenant="other"), headers=key),
        ),
        (
            "tenant_type",
            422,
            await client.post("/api/v1/events", json=event(tenant=5), headers=key),
        ),
    ]
    for reason, status, response in calls:
        assert response.status_code == status, (reason, response.text)
    assert refused(runtime, "ingest", "no_key") == 1
    assert refused(runtime, "ingest", "bad_key") == 1
    assert refused(runtime, "ingest", "json") == 1
    assert refused(runtime, "ingest", "shape") == 2
    assert refused(runtime, "ingest", "too_large") == 1
    assert refused(runtime, "ingest", "too_many_events") == 1
    assert refused(runtime, "ingest", "invalid_events") == 1
    assert refused(runtime, "ingest", "other_tenant") == 1
    assert refused(runtime, "ingest", "tenant_type") == 1
    # A refused key is told what to send and where a key comes from, the same words whether
    # the key is missing, wrong or another tenant's (nothing said of who exists).
    unauthorised = {response.json()["error"] for _, status, response in calls if status == 401}
    [words] = unauthorised
    assert "Authorization: Bearer" in words
    assert "tenant rotate-key" in words
    # Events that are not objects are counted like any invalid event.
    assert runtime.metrics.value("wc_events_invalid_total", source="api", reason="shape") == 2


async def test_webhook_and_unrouted_refusals_are_counted_with_their_reason(
    sim: Simulator, runtime: Runtime, client: httpx.AsyncClient
) -> None:
    url = f"/api/v1/maps/{sim.map_slug}/webhook"
    body = orjson.dumps(envelope(sim, 31000001, "J000001"))
    assert (
        await client.post(url, content=body, headers=signed(body, secret="no"))
    ).status_code == 401
    stale = signed(body, at=time.time() - 900)
    assert (await client.post(url, content=body, headers=stale)).status_code == 401
    assert (await client.post(url, content=b"{", headers=signed(b"{"))).status_code == 400
    wrong_method = await client.get(url)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert (await client.get("/wp-login.php")).status_code == 404
    assert refused(runtime, "webhook", "signature") == 1
    assert refused(runtime, "webhook", "timestamp") == 1
    assert refused(runtime, "webhook", "json") == 1
    assert refused(runtime, "webhook", "method_not_allowed") == 1
    assert refused(runtime, "other", "not_found") == 1


async def test_refusals_are_logged_once_per_client_per_interval_without_secret_or_payload(
    sim: Simulator,
    runtime: Runtime,
    client: httpx.AsyncClient,
    json_lines: JsonLines,
) -> None:
    secret_signature = sign("guessed-secret", str(int(time.time())), b"{}")
    for _ in range(5):
        response = await client.post(
            "/api/v1/events", json=event(body=PAYLOAD_MARK), headers=auth(LEAKY_KEY)
        )
        assert response.status_code == 401
        body = orjson.dumps({"payload": PAYLOAD_MARK})
        headers = {
            "x-wanderer-timestamp": str(int(time.time())),
            "x-wanderer-signature": secret_signature,
        }
        response = await client.post(
            f"/api/v1/maps/{sim.map_slug}/webhook", content=body, headers=headers
        )
        assert response.status_code == 401
    (line,) = json_lines.events("http request refused")
    assert line["endpoint"] == "ingest"
    assert line["reason"] == "bad_key"
    assert line["status"] == 401
    assert line["client"] == "127.0.0.1"
    assert runtime.http is not None
    runtime.http.refusals.log.clock = lambda: time.monotonic() + 61  # the interval has passed
    response = await client.post("/api/v1/events", json=event(), headers=auth(LEAKY_KEY))
    _first, second = json_lines.events("http request refused")
    assert second["suppressed"] == 9  # 4 more bad keys and 5 bad signatures
    for secret in (LEAKY_KEY, LEAKY_KEY.removeprefix("wci_"), secret_signature, PAYLOAD_MARK):
        assert secret not in json_lines.text
    assert refused(runtime, "ingest", "bad_key") == 6
    assert refused(runtime, "webhook", "signature") == 5


async def test_422_body_echoes_only_a_short_prefix_of_the_input(
    client: httpx.AsyncClient, ingest_key: str
) -> None:
    huge = "9" * 100_000  # three of these stay under the 256 KiB body limit
    posted = {
        "title": "t",
        "schema_version": huge,
        "event_id": huge,
        "k" * 50_000: 1,
    }
    response = await client.post("/api/v1/events", json=posted, headers=auth(ingest_key))
    assert response.status_code == 422
    assert len(response.content) < 2_000, len(response.content)
    (result,) = response.json()["results"]
    assert result["status"] == "rejected"
    assert "semantic version" in result["reason"]
    assert "9" * 201 not in response.text
    not_json = await client.post(
        "/api/v1/events", content=b"[" + b"1," * 100_000, headers=auth(ingest_key)
    )
    assert not_json.status_code == 400
    assert len(not_json.content) < 500


async def test_random_map_webhook_posts_do_not_grow_metric_series(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    def series(text: str) -> set[str]:
        return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line[:1] not in "#"}

    before = (await client.get("/metrics")).text
    rng = random.Random(7)
    names = ["".join(rng.choices(string.ascii_lowercase, k=12)) for _ in range(600)]
    for name in names:
        response = await client.post(f"/api/v1/maps/{name}/webhook", content=b"{}")
        assert response.status_code == 401
    after = (await client.get("/metrics")).text
    # One label value ("unknown") for every made-up name: a handful of new series, not 1,200
    # (the engine's own, e.g. the cache's, may appear meanwhile: they are not counted).
    new = {s for s in series(after) - series(before) if "webhook" in s or "wc_server" in s}
    assert len(new) <= 8, sorted(new)
    # No made-up name reached any series, under whatever metric (a bound on the text's growth
    # counted the engine's own new series too: its cache's, landing meanwhile, passed it).
    assert not [name for name in names if name in after]
    assert (
        runtime.metrics.value(
            "wc_events_invalid_total", source="webhook:unknown", reason="timestamp"
        )
        == 600
    )


async def raw_upload(port: int, head: str, sent: bytes) -> None:
    """Send headers announcing a big body, part of the body, then hang up."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + sent)
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    await writer.wait_closed()


async def test_aborted_uploads_are_counted_and_logged_without_traceback(
    sim: Simulator,
    runtime: Runtime,
    ingest_key: str,
    json_lines: JsonLines,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    caplog.set_level(logging.DEBUG)
    # uvicorn's own loggers may not propagate to the root (its default config stops them there).
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.addHandler(caplog.handler)
    request.addfinalizer(lambda: uvicorn_logger.removeHandler(caplog.handler))
    assert runtime.http is not None
    port = int(runtime.http.url.rsplit(":", 1)[1])
    common = "Host: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n"
    await raw_upload(
        port,
        f"POST /api/v1/maps/{sim.map_slug}/webhook HTTP/1.1\r\n{common}\r\n",
        b'{"id": "' + b"0" * 5000,
    )
    await raw_upload(
        port,
        f"POST /api/v1/events HTTP/1.1\r\n{common}Authorization: Bearer {ingest_key}\r\n\r\n",
        b'{"title": "' + b"x" * 5000,
    )

    def disconnects(endpoint: str) -> float:
        return runtime.metrics.value("wc_server_client_disconnects_total", endpoint=endpoint)

    def tracebacks() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]

    await wait_for(
        lambda: tracebacks() or (disconnects("webhook") == 1 and disconnects("ingest") == 1)
    )
    await asyncio.sleep(0.2)
    assert not tracebacks()
    assert "Traceback" not in json_lines.text
    (line,) = json_lines.events("http client disconnected mid-request")  # throttled: one
    assert line["level"] == "info"
    assert line["endpoint"] == "webhook"


async def test_a_duplicate_refused_by_the_ingest_api_is_logged_with_tenant_and_event_id(
    sim: Simulator,
    runtime: Runtime,
    client: httpx.AsyncClient,
    json_lines: JsonLines,
) -> None:
    assert runtime.http is not None
    key = runtime.http.tenants.add(sim.map_slug)
    one = event(event_id="ops-dup-0042")
    first = await client.post("/api/v1/events", json=one, headers=auth(key))
    assert first.json()["results"][0]["status"] == "accepted"
    assert json_lines.events("ingest event refused as duplicate") == []
    again = await client.post("/api/v1/events", json=one, headers=auth(key))
    assert again.json()["results"][0]["status"] == "duplicate"
    (line,) = json_lines.events("ingest event refused as duplicate")
    assert line["tenant"] == sim.map_slug
    assert line["event_id"] == "ops-dup-0042"
    assert key not in json_lines.text
    assert runtime.metrics.value("wc_events_duplicate_total", source="api") == 1


async def test_a_request_with_two_authorization_headers_is_refused(
    runtime: Runtime, client: httpx.AsyncClient, ingest_key: str
) -> None:
    """With two Authorization headers the first one was read, so their order decided whether
    the request was accepted, and a proxy in front that checks the last one disagreed with the
    console about who sent it. Such a request is refused whatever the order, nothing read."""
    for headers in (
        [("authorization", f"Bearer {ingest_key}"), ("authorization", "Bearer wci_other")],
        [("authorization", "Bearer wci_other"), ("authorization", f"Bearer {ingest_key}")],
        [("authorization", f"Bearer {ingest_key}"), ("authorization", f"Bearer {ingest_key}")],
    ):
        response = await client.post("/api/v1/events", json=event(), headers=headers)
        assert response.status_code == 400, response.text
        assert "one Authorization header" in response.json()["error"]
    assert refused(runtime, "ingest", "auth_headers") == 3
    assert (
        runtime.metrics.value("wc_server_refusals_total", endpoint="ingest", reason="bad_key") == 0
    )
    # One header is still accepted.
    accepted = await client.post("/api/v1/events", json=event(), headers=auth(ingest_key))
    assert accepted.status_code == 200, accepted.text
