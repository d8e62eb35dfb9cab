"""Hosted / API multi-map mode (PARITY.md §3.11): the maps come from the map server's
notifier-config endpoint and follow it while the engine runs.

One fake hosted Wanderer (:class:`~wanderer_console.sim.map_host.FakeMapHost`) serves four maps
and the notifier config, one fake killstream and one fake Discord (bot channels) take the rest.
The engine is configured only with the hosted section (the notifier's ``PLUGIN_NOTIFIER_API_KEY``,
``MAP_URL``, ``MAP_API_KEY``). Between two refreshes the config gains a map (with its own bot
token), changes a map's channel and loses a map: after the next refresh every kill goes where
the new config says, the removed map's kills go nowhere, and the untouched map loses nothing and
keeps its stream (one connect).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.hosted_services import HostedServices, hosted_services
from tests.support import wait_for
from tests.ui.fakes import first_frame, record_toasts, settle
from wanderer_console.config.loader import parse_settings_text
from wanderer_console.config.routing import OPS_TENANT
from wanderer_console.console_api import FLAG_NAMES
from wanderer_console.control.server import SOCKET_NAME
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.runtime import Runtime
from wanderer_console.sim.discord import webhook_url
from wanderer_console.ui.app import build_app
from wanderer_console.ui.screens.toggles import TogglesScreen

PLUGIN_KEY = "sim-plugin-key-0123456789"
MAP_KEY = "sim-hosted-map-key"
GLOBAL_TOKEN = "sim-global-bot-token"
D_TOKEN = "sim-map-d-own-bot-token"
REFRESH = 1.0
"""``hosted.refresh_seconds`` of the engine under test."""
CHANNELS = {
    "a": "1400000000000000001",
    "b": "1400000000000000002",
    "b2": "1400000000000000022",
    "c": "1400000000000000003",
    "d": "1400000000000000004",
}


class Hosted(HostedServices):
    def kills_in(self, channel: str) -> list[int]:
        return [
            notice.killmail_id
            for message in self.discord.messages_for(f"channel:{CHANNELS[channel]}")
            for notice in message.notifications
            if notice.kind == "kill" and notice.killmail_id is not None
        ]

    async def push_kill(self, slug: str) -> int:
        kill = self.gen.make_killmail(system_id=self.systems[slug][0])
        await self.killstream.push_kill(kill)
        return int(kill["killmail_id"])


@pytest.fixture
async def hosted() -> AsyncIterator[Hosted]:
    async with hosted_services(
        seed=3,
        served="abcd",
        listed="abc",
        channels=CHANNELS,
        map_key=MAP_KEY,
        plugin_key=PLUGIN_KEY,
    ) as services:
        yield Hosted(**vars(services))


def _settings_text(h: Hosted) -> str:
    return f"""
