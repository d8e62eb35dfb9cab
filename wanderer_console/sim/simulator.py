"""The whole local simulator: fake map, fake killstream and fake Discord on 127.0.0.1.

:class:`Simulator` starts the three fakes on free ports, seeds the map with tracked systems and
pilots and can drive a seeded random scenario (:meth:`Simulator.run_scenario`) that exercises
every notification path, including kills that must *not* be notified.
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
import zlib
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

from wanderer_console.sim.discord import FakeDiscord, webhook_url
from wanderer_console.sim.discord_gateway import FakeGateway, FakeGuild
from wanderer_console.sim.esi import FakeEsi
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.killstream import FakeKillstream
from wanderer_console.sim.killstream_rest import FakeKillstreamRest
from wanderer_console.sim.map_server import FakeMapServer
from wanderer_console.sim.r2z2 import FakeR2z2
from wanderer_console.sim.server import AppServer

__all__ = ["SCENARIO_KINDS", "ScenarioStats", "Simulator"]

SCENARIO_KINDS: Final = (
    "tracked_system_kill",
    "tracked_character_kill",
    "untracked_kill",
    "add_system",
    "add_character",
    "add_rally",
)
"""Actions :meth:`Simulator.run_scenario` performs."""
_WEIGHTS: Final = (4, 3, 3, 1, 1, 1)
SIM_GUILD_ID: Final = "900000000000000001"
"""The fake gateway's guild (``discord.guild_id`` of a config pointed at it)."""
SIM_VOICE_CHANNEL: Final = "900000000000000002"
SIM_AFK_CHANNEL: Final = "900000000000000003"
SIM_APPLICATION_ID: Final = "1200000000000000001"


