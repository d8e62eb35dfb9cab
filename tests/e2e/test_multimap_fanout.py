"""Several maps on one engine (PARITY.md §1.3 fan-out, §10.4 names): a kill in a system two maps
track reaches both, each through its own filters, target and embed; a kill in one map's system
never reaches the other's channel; custom and temporary names follow ``system_metadata_changed``
into the kill title and stay while the system is on the map.

Two maps on one fake hosted Wanderer (:class:`~wanderer_console.sim.map_host.FakeMapHost`), each
posting to its own bot channel of one fake Discord; kills come from one fake killstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import wait_for
from wanderer_console.config.loader import parse_settings_text
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.runtime import Runtime
from wanderer_console.sim.discord import FakeDiscord
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.killstream import FakeKillstream
from wanderer_console.sim.map_host import FakeMapHost
from wanderer_console.sim.server import AppServer

CHANNELS = {"x": "1400000000000000011", "y": "1400000000000000012"}


@dataclass
class Two:
    gen: DataGenerator
    host: FakeMapHost
    discord: FakeDiscord
    killstream: FakeKillstream
    runtime: Runtime
    shared_wh: int
    """A wormhole both maps track."""
    shared_k: int
    """A k-space system both maps track (y is wormhole-only)."""
    only: dict[str, int]
    """A wormhole only that map tracks."""

    def titles(self, key: str) -> dict[int, str]:
        """Killmail id -> kill title, for every kill the map's channel received."""
        out: dict[int, str] = {}
        for message in self.discord.messages_for(f"channel:{CHANNELS[key]}"):
            for notice, embed in zip(
                message.notifications, message.body.get("embeds") or [], strict=False
            ):
                if notice.kind == "kill" and notice.killmail_id is not None:
                    out[notice.killmail_id] = str(embed.get("title"))
        return out

    async def kill(self, system: int) -> int:
        kill = self.gen.make_killmail(system_id=system)
        await self.killstream.push_kill(kill)
        return int(kill["killmail_id"])


@dataclass
class Engine:
    """A runtime on maps of one fake host, each posting to its bot channel of one fake Discord."""

    runtime: Runtime
    discord: FakeDiscord
    killstream: FakeKillstream


@asynccontextmanager
async def _engine(
    tmp_path: Path, host: FakeMapHost, maps: Sequence[str], extra: str = ""
) -> AsyncIterator[Engine]:
    """``host``'s ``maps`` on one engine (``extra``: more of its TOML), the servers started and
    everything stopped after."""
    discord = FakeDiscord()
    killstream = FakeKillstream()
    host_app = AppServer(host.app, on_stop=host.close)
    discord_app = AppServer(discord.app)
    await host_app.start()
    await discord_app.start()
    await killstream.start()
    text = f"""
[discord]
api_url = "{discord_app.url}/api/v10"
bot_token = "sim-bot-token"
[esi]
enabled = false
[killstream]
websocket_url = "{killstream.url}"
"""
    for key in maps:
        text += f"""
[maps.{key}]
url = "{host_app.url}"
api_key = "sim-key-{key}"
[maps.{key}.discord]
channel_id = "{CHANNELS[key]}"
"""
    settings, _ = parse_settings_text(text + extra)
    runtime = Runtime(settings, data_dir=tmp_path / "data")
    await runtime.start()
    try:
        yield Engine(runtime, discord, killstream)
    finally:
        await runtime.stop()
        await killstream.stop()
        await discord_app.stop()
        await host_app.stop()