[console]
startup_suppression_seconds = 0
[discord]
api_url = "{h.discord_url}/api/v10"
bot_token = "{GLOBAL_TOKEN}"
[esi]
enabled = false
[killstream]
websocket_url = "{h.killstream.url}"
[hosted]
api_key = "{PLUGIN_KEY}"
url = "{h.host_url}/some-map"
map_api_key = "{MAP_KEY}"
refresh_seconds = {REFRESH}
"""


async def test_maps_follow_the_notifier_config_between_refreshes(
    hosted: Hosted, tmp_path: Path
) -> None:
    h = hosted
    settings, _ = parse_settings_text(_settings_text(h))
    runtime = Runtime(settings, data_dir=tmp_path / "data")
    await runtime.start()
    try:
        assert runtime.hosted is not None

        def following(slugs: str) -> bool:
            tenants = set(runtime.index.tenants())
            return set(slugs) <= tenants and all(
                runtime.kills.following(runtime.index.map(s).systems) for s in slugs
            )

        await wait_for(lambda: following("abc"), 30, "maps a, b, c loaded and followed")
        assert sorted(runtime.settings.maps) == ["a", "b", "c"]
        ka1, kb1, kc1 = [await h.push_kill(s) for s in "abc"]
        await wait_for(
            lambda: ka1 in h.kills_in("a") and kb1 in h.kills_in("b") and kc1 in h.kills_in("c"),
            20,
            "each map's first kill in its own channel",
        )

        # The change: d added (its own token), b's channel changed, c removed; a untouched.
        refreshes_at_change = runtime.hosted.refreshes
        h.host.set_notifier_config("d", channels={"primary": CHANNELS["d"]}, bot_token=D_TOKEN)
        h.host.set_notifier_config("b", channels={"primary": CHANNELS["b2"]})
        del h.host.notifier_config["c"]
        changed_at = time.monotonic()
        ka2 = await h.push_kill("a")  # during the change: a's kills keep flowing

        await wait_for(
            lambda: sorted(runtime.settings.maps) == ["a", "b", "d"] and following("abd"),
            10 * REFRESH + 20,
            "the refresh applied: d followed, c gone",
        )
        applied = runtime.hosted.last
        assert applied is not None
        assert applied.ok
        assert applied.diff is not None
        assert applied.diff.as_json() == {
            "added": ["d"],
            "removed": ["c"],
            "changed": ["b"],
            "restarted": [],
        }
        # The next refresh (or the one under way at the change) is the one that applied it.
        assert runtime.hosted.refreshes <= refreshes_at_change + 2
        assert "c" not in runtime.index.tenants()

        ka3, kb2, kc2, kd1 = [await h.push_kill(s) for s in "abcd"]
        await wait_for(
            lambda: ka3 in h.kills_in("a") and kb2 in h.kills_in("b2") and kd1 in h.kills_in("d"),
            20,
            "kills after the refresh where the new config says",
        )
        followed_in = time.monotonic() - changed_at
        await runtime.drain(10.0)
        # The untouched map: every kill once, and its stream never reconnected.
        assert sorted(h.kills_in("a")) == sorted([ka1, ka2, ka3])
        assert len(h.host.maps["a"].connect_log) == 1
        # b's kill went to its new channel only; c's kill after its removal went nowhere.
        assert kb2 not in h.kills_in("b")
        assert h.kills_in("c") == [kc1]
        assert kc2 not in [k for channel in CHANNELS for k in h.kills_in(channel)]
        # d posts with its own bot token; the others with the global one.
        (d_message,) = h.discord.messages_for(f"channel:{CHANNELS['d']}")
        assert d_message.headers.get("authorization") == f"Bot {D_TOKEN}"
        (b_message, *_) = h.discord.messages_for(f"channel:{CHANNELS['b2']}")
        assert b_message.headers.get("authorization") == f"Bot {GLOBAL_TOKEN}"
        # Nothing restarted, and the snapshot says what happened (no secret in it).
        snapshot = runtime.snapshot()["hosted"]
        assert snapshot["maps"] == ["a", "b", "d"]
        assert PLUGIN_KEY not in str(snapshot)
        print(f"hosted: config change followed in {followed_in:.2f}s (refresh {REFRESH}s)")
    finally:
        await runtime.stop()


def _systems_in_a(h: Hosted) -> int:
    """New-system notifications posted for map ``a``."""
    messages = h.discord.messages_for(f"channel:{CHANNELS['a']}")
    return sum(1 for m in messages for n in m.notifications if n.kind == "system")


async def _a_with_a_kill_queued(h: Hosted, runtime: Runtime) -> int:
    """Map ``a`` loaded, followed and streamed, one system added (so its stream has a cursor)
    and notified; then Discord down and a kill in ``a`` queued: that kill's id."""
    await wait_for(
        lambda: (
            "a" in runtime.index.tenants()
            and runtime.kills.following(runtime.index.map("a").systems)
            and h.host.maps["a"].open_streams == 1
        ),
        30,
        "map a loaded, followed and streamed",
    )
    h.host.maps["a"].add_system(h.gen.new_system().id)
    await wait_for(lambda: _systems_in_a(h) == 1, 20, "a's first system notified")
    h.discord.outage = (500, {"message": "down"}, {})
    kill = await h.push_kill("a")
    await wait_for(lambda: runtime.store.outbox_counts().get("pending") == 1, 20, "a's kill queued")
    return kill