@dataclass
class ScenarioStats:
    """What a scenario run did."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SCENARIO_KINDS, 0))
    """Actions per kind (keys: :data:`SCENARIO_KINDS`)."""
    expected_kill_ids: list[int] = field(default_factory=list)
    """Kills a correct notifier reports (tracked system or tracked pilot involved)."""
    untracked_kill_ids: list[int] = field(default_factory=list)
    """Kills a correct notifier must ignore."""
    added_system_ids: list[int] = field(default_factory=list)
    added_character_ids: list[int] = field(default_factory=list)
    rally_point_ids: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def total(self) -> int:
        """All actions performed."""
        return sum(self.counts.values())

    def __getitem__(self, kind: str) -> int:
        """``stats["add_system"]`` is ``stats.counts["add_system"]``."""
        return self.counts[kind]


class Simulator:
    """Fake map + killstream + Discord, started and stopped together (also ``async with``)."""

    def __init__(
        self,
        seed: int = 1,
        *,
        map_slug: str = "demo",
        map_api_key: str = "sim-map-key",
        keepalive_seconds: float = 30.0,
        discord_webhook_limit: int = 5,
        discord_webhook_window: float = 2.0,
        discord_channel_per_minute: int | None = None,
        bot_token: str = "sim-bot-token",
        map_kill_events: bool = False,
        r2z2: bool | FakeR2z2 = False,
        killstream_rest: bool = False,
        esi: bool = True,
        gateway: bool = False,
    ) -> None:
        self.generator = DataGenerator(seed)
        self._rng = random.Random(seed * 1_000_003 + 17)
        map_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self.map = FakeMapServer(
            map_slug,
            map_api_key,
            map_id,
            keepalive_seconds=keepalive_seconds,
            generator=self.generator,
        )
        self.discord = FakeDiscord(
            webhook_limit=discord_webhook_limit,
            webhook_window=discord_webhook_window,
            channel_per_minute=discord_channel_per_minute,
            bot_token=bot_token,
        )
        self.killstream = FakeKillstream()
        self.map_kill_events = map_kill_events
        """Also publish ``map_kill`` SSE events for kills in map systems (off by default)."""
        self._bot_token = bot_token
        self._map_server = AppServer(self.map.app, on_stop=self.map.close)
        self._discord_server = AppServer(self.discord.app)
        self.r2z2: FakeR2z2 | None = (
            r2z2 if isinstance(r2z2, FakeR2z2) else FakeR2z2(self.generator) if r2z2 else None
        )
        """Fake zKillboard R2Z2 feed (optional); every pushed kill is also published there."""
        self._r2z2_server = None if self.r2z2 is None else AppServer(self.r2z2.app)
        self.killstream_rest: FakeKillstreamRest | None = (
            FakeKillstreamRest(self.killstream) if killstream_rest else None
        )
        """Fake wanderer-kills REST API over the killstream's kills (optional)."""
        self._rest_server = (
            None if self.killstream_rest is None else AppServer(self.killstream_rest.app)
        )
        self.esi: FakeEsi | None = FakeEsi(self.generator) if esi else None
        """Fake ESI serving the generator's names, tickers, systems and types (on by default)."""
        self._esi_server = None if self.esi is None else AppServer(self.esi.app)
        self.gateway: FakeGateway | None = None
        """Fake Discord gateway (optional): the bot's websocket, slash commands, voice."""
        if gateway:
            guild = FakeGuild(
                SIM_GUILD_ID, afk_channel_id=SIM_AFK_CHANNEL, voice_channels=[SIM_VOICE_CHANNEL]
            )
            self.gateway = FakeGateway(bot_token=bot_token, guilds=[guild])
            self.discord.bot_app.interactions = self.gateway.interactions
        self._seeded = False
        self._started = False
        self._ever_systems: set[int] = set()
        self._ever_characters: set[int] = set()

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start all three fakes on free 127.0.0.1 ports and seed the map (once)."""
        if self._started:
            return
        self._seed_map()
        try:
            await self._map_server.start()
            await self._discord_server.start()
            await self.killstream.start()
            for extra in (self._r2z2_server, self._rest_server, self._esi_server):
                if extra is not None:
                    await extra.start()
            if self.gateway is not None:
                await self.gateway.start()
                self.discord.bot_app.gateway_url = self.gateway.url
        except BaseException:
            await self.stop()
            raise
        self._started = True

    async def stop(self) -> None:
        """Stop all fakes (safe to call twice)."""
        self._started = False
        if self.gateway is not None:
            await self.gateway.stop()
        for extra in (self._esi_server, self._rest_server, self._r2z2_server):
            if extra is not None:
                await extra.stop()
        await self.killstream.stop()
        await self._discord_server.stop()
        await self._map_server.stop()

    async def __aenter__(self) -> Simulator:
        """Start on entry."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop on exit."""
        await self.stop()

    def _seed_map(self) -> None:
        if self._seeded:
            return
        gen = self.generator
        pool = sorted(gen.systems.values(), key=lambda s: s.id)
        jspace = [s.id for s in pool if s.is_wormhole and s.system_class <= 6]
        kspace = [s.id for s in pool if not s.is_wormhole]
        systems = self._rng.sample(jspace, 3) + self._rng.sample(kspace, 2)
        characters = self._rng.sample(sorted(gen.characters.values(), key=lambda c: c.eve_id), 4)
        self.map.seed(systems, characters)
        self._ever_systems.update(systems)
        self._ever_characters.update(c.eve_id for c in characters)
        self._seeded = True

    # -- addresses -------------------------------------------------------------------------
    @property
    def map_url(self) -> str:
        """Base URL of the fake map (``http://127.0.0.1:PORT``)."""
        return self._map_server.url

    @property
    def map_slug(self) -> str:
        """Slug of the simulated map."""
        return self.map.slug

    @property
    def map_id(self) -> str:
        """UUID of the simulated map."""
        return self.map.map_id

    @property
    def map_api_key(self) -> str:
        """Bearer key the fake map accepts."""
        return self.map.api_key

    @property
    def killstream_url(self) -> str:
        """``ws://127.0.0.1:PORT`` of the fake wanderer-kills (socket at ``/socket/websocket``)."""
        return self.killstream.url

    @property
    def r2z2_url(self) -> str:
        """Base URL of the fake R2Z2 feed (only with ``r2z2=...``)."""
        if self._r2z2_server is None:
            raise RuntimeError("simulator started without r2z2")
        return self._r2z2_server.url

    @property
    def esi_url(self) -> str:
        """Base URL of the fake ESI (unless started with ``esi=False``)."""
        if self._esi_server is None:
            raise RuntimeError("simulator started without esi")
        return self._esi_server.url

    @property
    def killstream_rest_url(self) -> str:
        """Base URL of the fake wanderer-kills REST API (only with ``killstream_rest=True``)."""
        if self._rest_server is None:
            raise RuntimeError("simulator started without killstream_rest")
        return self._rest_server.url

    @property
    def discord_url(self) -> str:
        """Base URL of the fake Discord (``http://127.0.0.1:PORT``)."""
        return self._discord_server.url

    @property
    def discord_api_url(self) -> str:
        """``discord_url + "/api/v10"`` (bot route base)."""
        return f"{self.discord_url}/api/v10"

    @property
    def bot_token(self) -> str:
        """Bot token the fake Discord accepts on the channel-messages route."""
        return self._bot_token

    def webhook_id(self, name: str) -> str:
        """Stable snowflake-like webhook id for a logical name such as ``"kills"``."""
        return str(1_200_000_000_000_000_000 + zlib.crc32(name.encode()))

    def webhook_url(self, name: str) -> str:
        """Stable fake webhook URL per name; its token is registered, so it must be kept."""
        webhook_id = self.webhook_id(name)
        token = "sim-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)
        self.discord.register_webhook(webhook_id, token)
        return webhook_url(self.discord_url, webhook_id, token)

    def webhook_target(self, name: str) -> str:
        """``ReceivedMessage.target`` of messages sent to :meth:`webhook_url` ``(name)``."""
        return f"webhook:{self.webhook_id(name)}"

    @property
    def tracked_system_ids(self) -> list[int]:
        """Solar systems currently on the map."""
        return self.map.tracked_system_ids

    @property
    def tracked_character_ids(self) -> list[int]:
        """EVE ids of the pilots currently tracked on the map."""
        return self.map.tracked_character_ids

    # -- scenario --------------------------------------------------------------------------
    async def run_scenario(
        self, duration: float, rate: float = 5.0, *, stop: asyncio.Event | None = None
    ) -> ScenarioStats:
        """Perform about ``rate`` random actions per second for ``duration`` seconds.

        One action of every kind is performed first (in random order, back to back), so every
        run covers all :data:`SCENARIO_KINDS`. Kills for tracked systems and pilots use those
        tracked when the scenario began, so a notifier that loaded them via REST at start-up
        can be held to :attr:`ScenarioStats.expected_kill_ids`. ``stop`` ends the run early.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + max(0.0, duration)
        stats = ScenarioStats()
        base_systems = list(self.tracked_system_ids)
        base_characters = list(self.tracked_character_ids)
        first = list(SCENARIO_KINDS)
        self._rng.shuffle(first)
        for kind in first:
            await self._emit(kind, stats, base_systems, base_characters)
        interval = 1.0 / rate if rate > 0 else max(duration, 0.01)
        max_actions = int(max(0.0, duration) * max(rate, 0.0)) + 1
        for _ in range(max_actions):
            remaining = deadline - loop.time()
            if remaining <= 0 or (stop is not None and stop.is_set()):
                break
            delay = min(interval * self._rng.uniform(0.5, 1.5), remaining)
            if stop is None:
                await asyncio.sleep(delay)
            else:
                try:
                    async with asyncio.timeout(delay):
                        await stop.wait()
                    break
                except TimeoutError:
                    pass
            if loop.time() >= deadline:
                break
            kind = self._rng.choices(SCENARIO_KINDS, weights=_WEIGHTS)[0]
            await self._emit(kind, stats, base_systems, base_characters)
        stats.elapsed = loop.time() - started
        return stats

    async def _emit(
        self, kind: str, stats: ScenarioStats, systems: list[int], characters: list[int]
    ) -> None:
        gen, rng = self.generator, self._rng
        stats.counts[kind] += 1
        if kind == "add_system":
            system = gen.new_system(wormhole=rng.random() < 0.7)
            self._ever_systems.add(system.id)
            self.map.add_system(system.id)
            stats.added_system_ids.append(system.id)
        elif kind == "add_character":
            pilot = gen.new_character()
            self._ever_characters.add(pilot.eve_id)
            self.map.add_character(pilot.eve_id, pilot.name)
            stats.added_character_ids.append(pilot.eve_id)
        elif kind == "add_rally":
            system_id = rng.choice(self.tracked_system_ids or systems)
            pilot_id = rng.choice(self.tracked_character_ids or characters)
            envelope = self.map.add_rally(system_id, pilot_id, rng.choice(_RALLY_MESSAGES))
            stats.rally_point_ids.append(envelope["payload"]["rally_point_id"])
        elif kind == "tracked_system_kill":
            kill = gen.make_killmail(system_id=rng.choice(systems or self.tracked_system_ids))
            await self._push(kill, stats.expected_kill_ids)
        elif kind == "tracked_character_kill":
            pilot_id = rng.choice(characters or self.tracked_character_ids)
            system_id = self._untracked_system()
            if rng.random() < 0.5:
                kill = gen.make_killmail(system_id=system_id, victim_character_id=pilot_id)
            else:
                kill = gen.make_killmail(system_id=system_id, attacker_character_ids=[pilot_id])
            await self._push(kill, stats.expected_kill_ids)
        else:
            kill = gen.make_killmail(
                system_id=self._untracked_system(),
                exclude_character_ids=self._ever_characters | set(self.tracked_character_ids),
            )
            await self._push(kill, stats.untracked_kill_ids)

    def _untracked_system(self) -> int:
        excluded = self._ever_systems | set(self.tracked_system_ids)
        choices = sorted(s for s in self.generator.systems if s not in excluded)
        if not choices:
            return self.generator.new_system().id
        return self._rng.choice(choices)

    async def _push(self, kill: dict[str, Any], sink: list[int]) -> None:
        sink.append(kill["killmail_id"])
        await self.killstream.push_kill(kill)
        if self.r2z2 is not None:
            self.r2z2.publish(kill)
        if self.map_kill_events and kill["system_id"] in self.tracked_system_ids:
            self.map.publish_map_kill([kill])


_RALLY_MESSAGES: Final = (
    "Form up on me",
    "Hostiles on scan, rally here",
    "Undock and align",
    None,
)
