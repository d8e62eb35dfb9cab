"""Start-up suppression mutes history only: decided by the event's own time against the resume
point (the previous run's last sight of the stream), never by the time it arrives."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from wanderer_console.config.model import Settings
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.map_events import MapEnvelope, parse_payload
from wanderer_console.domain.tracking import TrackedSystem, TrackingIndex
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.startup import (
    SEEN_CURSOR,
    StartupWindow,
    decode_seen,
    encode_seen,
    ulid_seconds,
)
from wanderer_console.sim.ulid import UlidGenerator
from wanderer_console.store.base import Store
from wanderer_console.telemetry.metrics import Metrics

START = datetime(2026, 1, 10, 18, 30, 0, 400_000, tzinfo=UTC).timestamp()
WH = 31002238


def _settings() -> Settings:
    return Settings.model_validate(
        {
            "esi": {"enabled": False},
            "maps": {
                "home": {
                    "url": "http://127.0.0.1:1",
                    "api_key": "k",
                    "discord": {"webhook_url": "https://discord.com/api/webhooks/1/t"},
                }
            },
        }
    )


def _engine(store: Store, clock: list[float]) -> Engine:
    index = TrackingIndex()
    index.replace("home", [TrackedSystem(WH, "J154624")], [])
    return Engine(_settings(), store, index, Metrics(), clock=lambda: clock[0])


def _kill(at: float, killmail_id: int = 1) -> Killmail:
    return Killmail.from_wire(
        {
            "killmail_id": killmail_id,
            "kill_time": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "system_id": WH,
            "victim": {"ship_type_id": 587, "damage_taken": 10},
            "attackers": [{"damage_done": 10, "final_blow": True}],
        }
    )


def _ulid_at(at: float) -> str:
    return UlidGenerator(clock=lambda: int(at * 1000)).new()


def test_first_run_mutes_what_is_older_than_the_start_and_notifies_what_follows(
    store: Store,
) -> None:
    clock = [START]
    engine = _engine(store, clock)
    clock[0] = START + 5  # decided 5 s after the start, inside the window
    assert engine.suppressed()
    assert engine.kill_notifications(_kill(START + 3))  # after the start: news
    # Kill times are whole seconds: the start's own second is not older than the start.
    assert engine.kill_notifications(_kill(START))
    assert not engine.kill_notifications(_kill(START - 2))  # history (a preload)
    clock[0] = START + 31
    assert engine.kill_notifications(_kill(START - 2))  # past the window: only max age applies


def test_after_a_restart_kills_since_the_last_sight_of_the_stream_are_news(
    store: Store,
) -> None:
    seen = START - 1800  # the previous run last saw the stream half an hour ago
    store.set_cursor(SEEN_CURSOR, encode_seen(seen))
    engine = _engine(store, [START])
    assert engine.startup.kill_seen == pytest.approx(seen)
    overlap = engine.settings.killstream.backfill_overlap_seconds
    assert engine.suppressed()
    assert engine.kill_notifications(_kill(seen + 600))  # during the downtime
    assert engine.kill_notifications(_kill(seen - overlap + 5))  # late-published, in the overlap
    assert not engine.kill_notifications(_kill(seen - overlap - 60))  # history
    assert not engine.kill_notifications(_kill(START - 7200))  # refused (too old anyway)


async def test_map_events_are_news_after_the_maps_cursor_and_history_before_it(
    store: Store,
) -> None:
    cursor_at = START - 900
    store.set_cursor("sse:home", _ulid_at(cursor_at))
    engine = _engine(store, [START + 1])

    async def added(at: float, system_id: int) -> list[Any]:
        envelope = MapEnvelope.model_validate(
            {
                "id": _ulid_at(at),
                "type": "add_system",
                "payload": {"solar_system_id": system_id, "name": f"J{system_id}"},
            }
        )
        return await engine.map_notifications("home", envelope, parse_payload(envelope))

    assert engine.suppressed()
    assert await added(cursor_at + 60, 31000001)  # added during the downtime: news
    assert await added(START + 0.5, 31000002)  # after the start: news
    assert not await added(cursor_at - 60, 31000003)  # before the cursor: history


def test_the_window_rule_and_the_watermark_codec() -> None:
    window = StartupWindow(START, kill_seen=START - 10, map_cursors={"home": START - 50})
    # The resume point is never later than the start, and reaches back by the overlap.
    assert window.kill_resume_point(300) == START - 310
    assert window.kill_resume_point(0) == START - 10
    assert StartupWindow(START, kill_seen=START + 99).kill_resume_point(0) == int(START)
    assert window.kill_is_history(None, 300)  # no time: history
    assert window.map_event_is_history("home", START - 51)
    assert not window.map_event_is_history("home", START - 49)
    assert window.map_event_is_history("other", START - 1)  # no cursor: the start
    assert window.map_event_is_history("home", None)
    assert decode_seen(encode_seen(START)) == pytest.approx(START)
    assert encode_seen(START) < encode_seen(START + 1) < encode_seen(START + 10_000_000)
    assert decode_seen(None) is None
    assert decode_seen("nonsense") is None
    assert ulid_seconds(_ulid_at(START)) == pytest.approx(START, abs=0.001)
    assert ulid_seconds("not-a-ulid") is None