async def test_a_failed_refresh_keeps_the_maps_and_the_console_can_refresh(
    hosted: Hosted, tmp_path: Path
) -> None:
    """The server refusing the key changes nothing (the maps keep running); the console's
    refresh operation pulls at once and says what changed."""
    h = hosted
    text = _settings_text(h).replace(f"refresh_seconds = {REFRESH}", "refresh_seconds = 3600")
    settings, _ = parse_settings_text(text)
    runtime = Runtime(settings, data_dir=tmp_path / "data")
    await runtime.start()
    try:
        await wait_for(lambda: sorted(runtime.settings.maps) == ["a", "b", "c"], 20, "loaded")
        h.host.plugin_api_key = "rotated"
        result = await runtime.console.refresh_hosted(actor="test")
        assert not result.ok
        assert "refused the key (401)" in result.message
        assert PLUGIN_KEY not in result.message
        assert sorted(runtime.settings.maps) == ["a", "b", "c"]

        h.host.plugin_api_key = PLUGIN_KEY
        del h.host.notifier_config["a"]
        result = await runtime.console.refresh_hosted(actor="test")
        assert result.ok, result.message
        assert result.count == 2
        assert "removed a" in result.message
        assert sorted(runtime.settings.maps) == ["b", "c"]
        await wait_for(lambda: "a" not in runtime.index.tenants(), 10, "a dropped")
        # The notifier's /api/status calls API mode "multi_map", whatever the number of maps.
        from wanderer_console.server.notifier_api import extended_status

        del h.host.notifier_config["b"]
        assert (await runtime.console.refresh_hosted(actor="test")).count == 1
        status = extended_status(runtime.snapshot(), maps=list(runtime.settings.maps), now=0.0)
        assert status["sse"]["mode"] == "multi_map"
        assert status["sse"]["map_count"] == 1
    finally:
        await runtime.stop()


async def test_the_console_reads_a_hosted_engine_and_its_last_refresh(
    hosted: Hosted, tmp_path: Path
) -> None:
    """The console's snapshot (the TUI in-process, ``/v1/snapshot`` and the frames attached)
    carries the hosted section: the maps pulled and how the last refresh went."""
    h = hosted
    text = _settings_text(h).replace(f"refresh_seconds = {REFRESH}", "refresh_seconds = 3600")
    settings, _ = parse_settings_text(text)
    runtime = Runtime(settings, data_dir=tmp_path / "data")
    await runtime.start()
    try:
        await wait_for(lambda: sorted(runtime.settings.maps) == ["a", "b", "c"], 20, "loaded")
        snap = await runtime.console.snapshot()
        assert snap.hosted is not None
        assert snap.hosted.maps == ("a", "b", "c")
        h.host.plugin_api_key = "rotated"
        assert not (await runtime.console.refresh_hosted(actor="test")).ok
        snap = await runtime.console.snapshot()
        assert snap.hosted is not None
        assert snap.hosted.last is not None
        assert "refused the key (401)" in str(snap.hosted.last["error"])
        assert PLUGIN_KEY not in snap.model_dump_json()
    finally:
        await runtime.stop()


