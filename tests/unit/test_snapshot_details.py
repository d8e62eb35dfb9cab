"""What the engine puts in its snapshot for the console's detail views: a source's recent errors
and where it connects, a target's ``map/route`` name and masked address, the recent log lines
about a target or a breaker."""

from __future__ import annotations

import logging
from typing import Any

from wanderer_console.config.loader import parse_settings_text
from wanderer_console.console_api import EngineSnapshot
from wanderer_console.control.explain import masked_url, source_url, target_names
from wanderer_console.control.local import LogRing
from wanderer_console.ingest.health import RECENT_ERRORS, ConnectionHealth, ConnectionState
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator


class Ticking:
    """A wall clock the test moves."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_source_keeps_its_last_errors_and_when_the_run_of_errors_began() -> None:
    clock = Ticking()
    health = ConnectionHealth("sse:alpha", "map_sse", clock=clock)
    health.set_state(ConnectionState.CONNECTED)
    for n in range(RECENT_ERRORS + 2):
        clock.now += 10
        health.set_state(ConnectionState.RECONNECTING, f"stream lost: reset {n}")
    view = health.snapshot()
    assert view["errors"] == RECENT_ERRORS + 2
    assert view["error_since"] == 1_010.0  # the first error of the run, not the last
    texts = [occurrence["text"] for occurrence in view["recent_errors"]]
    assert texts == [f"stream lost: reset {n}" for n in range(2, RECENT_ERRORS + 2)]
    assert view["recent_errors"][-1]["at"] == clock.now

    health.set_state(ConnectionState.CONNECTED)
    view = health.snapshot()
    assert view["error_since"] is None
    assert view["last_error"] is None
    assert len(view["recent_errors"]) == RECENT_ERRORS  # the history stays to be read


def test_an_error_a_source_sets_directly_is_listed_once() -> None:
    clock = Ticking()
    health = ConnectionHealth("sse:alpha", "map_sse", clock=clock)
    health.last_error = "initial load failed: connection refused"
    health.snapshot()
    view = health.snapshot()
    assert [o["text"] for o in view["recent_errors"]] == ["initial load failed: connection refused"]
    assert view["error_since"] == 1_000.0


def test_urls_lose_their_credentials() -> None:
    assert (
        masked_url("https://discord.com/api/webhooks/1200000002538501129/tok-en_secret?wait=true")
        == "https://discord.com/api/webhooks/1200000002538501129/***"
    )
    assert (
        masked_url("https://user:pass@map.example:8443/x?key=abc") == "https://map.example:8443/x"
    )


CONFIG = """
[discord]
bot_token = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.bot-token-secret-value-0123456789"

[maps.alpha]
url = "https://wanderer.example"
api_key = "k1"
[maps.alpha.discord]
webhook_url = "https://discord.com/api/webhooks/111111111111111111/alpha-token"
rally_webhook_url = "https://discord.com/api/webhooks/222222222222222222/rally-token"