@pytest.fixture
async def t(tmp_path: Path) -> AsyncIterator[Two]:
    gen = DataGenerator(5)
    systems = sorted(gen.systems.values(), key=lambda s: s.id)
    wormholes = [s.id for s in systems if s.is_wormhole]
    kspace = [s.id for s in systems if not s.is_wormhole]
    shared_wh, only_x, only_y = wormholes[:3]
    shared_k = kspace[0]
    host = FakeMapHost(gen)
    host.add_map("x", [shared_wh, shared_k, only_x], ())
    host.add_map("y", [shared_wh, shared_k, only_y], ())
    extra = """
[console]
startup_suppression_seconds = 0
[maps.y.filters]
wormhole_only = true
"""
    async with _engine(tmp_path, host, ("x", "y"), extra) as engine:
        yield Two(
            gen,
            host,
            engine.discord,
            engine.killstream,
            engine.runtime,
            shared_wh,
            shared_k,
            {"x": only_x, "y": only_y},
        )


async def _following(t: Two) -> None:
    """Both maps loaded, their systems followed on the killstream and their event streams open.

    A map loads before its stream opens, and a first stream has no cursor to ask the server's
    backfill from: an event published in between would reach the map's state, not this engine
    (the tests below publish right after this)."""
    rt = t.runtime

    def ready() -> bool:
        tenants = set(rt.index.tenants())
        return (
            {"x", "y"} <= tenants
            and all(rt.kills.following(rt.index.map(key).systems) for key in ("x", "y"))
            and all(
                (source := rt.maps.sources.get(key)) is not None
                and source.health.state is ConnectionState.CONNECTED
                for key in ("x", "y")
            )
        )

    await wait_for(ready, 30, "both maps loaded, followed and streaming")


async def test_a_kill_fans_out_to_every_map_tracking_its_system_and_no_further(t: Two) -> None:
    await _following(t)
    # Each map names the shared wormhole its own way (the title on its system-kill route).
    t.host.maps["x"].publish(
        "system_metadata_changed", {"solar_system_id": t.shared_wh, "name": "Home Hole"}
    )
    t.host.maps["y"].publish(
        "system_metadata_changed", {"solar_system_id": t.shared_wh, "temporary_name": "Y-Stage"}
    )
    await wait_for(
        lambda: (
            t.runtime.index.map("x").systems[t.shared_wh].display_name == "Home Hole"
            and t.runtime.index.map("y").systems[t.shared_wh].display_name == "Y-Stage"
        ),
        20,
        "the names applied",
    )
    shared = await t.kill(t.shared_wh)
    kspace = await t.kill(t.shared_k)
    only_x = await t.kill(t.only["x"])
    only_y = await t.kill(t.only["y"])
    await wait_for(
        lambda: (
            {shared, kspace, only_x} <= set(t.titles("x"))
            and {shared, only_y} <= set(t.titles("y"))
        ),
        20,
        "every kill in the channels of the maps that track it",
    )
    await t.runtime.drain(10.0)
    x, y = t.titles("x"), t.titles("y")
    # Fan-out: one message per map, each with the map's own embed.
    assert x[shared].endswith("destroyed in Home Hole")
    assert y[shared].endswith("destroyed in Y-Stage")
    # Each map's own filters: y is wormhole-only, so the shared k-space kill is x's alone.
    assert kspace not in y
    # Isolation: a kill in one map's system never reaches the other map's channel.
    assert only_x not in y
    assert only_y not in x
    assert sorted(x) == sorted([shared, kspace, only_x])
    assert sorted(y) == sorted([shared, only_y])


async def test_names_follow_metadata_changes_and_stay_while_the_system_is_on_the_map(
    t: Two,
) -> None:
    await _following(t)
    x = t.host.maps["x"]
    system = t.only["x"]

    def shown() -> str | None:
        return t.runtime.index.map("x").systems[system].display_name

    async def title_after(payload: dict[str, object], expected: str) -> str:
        x.publish("system_metadata_changed", {"solar_system_id": system, **payload})
        await wait_for(lambda: shown() == expected, 20, f"the map event applied ({expected})")
        kill = await t.kill(system)
        await wait_for(lambda: kill in t.titles("x"), 20, "the kill delivered")
        return t.titles("x")[kill]

    assert (await title_after({"name": "Chain End"}, "Chain End")).endswith("in Chain End")
    # A temporary name goes over the custom one; clearing it shows the custom one again.
    tmp = {"name": "Chain End", "temporary_name": "Tmp-1"}
    assert (await title_after(tmp, "Tmp-1")).endswith("destroyed in Tmp-1")
    back = {"name": "Chain End", "temporary_name": None}
    assert (await title_after(back, "Chain End")).endswith("destroyed in Chain End")
    # The names live in the map's tracking index, which has no expiry (the notifier's per-map
    # system cache dropped them after an hour, PARITY.md §6.1): only a map event, a reload of
    # the map or the system leaving the map changes them. The system leaving drops them:
    x.remove_system(system)
    await wait_for(lambda: system not in t.runtime.index.map("x").systems, 20, "the system removed")