def test_a_notifier_api_mode_env_configures_hosted_mode(tmp_path: Path) -> None:
    """The notifier's API-mode ``.env`` (no MAP_NAME) is a valid configuration."""
    from wanderer_console.config.loader import load_settings

    env = {
        "HOME": str(tmp_path),
        "PLUGIN_NOTIFIER_API_KEY": PLUGIN_KEY,
        "MAP_URL": "https://wanderer.example.com",
        "MAP_API_KEY": MAP_KEY,
        "DISCORD_CHANNEL_ID": "1400000000000000009",
    }
    settings = load_settings(None, environ=env).settings
    assert settings.hosted.enabled
    assert settings.maps == {}
    assert settings.hosted.url == "https://wanderer.example.com"
    assert settings.hosted.channel_id == "1400000000000000009"
    assert PLUGIN_KEY not in str(settings.redacted())
    with pytest.raises(Exception, match="MAP_API_KEY"):
        load_settings(None, environ={k: v for k, v in env.items() if k != "MAP_API_KEY"})


def test_the_hosted_keys_are_masked_in_the_config_history() -> None:
    from wanderer_console.config.redact import redact_config

    text = f'[hosted]\napi_key = "{PLUGIN_KEY}"\nurl = "http://127.0.0.1:9"\n'
    text += f'map_api_key = "{MAP_KEY}"\n'
    masked = redact_config(text)
    assert PLUGIN_KEY not in masked
    assert MAP_KEY not in masked
    assert "http://127.0.0.1:9" in masked