[maps.bravo]
url = "https://wanderer.example"
slug = "bravo-slug"
api_key = "k2"
[maps.bravo.discord]
webhook_url = "https://discord.com/api/webhooks/111111111111111111/alpha-token"
system_channel_id = "100000000000000001"
"""


def test_each_target_is_named_by_the_map_routes_that_post_there() -> None:
    settings, _ = parse_settings_text(CONFIG, environ={})
    names = target_names(settings)
    assert names["webhook:111111111111111111"] == (
        "alpha/primary, bravo/primary",
        "https://discord.com/api/webhooks/111111111111111111/***",
    )
    assert names["webhook:222222222222222222"][0] == "alpha/rally"
    assert names["channel:100000000000000001"] == (
        "bravo/system",
        "channel 100000000000000001 (bot)",
    )
    assert source_url(settings, "sse:bravo") == (
        "https://wanderer.example/api/maps/bravo-slug/events/stream"
    )
    assert source_url(settings, "killstream:systems") == settings.killstream.websocket_url
    assert source_url(settings, "nothing") is None


def test_a_url_with_a_port_out_of_range_is_shown_not_the_snapshot_lost() -> None:
    """The config takes such a URL (its check is the scheme); reading its port raised ValueError,
    and with it every snapshot: the console (in process or attached) saw nothing at all, just
    when the operator needed to see which address was wrong. It is shown as written, masked."""
    config = CONFIG.replace(
        'url = "https://wanderer.example"\nslug', 'url = "https://wanderer.example:99999"\nslug'
    ).replace(
        "https://discord.com/api/webhooks/222222222222222222/rally-token",
        "https://user:pw@discord.com:70000/api/webhooks/222222222222222222/rally-token",
    )
    settings, _ = parse_settings_text(config, environ={})
    assert source_url(settings, "sse:bravo") == (
        "https://wanderer.example:99999/api/maps/bravo-slug/events/stream"
    )
    assert target_names(settings)["webhook:222222222222222222"] == (
        "alpha/rally",
        "https://discord.com:70000/api/webhooks/222222222222222222/***",
    )
    assert masked_url("http://[::1]:8080/x?key=abc") == "http://[::1]:8080/x"


def test_the_log_ring_finds_the_last_lines_about_something() -> None:
    ring = LogRing(size=50)
    for n in range(12):
        record = logging.LogRecord(
            "wanderer_console.x", logging.WARNING, "", 0, "line %d", (n,), None
        )
        record.ctx = {"target": "webhook:1" if n % 2 else "webhook:2"}
        ring.emit(record)
    found = ring.matching("target=webhook:1", limit=3)
    assert [line.text for line in found] == [
        "line 7 (target=webhook:1)",
        "line 9 (target=webhook:1)",
        "line 11 (target=webhook:1)",
    ]


async def test_the_engines_snapshot_names_targets_and_sources_without_secrets(
    runtime: Runtime, sim: Simulator
) -> None:
    snap = runtime.console.snapshot_now()
    data: dict[str, Any] = {"delivery": {"targets": {sim.webhook_target("primary"): {}}}}
    runtime.console._explain(data, runtime.settings)  # a target shows once it has notifications
    primary = EngineSnapshot.model_validate(data).delivery.targets[sim.webhook_target("primary")]
    assert primary.label == f"{sim.map_slug}/primary"
    assert primary.url == masked_url(sim.webhook_url("primary"))
    assert primary.url.endswith("/***")
    by_name = {c.name: c for c in snap.connections}
    assert by_name[f"sse:{sim.map_slug}"].url == (
        f"{sim.map_url}/api/maps/{sim.map_slug}/events/stream"
    )
    assert by_name["killstream:systems"].url == sim.killstream_url
    text = snap.model_dump_json() + primary.model_dump_json()
    for secret in (sim.map_api_key, sim.bot_token, sim.webhook_url("primary").rsplit("/", 1)[1]):
        assert secret not in text


async def test_the_snapshot_carries_the_last_lines_about_a_target_and_a_breaker(
    runtime: Runtime, sim: Simulator
) -> None:
    backend = runtime.console
    backend.install_log_ring()
    try:
        for n in range(3):
            logging.getLogger("wanderer_console.http.breaker").warning(
                "http circuit breaker %s -> %s",
                "closed" if n % 2 == 0 else "open",
                "open" if n % 2 == 0 else "half_open",
                extra={"ctx": {"host": "esi.example", "reason": f"{n + 5} failures, last: x, y"}},
            )
        logging.getLogger("wanderer_console.delivery.outcomes").warning(
            "discord refused a target",
            extra={"ctx": {"target": sim.webhook_target("rally"), "status": 404}},
        )
    finally:
        backend.remove_log_ring()
    data: dict[str, Any] = {
        "connections": [],
        "delivery": {"targets": {sim.webhook_target("rally"): {"pending": 2}}},
        "breakers": {
            "esi:esi.example": {"state": "open", "failures": 7},
            "esi:esi.example.org": {"state": "closed"},
        },
    }
    backend._explain(data, runtime.settings)
    snap = EngineSnapshot.model_validate(data)
    rally = snap.delivery.targets[sim.webhook_target("rally")]
    assert rally.label == f"{sim.map_slug}/rally"
    assert [o.text for o in rally.recent] == [
        f"warning: discord refused a target (target={sim.webhook_target('rally')}, status=404)"
    ]
    breaker = snap.breakers["esi:esi.example"]
    assert breaker.reason == "7 failures, last: x, y"
    assert [o.text.split(" (")[0] for o in breaker.recent] == [
        "warning: http circuit breaker closed -> open",
        "warning: http circuit breaker open -> half_open",
        "warning: http circuit breaker closed -> open",
    ]
    assert snap.breakers["esi:esi.example.org"].recent == ()