async def test_the_stream_asks_only_for_the_types_the_console_acts_on(t: Two) -> None:
    """The SSE ``events`` filter (PARITY.md §9): the server is asked for the handled types, so
    connections and the like are never sent; ``sse_events = ["*"]`` asks for every type."""
    from wanderer_console.domain.map_events import HANDLED_MAP_EVENT_TYPES
    from wanderer_console.ingest.map_sse import event_filter

    await _following(t)
    x = t.host.maps["x"]
    (connect,) = x.connect_log
    assert connect["events"] == ",".join(sorted(HANDLED_MAP_EVENT_TYPES))
    assert "connection_added" not in connect["events"]
    metrics = t.runtime.metrics
    before = metrics.value("wc_events_received_total", source="sse:x")
    x.publish("connection_added", {"solar_system_source_id": t.only["x"]})
    added = t.gen.new_system()
    x.add_system(added.id)
    # Published after the connection, the system's event is stored after it would have been.
    await wait_for(
        lambda: metrics.value("wc_events_received_total", source="sse:x") >= before + 1,
        20,
        "the system's event stored",
    )
    assert metrics.value("wc_events_received_total", source="sse:x") == before + 1
    stored = {e.type for e in t.runtime.store.events_since(0.0) if e.tenant_id == "x"}
    assert "add_system" in stored
    assert "connection_added" not in stored

    everything = t.runtime.settings.maps["x"].model_copy(update={"sse_events": ["*"]})
    assert event_filter(everything) is None
    some = everything.model_copy(update={"sse_events": ["rally_point_added", "add_system"]})
    assert event_filter(some) == "add_system,rally_point_added"


def test_an_unknown_event_type_in_the_filter_is_refused_by_name() -> None:
    from pydantic import ValidationError

    from wanderer_console.config.model import MapSettings

    with pytest.raises(ValidationError, match="unknown map event types \\['add_sytem'\\]"):
        MapSettings(url="http://127.0.0.1:9", api_key="k", sse_events=["add_sytem"])  # type: ignore[arg-type]


async def test_a_system_added_between_the_first_load_and_the_stream_open_is_tracked(
    tmp_path: Path,
) -> None:
    """A map's first start (no cursor stored): the map is read over REST, then its stream
    opens. A system added in between reached neither, until a resync: its kills went unseen.
    The first connect now asks the server's backfill from just before the load began."""
    gen = DataGenerator(7)
    systems = sorted(s.id for s in gen.systems.values())
    first, added = systems[0], systems[1]
    host = FakeMapHost(gen)
    host.add_map("x", [first], ())
    fake = host.maps["x"]
    fake.stream_gate = asyncio.Event()  # the stream is asked for, and answered late
    async with _engine(tmp_path, host, ("x",)) as engine:
        runtime = engine.runtime
        await wait_for(
            lambda: "x" in runtime.index.tenants() and fake.connect_log,
            20,
            "the map loaded and its stream asked for",
        )
        assert first in runtime.index.map("x").systems
        fake.add_system(added)  # after the load's read, before the stream's answer
        fake.stream_gate.set()
        await wait_for(
            lambda: added in runtime.index.map("x").systems, 10, "the system added meanwhile"
        )
        asked = fake.connect_log[0]["last_event_id"]
        assert asked is not None  # a backfill from before the load, not from the connect