async def test_config_check_asks_the_notifier_config_endpoint(
    hosted: Hosted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In hosted mode ``config check`` asks the map server for the maps: listed maps pass, a
    refused key fails naming the variable (never the key)."""
    import asyncio

    from wanderer_console.cli import main

    env = {
        "HOME": str(tmp_path),
        "PLUGIN_NOTIFIER_API_KEY": PLUGIN_KEY,
        "MAP_URL": f"{hosted.host_url}/any-map",
        "MAP_API_KEY": MAP_KEY,
        "DISCORD_CHANNEL_ID": CHANNELS["a"],
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        assert await asyncio.to_thread(main, ["config", "check"]) == 0
        assert "hosted: 3 map(s) listed by the map server" in capsys.readouterr().out
        hosted.host.plugin_api_key = "rotated"
        assert await asyncio.to_thread(main, ["config", "check"]) == 1
        err = capsys.readouterr().err
        assert "refused the key (401): check PLUGIN_NOTIFIER_API_KEY" in err
        assert PLUGIN_KEY not in err


async def test_a_file_reload_keeps_the_hosted_maps_and_flags_no_restart(
    hosted: Hosted, tmp_path: Path
) -> None:
    """Editing the config file of an engine in hosted mode applies the edit and leaves the
    hosted maps running: they are not "removed" (no restart flagged, no stream reconnected)."""
    h = hosted
    path = tmp_path / "config.toml"
    text = _settings_text(h).replace(f"refresh_seconds = {REFRESH}", "refresh_seconds = 3600")
    path.write_text(text)
    settings, _ = parse_settings_text(text)
    runtime = Runtime(settings, data_dir=tmp_path / "data", config_path=path)
    await runtime.start()
    try:
        await wait_for(
            lambda: set("abc") <= set(runtime.index.tenants()), 20, "the hosted maps loaded"
        )
        reloader = runtime.reloader
        assert reloader is not None
        await wait_for(lambda: reloader._text is not None, 10, "the watcher's baseline")
        # A map is in the index once loaded, a moment before its stream connects: wait for the
        # connects, so that a count above one after the reload can only be a reconnect.
        await wait_for(
            lambda: all(len(h.host.maps[s].connect_log) == 1 for s in "abc"),
            20,
            "the hosted maps' streams connected",
        )
        sources = {s: runtime.maps.sources[s] for s in "abc"}
        path.write_text(text.replace("[console]\n", "[console]\nretention_days = 7\n"))
        result = reloader.reload(source="test")
        assert result.status == "applied"
        assert result.hot == ["console.retention_days"]
        assert result.restart_required == []
        assert reloader.pending_restart == []
        assert runtime.settings.console.retention_days == 7
        assert sorted(runtime.settings.maps) == ["a", "b", "c"]
        # The same stream sources run on (a restarted map gets a new one at once)...
        assert all(runtime.maps.sources[s] is sources[s] for s in "abc")
        # ...and none of them reconnected.
        assert all(len(h.host.maps[s].connect_log) == 1 for s in "abc")
    finally:
        await runtime.stop()


async def test_an_answer_with_no_usable_map_keeps_the_running_maps(
    hosted: Hosted, tmp_path: Path
) -> None:
    """A map server that answers every entry without ``map_id`` (a changed schema) or an empty
    list (a server fault mid-deploy) is not read as "no maps": the running maps keep running,
    the refresh is an error that says why, and a usable answer applies again."""
    h = hosted
    text = _settings_text(h).replace(f"refresh_seconds = {REFRESH}", "refresh_seconds = 3600")
    settings, _ = parse_settings_text(text)
    runtime = Runtime(settings, data_dir=tmp_path / "data")
    await runtime.start()
    try:
        assert runtime.hosted is not None
        await wait_for(lambda: set("abc") <= set(runtime.index.tenants()), 20, "loaded")
        for slug in "abc":
            h.host.notifier_config[slug]["map_id"] = None
        result = await runtime.console.refresh_hosted(actor="test")
        assert not result.ok
        assert "no usable map" in result.message
        assert "entry 0 (a): missing map_id" in result.message
        assert sorted(runtime.settings.maps) == ["a", "b", "c"]
        assert set("abc") <= set(runtime.index.tenants())

        h.host.notifier_config.clear()
        result = await runtime.console.refresh_hosted(actor="test")
        assert not result.ok
        assert "listed no map" in result.message
        assert sorted(runtime.settings.maps) == ["a", "b", "c"]
        assert set("abc") <= set(runtime.index.tenants())
        last = runtime.snapshot()["hosted"]["last"]
        assert last["ok"] is False
        assert last["maps"] == ["a", "b", "c"]

        h.host.set_notifier_config("b", channels={"primary": CHANNELS["b"]})
        result = await runtime.console.refresh_hosted(actor="test")
        assert result.ok, result.message
        assert sorted(runtime.settings.maps) == ["b"]
    finally:
        await runtime.stop()


async def test_a_running_map_whose_entry_turns_unusable_keeps_running(
    hosted: Hosted, tmp_path: Path
) -> None:
    """One entry of a running map comes back malformed (no ``map_id``, as mid-deploy) while
    the others are fine: that map is not read as removed. It keeps running on what it had,
    its stream untouched, and the refresh names the problem; a map no longer listed at all
    is still stopped."""
    h = hosted
    text = _settings_text(h).replace(f"refresh_seconds = {REFRESH}", "refresh_seconds = 3600")
    settings, _ = parse_settings_text(text)
    runtime = Runtime(settings, data_dir=tmp_path / "data")
    await runtime.start()
    try:
        assert runtime.hosted is not None
        await wait_for(lambda: set("abc") <= set(runtime.index.tenants()), 20, "loaded")
        await wait_for(lambda: h.host.maps["b"].open_streams == 1, 20, "b streaming")
        h.host.notifier_config["b"]["map_id"] = None
        del h.host.notifier_config["c"]
        result = await runtime.console.refresh_hosted(actor="test")
        assert result.ok, result.message
        assert sorted(runtime.settings.maps) == ["a", "b"]
        assert "b" in runtime.index.tenants()
        last = runtime.snapshot()["hosted"]["last"]
        assert any(p.startswith("entry 1 (b): missing map_id") for p in last["problems"])
        assert last["maps"] == ["a", "b"]
        assert h.host.maps["b"].open_streams == 1
        assert len(h.host.maps["b"].connect_log) == 1
    finally:
        await runtime.stop()


async def test_a_console_attached_to_a_hosted_engine_reads_it_and_is_told_where_map_flags_live(
    hosted: Hosted, tmp_path: Path
) -> None:
    """The console attached over the control socket to a hosted engine with a config file: its
    frames carry the hosted section, every screen opens on it, and flipping a hosted map's
    notification type is refused saying where that map's switches are (the map server's
    features), not "applied, but not saved: maps.a.url: Field required" with a [maps.a] the
    file cannot hold, applied in memory until a refresh or restart quietly undid it."""
    h = hosted
    text = _settings_text(h).replace(f"refresh_seconds = {REFRESH}", "refresh_seconds = 3600")
    config = tmp_path / "config.toml"
    config.write_text(text)
    settings, _ = parse_settings_text(text, file=str(config))
    runtime = Runtime(settings, data_dir=tmp_path / "data", config_path=config)
    await runtime.start()
    remote = RemoteBackend(socket_path=tmp_path / "data" / SOCKET_NAME)
    try:
        await wait_for(lambda: sorted(runtime.settings.maps) == ["a", "b", "c"], 20, "loaded")
        await remote.connect()
        app = build_app(remote, actor="tui:tester@laptop")
        async with app.run_test(size=(120, 40)) as pilot:
            await first_frame(pilot)
            latest = app.state.latest
            assert latest is not None
            assert app.state.link.state == "live"
            assert latest.hosted is not None
            assert latest.hosted.maps == ("a", "b", "c")
            assert PLUGIN_KEY not in latest.model_dump_json()
            assert MAP_KEY not in latest.model_dump_json()
            for key in ("a", "g", "e", "s", "k", "question_mark", "escape", "c", "d"):
                await pilot.press(key)
                await pilot.pause()
            await app.run_action("toggles")  # the config pane's editor takes the keys
            await pilot.pause()
            assert isinstance(app.screen, TogglesScreen)
            toasts = record_toasts(app)
            await pilot.press("down", "right", "enter")  # a switch of map a
            await settle(pilot)
            (said,) = [message for message, _ in toasts if "map a" in message]
            assert "hosted" in said
            assert "map server" in said
            assert "Field required" not in said
        flags = runtime.settings.maps["a"].notifications
        assert all(getattr(flags, name) for name in FLAG_NAMES)
        assert config.read_text() == text
    finally:
        await remote.aclose()
        await runtime.stop()


async def test_a_hosted_maps_queued_notifications_wait_for_the_first_refresh_after_a_restart(
    hosted: Hosted, tmp_path: Path
) -> None:
    """An engine restarted with notifications of a hosted map still queued (a 429 at the stop,
    a crash) does not know its hosted maps until its first refresh answers: until then those
    notifications are not "no longer configured". They wait, pending, through a refresh that
    fails (the map server down at the start), and go out once a refresh lists their map; the
    operations webhook's own notifications go out meanwhile."""
    h = hosted
    ops = webhook_url(h.discord_url, 7001, "ops-token")
    text = _settings_text(h).replace(f"refresh_seconds = {REFRESH}", "refresh_seconds = 3600")
    text += f'[alerts]\ndiscord_webhook_url = "{ops}"\n'
    settings, _ = parse_settings_text(text)
    h.host.plugin_api_key = "rotated"  # the first refresh is refused
    runtime = Runtime(settings, data_dir=tmp_path / "data")
    # What the previous run left queued: a kill of hosted map a, an operations message.
    body = {"embeds": [{"title": "queued before the restart", "description": "x"}]}
    channel_a = Target(TargetKind.BOT_CHANNEL, CHANNELS["a"], "a")
    ops_target = Target(TargetKind.WEBHOOK, ops, OPS_TENANT)
    runtime.store.enqueue(
        [
            Notification("a", NotificationType.KILL, "n:a", channel_a, body),
            Notification(OPS_TENANT, NotificationType.KILL, "n:ops", ops_target, body),
        ]
    )
    await runtime.start()
    try:
        assert runtime.hosted is not None
        hosted_maps = runtime.hosted
        await wait_for(lambda: hosted_maps.refreshes >= 1, 20, "the first refresh")
        assert hosted_maps.last is not None
        assert not hosted_maps.last.ok
        # The look that sent the operations message read every due row of a known map.
        await wait_for(
            lambda: runtime.store.outbox_counts().get("sent") == 1, 20, "the ops message sent"
        )
        assert runtime.store.outbox_counts() == {"pending": 1, "sent": 1}
        assert h.discord.messages_for(f"channel:{CHANNELS['a']}") == []

        h.host.plugin_api_key = PLUGIN_KEY
        result = await runtime.console.refresh_hosted(actor="test")
        assert result.ok, result.message
        await wait_for(
            lambda: h.discord.messages_for(f"channel:{CHANNELS['a']}"), 20, "map a's message"
        )
        await wait_for(lambda: runtime.store.outbox_counts() == {"sent": 2}, 10, "both sent")
    finally:
        await runtime.stop()


