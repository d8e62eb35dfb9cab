"""The ``peer`` benchmark's sink: Discord webhook posts and Alertmanager webhook posts, events and
calls counted apart, repeats counted, 503s on demand, and going down and up on one port."""

from __future__ import annotations

import httpx
import pytest

from wanderer_console.bench.peer_sink import AM_PATH, PeerSink, SinkServer, discord_webhook_path

WEBHOOK = discord_webhook_path("1200000000000000001", "peer")


def _message(*titles: str) -> dict[str, object]:
    return {"username": "Wanderer", "embeds": [{"title": t, "color": 1} for t in titles]}


def _alerts(*ids: str) -> dict[str, object]:
    return {
        "version": "4",
        "status": "firing",
        "receiver": "sink",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "peer", "event_id": i}} for i in ids
        ],
    }


async def test_a_discord_post_answers_the_message_and_counts_each_embed_as_an_event() -> None:
    sink = PeerSink()
    transport = httpx.ASGITransport(app=sink.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sink") as client:
        answer = await client.post(WEBHOOK, params={"wait": "true"}, json=_message("a", "b"))
        quiet = await client.post(WEBHOOK, json=_message("c"))
    assert answer.status_code == 200
    message = answer.json()
    assert message["webhook_id"] == "1200000000000000001"
    assert message["channel_id"]
    assert int(message["id"]) > 0
    assert [e["title"] for e in message["embeds"]] == ["a", "b"]
    assert quiet.status_code == 204
    assert sink.calls == 2
    assert sink.events == 3
    assert set(sink.arrivals) == {"a", "b", "c"}
    assert sink.doubled() == 0


async def test_an_alertmanager_post_counts_each_alert_and_repeats_are_doubles() -> None:
    sink = PeerSink()
    transport = httpx.ASGITransport(app=sink.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sink") as client:
        first = await client.post(AM_PATH, json=_alerts("x", "y"))
        again = await client.post(AM_PATH, json=_alerts("x"))
        bad = await client.post(AM_PATH, content=b"not json")
    assert (first.status_code, again.status_code, bad.status_code) == (200, 200, 400)
    assert sink.calls == 2
    assert sink.events == 3
    assert sink.counts == {"x": 2, "y": 1}
    assert sink.doubled() == 1
    assert sink.doubled({"y"}) == 0
    assert sink.missing({"x", "y", "z"}) == 1
    assert sink.bad == 1
    first_x = sink.arrivals["x"]
    assert first_x <= sink.arrivals["y"]  # the first arrival is kept


async def test_fail_next_answers_503_without_recording_and_remembers_the_last() -> None:
    sink = PeerSink()
    sink.fail_next(2)
    transport = httpx.ASGITransport(app=sink.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sink") as client:
        statuses = [
            (await client.post(WEBHOOK, params={"wait": "true"}, json=_message("a"))).status_code,
            (await client.post(AM_PATH, json=_alerts("b"))).status_code,
            (await client.post(AM_PATH, json=_alerts("b"))).status_code,
        ]
    assert statuses == [503, 503, 200]
    assert sink.refused == 2
    assert sink.last_refused_at is not None
    assert sink.arrivals.keys() == {"b"}
    sink.fail_next(5)
    sink.clear_faults()
    sink.reset()
    assert (sink.calls, sink.events, sink.refused, sink.last_refused_at) == (0, 0, 0, None)


@pytest.mark.slow
async def test_the_server_goes_down_and_comes_back_on_the_same_port() -> None:
    sink = PeerSink()
    server = SinkServer(sink)
    async with server, httpx.AsyncClient(timeout=5.0) as client:
        url = server.url
        ok = await client.post(f"{url}{AM_PATH}", json=_alerts("before"))
        assert ok.status_code == 200
        await server.down()
        assert not server.is_up
        with pytest.raises(httpx.ConnectError):
            await client.post(f"{url}{AM_PATH}", json=_alerts("while"))
        await server.up()
        assert server.url == url
        back = await client.post(f"{url}{AM_PATH}", json=_alerts("after"))
        assert back.status_code == 200
    assert set(sink.arrivals) == {"before", "after"}