async def test_a_map_server_down_at_the_start_is_asked_again_soon_not_at_the_next_refresh(
    hosted: Hosted, tmp_path: Path
) -> None:
    """The engine starts while the map server is down (502 from its proxy): it knows no hosted
    map yet, so it runs none, and every kill in their systems is missed. It asks again after a
    short backoff, not a whole ``refresh_seconds`` (an hour here) later, and serves the maps as
    soon as the server answers."""
    h = hosted
    text = _settings_text(h).replace(f"refresh_seconds = {REFRESH}", "refresh_seconds = 3600")
    settings, _ = parse_settings_text(text)
    h.host.notifier_config_status = 502
    runtime = Runtime(settings, data_dir=tmp_path / "data")
    await runtime.start()
    try:
        assert runtime.hosted is not None
        hosted_maps = runtime.hosted
        await wait_for(lambda: hosted_maps.refreshes >= 1, 20, "the first refresh")
        assert hosted_maps.last is not None
        assert hosted_maps.last.error is not None
        assert "answered 502" in hosted_maps.last.error
        h.host.notifier_config_status = None
        await wait_for(
            lambda: sorted(runtime.settings.maps) == ["a", "b", "c"],
            30,
            "the maps served once the map server answers, without a console refresh",
        )
        assert hosted_maps.last.source == "timer"
    finally:
        await runtime.stop()


async def test_a_reload_of_the_hosted_section_applies_to_the_hosted_maps_at_once(
    hosted: Hosted, tmp_path: Path
) -> None:
    """``hosted.channel_id`` (``DISCORD_CHANNEL_ID``: where a hosted map that names no channel
    posts) is applied live by a reload: the maps it feeds post there from then on, not after
    the next refresh (an hour here) while the reload said it was applied."""
    h = hosted
    h.host.set_notifier_config("a", channels={})  # a names no channel: hosted.channel_id
    path = tmp_path / "config.toml"
    text = _settings_text(h).replace(f"refresh_seconds = {REFRESH}", "refresh_seconds = 3600")
    text += f'channel_id = "{CHANNELS["d"]}"\n'
    path.write_text(text)
    settings, _ = parse_settings_text(text)
    runtime = Runtime(settings, data_dir=tmp_path / "data", config_path=path)
    await runtime.start()
    try:
        await wait_for(lambda: sorted(runtime.settings.maps) == ["a", "b", "c"], 20, "loaded")
        assert runtime.settings.maps["a"].discord.channel_id == CHANNELS["d"]
        reloader = runtime.reloader
        assert reloader is not None
        await wait_for(lambda: reloader._text is not None, 10, "the watcher's baseline")
        path.write_text(text.replace(CHANNELS["d"], CHANNELS["b2"]))
        result = reloader.reload(source="test")
        assert result.status == "applied"
        assert result.hot == ["hosted.channel_id"]
        await wait_for(
            lambda: runtime.settings.maps["a"].discord.channel_id == CHANNELS["b2"],
            20,
            "map a on the new hosted.channel_id",
        )
        assert runtime.settings.maps["b"].discord.channel_id == CHANNELS["b"]
        await wait_for(
            lambda: (
                "a" in runtime.index.tenants()
                and runtime.kills.following(runtime.index.map("a").systems)
            ),
            20,
            "map a loaded and followed",
        )
        kill = await h.push_kill("a")
        await wait_for(lambda: kill in h.kills_in("b2"), 20, "a's kill in the new channel")
    finally:
        await runtime.stop()


async def test_a_map_renamed_on_the_map_server_keeps_its_queue_and_its_stream_position(
    hosted: Hosted, tmp_path: Path
) -> None:
    """A map's owner changes its slug: the map server lists the same map (same ``map_id``)
    under the new slug, the old address is gone. The engine follows it as the same map, under
    the same key: its kill still queued (Discord down at the rename) is delivered once, not
    failed as "no longer configured", and a system added while the old address was gone and
    the new one not yet followed is notified once (the stream resumes from the map's cursor)."""
    h = hosted
    text = _settings_text(h).replace(f"refresh_seconds = {REFRESH}", "refresh_seconds = 3600")
    settings, _ = parse_settings_text(text)
    runtime = Runtime(settings, data_dir=tmp_path / "data")
    await runtime.start()

    try:
        kill = await _a_with_a_kill_queued(h, runtime)

        renamed = h.host.rename_map("a", "a-renamed")
        renamed.add_system(h.gen.new_system().id)  # the engine knows only the old slug yet
        result = await runtime.console.refresh_hosted(actor="test")
        assert result.ok, result.message
        assert sorted(runtime.settings.maps) == ["a", "b", "c"]
        assert runtime.settings.maps["a"].slug == "a-renamed"
        h.discord.outage = None

        await wait_for(
            lambda: kill in h.kills_in("a") and _systems_in_a(h) == 2,
            30,
            "the queued kill and the system added during the rename delivered",
        )
        await runtime.drain(10.0)
        assert h.kills_in("a") == [kill]
        assert _systems_in_a(h) == 2
        assert runtime.store.outbox_counts() == {"sent": 3}
        assert h.host.maps["a-renamed"].connect_log[-1]["last_event_id"] is not None
    finally:
        await runtime.stop()


async def test_a_map_renamed_while_the_engine_is_stopped_keeps_its_key_after_the_restart(
    hosted: Hosted, tmp_path: Path
) -> None:
    """The key a hosted map was given is kept in the store: an engine restarted after the map's
    slug changed (it never saw the new slug) still runs it under its key, so the kill queued
    before the stop is delivered once and the system added while it was down is notified from
    the map's cursor."""
    h = hosted
    text = _settings_text(h).replace(f"refresh_seconds = {REFRESH}", "refresh_seconds = 3600")
    settings, _ = parse_settings_text(text)

    runtime = Runtime(settings, data_dir=tmp_path / "data")
    await runtime.start()
    try:
        kill = await _a_with_a_kill_queued(h, runtime)
    finally:
        await runtime.stop()

    h.host.rename_map("a", "a-renamed").add_system(h.gen.new_system().id)
    h.discord.outage = None
    runtime = Runtime(settings, data_dir=tmp_path / "data")
    await runtime.start()
    try:
        await wait_for(
            lambda: kill in h.kills_in("a") and _systems_in_a(h) == 2,
            30,
            "the kill queued before the stop and the system added meanwhile delivered",
        )
        assert sorted(runtime.settings.maps) == ["a", "b", "c"]
        assert runtime.settings.maps["a"].slug == "a-renamed"
        await runtime.drain(10.0)
        assert h.kills_in("a") == [kill]
        assert _systems_in_a(h) == 2
        assert runtime.store.outbox_counts() == {"sent": 3}
    finally:
        await runtime.stop()
