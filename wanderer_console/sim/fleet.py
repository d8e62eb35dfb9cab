"""A fleet of maps for the scale benchmark: N maps on one fake Wanderer host, one killstream, one
Discord, one ESI, and the event mix a hosted console sees.

**The maps.** Each map tracks 20–60 systems and 5–50 pilots, overlapping as real groups overlap:
a third of the maps hold one of six trade hubs, most hold a few of two dozen popular wormhole
systems, the rest of their systems drawn from a pool whose popular end is shared by many maps
(a skewed draw over ``30 * N + 200`` systems, at most 5,000: EVE has about 7,800),
and about a third of its pilots from a shared pool (alts and corp mates on several maps), the
rest its own. Every map posts to its own webhook.

**The mix** (:meth:`MapFleet.run_mix`): kills at ``kill_rate`` per second over all maps (60 %
in a tracked system, any of them alike, so a kill notifies as many maps as track its system:
about 8 on average with a thousand maps; 25 % involving a map's pilot elsewhere; 15 % touching
no map), map events at
``event_rate`` per second spread over random maps (connections, temporary names, systems and
pilots added and removed, rally points), and :meth:`MapFleet.burst` pushes many kills at once.
Kills only involve the systems and pilots the maps tracked from the start (events add and remove
fresh ones, never those), so which maps must notify each kill is known: :meth:`MapFleet.outcome`
compares it with what the fake Discord received (latency from push to receipt, lost, doubled).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from wanderer_console.sim.discord import FakeDiscord, webhook_url
from wanderer_console.sim.esi import FakeEsi
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.killstream import FakeKillstream
from wanderer_console.sim.killstream_rest import FakeKillstreamRest
from wanderer_console.sim.map_host import FakeMapHost
from wanderer_console.sim.map_server import FakeMapServer
from wanderer_console.sim.server import AppServer
from wanderer_console.sim.universe import KNOWN_KSPACE, Character
from wanderer_console.sim.webhook_sink import WebhookSink

__all__ = ["FleetMap", "MapFleet", "MixStats", "Outcome"]

_HUBS_KSPACE: Final = 6
"""Trade hubs every map may hold (Jita, Perimeter, ...)."""
_HUBS_JSPACE: Final = 24
"""Popular wormhole systems (Thera-like crossroads) shared by many maps."""
_FILLERS: Final = 400
"""Untracked pilots random kill parties are drawn from."""
_EVENT_WEIGHTS: Final = {
    "connection": 30,
    "metadata": 15,
    "add_system": 20,
    "deleted_system": 15,
    "character_added": 10,
    "character_removed": 5,
    "rally": 5,
}
_KILL_WEIGHTS: Final = {"system": 60, "pilot": 25, "untracked": 15}
_WEBHOOK_BASE: Final = 1_300_000_000_000_000_000


@dataclass(frozen=True, slots=True)
class FleetMap:
    """One map of the fleet, as the engine's config and the expectations need it."""

    slug: str
    api_key: str
    webhook_id: str
    webhook_token: str
    systems: tuple[int, ...]
    pilots: tuple[int, ...]


@dataclass
class MixStats:
    """What a mix run pushed."""

    kills: int = 0
    events: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    kills_per_second: float = 0.0
    events_per_second: float = 0.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """Kills sent against the notifications received."""

    kills: int
    expected: int
    """(kill, map) notifications the maps' tracking calls for."""
    delivered: int
    lost: int
    doubled: int
    unexpected: int
    latencies_ms: list[float]
    largest: tuple[int, float | None, float | None] | None = None
    """The kill notifying the most maps (the first of them): how many, and its first and last
    delivery in ms after its push (``None`` when none arrived). The mix's tail is its last
    maps'."""
    invalid: int = 0
    """Posts the webhook sink found Discord would have refused (the full fake answers them 400,
    and they are lost instead)."""


def _draw_seed(seed: int, salt: int) -> int:
    """The seed of the fleet's own draws (maps at build, kills of a phase) for ``salt``."""
    return seed * 1_000_033 + salt


_KILL_FOOTER: Final = b"Killmail ID: "
"""What a kill notification's embed footer starts with (one per notification)."""


class MapFleet:
    """Many maps and the services around them on 127.0.0.1 (``async with``)."""

    def __init__(
        self,
        maps: int,
        *,
        seed: int = 1,
        keepalive_seconds: float = 30.0,
        full_discord: bool = False,
    ) -> None:
        """``full_discord``: the webhooks served by :class:`FakeDiscord` (Discord's rules
        checked as each post arrives) instead of the :class:`WebhookSink` (checked after the
        run, at a fraction of the CPU per post: see its module)."""
        if maps < 1:
            raise ValueError("a fleet has at least one map")
        self.seed = seed
        self._rng = random.Random(_draw_seed(seed, 5))
        self.generator = DataGenerator(seed)
        gen = self.generator
        self.fillers = [gen.new_character() for _ in range(_FILLERS)]
        gen.filler_pool = self.fillers
        self.host = FakeMapHost(gen, keepalive_seconds=keepalive_seconds, seed=seed)
        self.killstream = FakeKillstream(duplicate_realtime=True)
        self.killstream_rest = FakeKillstreamRest(self.killstream)
        self.discord: FakeDiscord | WebhookSink = (
            FakeDiscord(webhook_limit=10**9, webhook_window=1.0) if full_discord else WebhookSink()
        )
        self.esi = FakeEsi(gen)
        self.maps: list[FleetMap] = []
        self.system_maps: dict[int, set[str]] = {}
        """System -> maps that tracked it from the start."""
        self.pilot_maps: dict[int, set[str]] = {}
        """Pilot -> maps that tracked it from the start."""
        self._added: dict[str, list[int]] = {}
        self._added_pilots: dict[str, list[int]] = {}
        self._sent: dict[int, tuple[float, frozenset[str]]] = {}
        self._build(maps)
        self._untracked = [s for s in sorted(gen.systems) if s not in self.system_maps]
        self._tracked = sorted(self.system_maps)
        self._servers: list[AppServer | WebhookSink] = [
            AppServer(self.host.app, on_stop=self.host.close),
            AppServer(self.discord.app) if isinstance(self.discord, FakeDiscord) else self.discord,
            AppServer(self.esi.app),
            AppServer(self.killstream_rest.app),
        ]

    # -- building ----------------------------------------------------------------------------

    def _build(self, count: int) -> None:
        gen, rng = self.generator, self._rng
        hubs_k = [known[0] for known in KNOWN_KSPACE[:_HUBS_KSPACE]]
        hubs_j = [gen.new_system(wormhole=True).id for _ in range(_HUBS_JSPACE)]
        # The pool: popular systems first; a map draws its chain with a skew toward them.
        # At most 5,000 (2,000 in J-space): the generator's id ranges hold 2,595 J-space and
        # 5,000 k-space systems, as EVE's universe holds about 2,600 and 5,200.
        size = min(5_000, 30 * count + 200)
        pool = [gen.new_system(wormhole=rng.random() < 0.4).id for _ in range(size)]
        weights = [1.0 / (rank + 25) for rank in range(size)]
        shared_pilots = [gen.new_character().eve_id for _ in range(max(20, count))]
        width = len(str(count))
        for index in range(count):
            slug = f"m{index:0{width}d}"
            systems: dict[int, None] = {}
            if rng.random() < 1 / 3:
                systems[rng.choice(hubs_k)] = None
            systems.update(dict.fromkeys(rng.sample(hubs_j, rng.randint(0, 2))))
            total = rng.randint(20, 60)
            while len(systems) < total:
                systems.update(dict.fromkeys(rng.choices(pool, weights, k=total - len(systems))))
            pilots_total = rng.randint(5, 50)
            shared = rng.sample(shared_pilots, min(len(shared_pilots), pilots_total // 3))
            own = [gen.new_character().eve_id for _ in range(pilots_total - len(shared))]
            pilots = tuple(dict.fromkeys(shared + own))
            webhook_id = str(_WEBHOOK_BASE + index)
            token = f"sim-{slug}"
            self.discord.register_webhook(webhook_id, token)
            api_key = f"sim-key-{slug}"
            characters: list[Character] = [gen.character(p) for p in pilots]
            self.host.add_map(slug, list(systems), characters, api_key=api_key)
            fleet_map = FleetMap(slug, api_key, webhook_id, token, tuple(systems), pilots)
            self.maps.append(fleet_map)
            for system_id in systems:
                self.system_maps.setdefault(system_id, set()).add(slug)
            for pilot in pilots:
                self.pilot_maps.setdefault(pilot, set()).add(slug)
            self._added[slug] = []
            self._added_pilots[slug] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every server on a free 127.0.0.1 port."""
        try:
            for server in self._servers:
                await server.start()
            await self.killstream.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every server (safe twice)."""
        await self.killstream.stop()
        for server in reversed(self._servers):
            await server.stop()

    async def __aenter__(self) -> MapFleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def map_url(self) -> str:
        """The map host's base URL."""
        return self._servers[0].url

    def config_text(self, *, http: dict[str, dict[str, float]] | None = None) -> str:
        """An engine config (TOML) with every map of the fleet, every kill to its webhook,
        Discord's limits lifted on both sides (the figures are the engine's own); ``http``
        adds ``[http.<service>]`` overrides (``{"map": {"rate_per_second": 100}}``)."""
        discord = self._servers[1].url
        lines = [
            "[console]",
            "startup_suppression_seconds = 0",
            "",
            "[discord]",
            f'api_url = "{discord}/api/v10"',
            "channel_messages_per_minute = 1000000",
            "",
            "[http.discord]",
            "rate_per_second = 0",
            "",
        ]
        for service, values in (http or {}).items():
            lines += [f"[http.{service}]", *(f"{k} = {v:g}" for k, v in values.items()), ""]
        lines += [
            "[esi]",
            f'url = "{self._servers[2].url}"',
            "",
            "[killstream]",
            f'websocket_url = "{self.killstream.url}"',
            f'rest_url = "{self._servers[3].url}"',
            "",
        ]
        for fleet_map in self.maps:
            hook = webhook_url(discord, fleet_map.webhook_id, fleet_map.webhook_token)
            lines += [
                f"[maps.{fleet_map.slug}]",
                f'url = "{self.map_url}"',
                f'api_key = "{fleet_map.api_key}"',
                f"[maps.{fleet_map.slug}.discord]",
                f'webhook_url = "{hook}"',
                "",
            ]
        return "\n".join(lines)

    def unique_systems(self) -> int:
        """Systems tracked by any map (from the start)."""
        return len(self.system_maps)

    def unique_pilots(self) -> int:
        """Pilots tracked by any map (from the start)."""
        return len(self.pilot_maps)

    # -- load ----------------------------------------------------------------------------------

    def _fake(self, slug: str) -> FakeMapServer:
        return self.host.maps[slug]

    async def push_kill(self) -> None:
        """One kill of the mix (in a map's system, with a map's pilot, or touching no map)."""
        await self._push(self._draw_kill())

    def _draw_kill(self) -> dict[str, Any]:
        gen, rng = self.generator, self._rng
        kind = rng.choices(list(_KILL_WEIGHTS), list(_KILL_WEIGHTS.values()))[0]
        fleet_map = rng.choice(self.maps)
        if kind == "system":
            kill = gen.make_killmail(system_id=rng.choice(self._tracked))
        elif kind == "pilot":
            pilot = rng.choice(fleet_map.pilots)
            system_id = rng.choice(self._untracked)
            if rng.random() < 0.5:
                kill = gen.make_killmail(system_id=system_id, victim_character_id=pilot)
            else:
                kill = gen.make_killmail(system_id=system_id, attacker_character_ids=[pilot])
        else:
            kill = gen.make_killmail(system_id=rng.choice(self._untracked))
        return kill

    def _reseed(self, salt: int) -> None:
        """Start the draws over from the fleet's seed: what the start-up and earlier phases
        drew (ESI names made up on demand, at the engine's pace) no longer decides which
        kills a phase pushes, so two runs of one fleet push the same kills."""
        self._rng.seed(_draw_seed(self.seed, salt))
        self.generator.reseed(self.seed * 1_000_037 + salt)

    def most_watched(self, count: int) -> list[int]:
        """The ``count`` systems tracked by the most maps, most watched first."""
        return sorted(self.system_maps, key=lambda s: (-len(self.system_maps[s]), s))[:count]

    async def push_kill_in(self, system_id: int) -> int:
        """A kill in ``system_id``; returns how many maps it should notify."""
        kill = self.generator.make_killmail(system_id=system_id)
        await self._push(kill)
        return len(self._sent[kill["killmail_id"]][1])

    async def _push(self, kill: dict[str, Any]) -> None:
        expected = set(self.system_maps.get(kill["system_id"], ()))
        parties = [kill.get("victim") or {}, *(kill.get("attackers") or [])]
        for party in parties:
            expected |= self.pilot_maps.get(party.get("character_id") or 0, set())
        self._sent[kill["killmail_id"]] = (time.time(), frozenset(expected))
        await self.killstream.push_kill(kill)

    def map_event(self) -> str:
        """One map event of the mix on a random map; returns its kind."""
        rng, gen = self._rng, self.generator
        kind = rng.choices(list(_EVENT_WEIGHTS), list(_EVENT_WEIGHTS.values()))[0]
        fleet_map = rng.choice(self.maps)
        fake = self._fake(fleet_map.slug)
        added = self._added[fleet_map.slug]
        added_pilots = self._added_pilots[fleet_map.slug]
        if kind == "deleted_system" and not added:
            kind = "add_system"
        if kind == "character_removed" and not added_pilots:
            kind = "character_added"
        if kind == "connection":
            source, target = rng.sample(fleet_map.systems, 2)
            fake.publish(
                "connection_added",
                {
                    "connection_id": fake.state.new_uuid(),
                    "solar_system_source_id": source,
                    "solar_system_target_id": target,
                    "mass_status": 0,
                    "time_status": 0,
                    "ship_size_type": 2,
                    "type": 0,
                },
            )
        elif kind == "metadata":
            system_id = rng.choice(fleet_map.systems)
            fake.publish(
                "system_metadata_changed",
                {"solar_system_id": system_id, "temporary_name": f"T{rng.randint(1, 999)}"},
            )
        elif kind == "add_system":
            system = gen.new_system(wormhole=rng.random() < 0.7)
            added.append(system.id)
            fake.add_system(system.id)
        elif kind == "deleted_system":
            fake.remove_system(added.pop(rng.randrange(len(added))))
        elif kind == "character_added":
            pilot = gen.new_character()
            added_pilots.append(pilot.eve_id)
            fake.add_character(pilot.eve_id, pilot.name)
        elif kind == "character_removed":
            fake.remove_character(added_pilots.pop(rng.randrange(len(added_pilots))))
        else:
            fake.add_rally(rng.choice(fleet_map.systems), rng.choice(fleet_map.pilots))
        return kind

    async def run_mix(
        self, seconds: float, *, kill_rate: float = 20.0, event_rate: float = 5.0
    ) -> MixStats:
        """Kills and map events at their rates for ``seconds`` (each on its own schedule).

        The kills are drawn before the clock starts, from the fleet's seed: the same fleet
        pushes the same kills in every run (the largest fan-outs, which set the tail, are not
        left to how the draws of kills and events interleaved). The events are drawn as they
        go, after them."""
        stats = MixStats()
        self._reseed(11)
        planned = [self._draw_kill() for _ in range(math.floor(seconds * kill_rate))]
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def kills() -> None:
            for n, kill in enumerate(planned):
                await _until(loop, start + n / kill_rate)
                await self._push(kill)
                stats.kills += 1

        async def events() -> None:
            for n in range(math.floor(seconds * event_rate)):
                await _until(loop, start + (n + 0.5) / event_rate)
                stats.events[self.map_event()] += 1

        await asyncio.gather(kills(), events())
        stats.seconds = loop.time() - start
        stats.kills_per_second = round(stats.kills / stats.seconds, 2)
        stats.events_per_second = round(stats.events.total() / stats.seconds, 2)
        return stats

    async def burst(self, kills: int) -> float:
        """``kills`` kills of the mix pushed back to back (drawn first, from the fleet's seed);
        the seconds pushing took."""
        self._reseed(13)
        planned = [self._draw_kill() for _ in range(kills)]
        started = time.perf_counter()
        for kill in planned:
            await self._push(kill)
        return time.perf_counter() - started

    def reset_outcome(self) -> None:
        """Forget the kills sent and the messages received (the next outcome starts here)."""
        self._sent.clear()
        if isinstance(self.discord, WebhookSink):
            self.discord.clear()
        else:
            self.discord.received.clear()

    def sink_delays_ms(self) -> list[float]:
        """With the sink, per post since the last reset: milliseconds between its arrival (the
        stamp latencies are measured to) and this process reading it; none with the full fake,
        which stamps at its read."""
        if isinstance(self.discord, WebhookSink):
            return [delay * 1000.0 for delay in self.discord.read_delays()]
        return []

    def fan_outs(self) -> list[int]:
        """For each notification expected since the last reset, how many maps its kill
        notifies (a kill in a popular system: hundreds, all due at once)."""
        return [len(maps) for _, maps in self._sent.values() for _ in maps]

    def pending(self) -> int:
        """(kill, map) notifications expected and not received yet.

        With the sink, counted in the raw bodies (a few microseconds a post): parsing them
        while posts still arrive would hold the sink's loop and delay their stamps. A doubled
        one would hide a lost one here; :meth:`outcome` tells them apart."""
        if isinstance(self.discord, WebhookSink):
            expected = sum(len(maps) for _, maps in self._sent.values())
            return max(0, expected - self.discord.count(_KILL_FOOTER))
        return self.outcome().lost

    def outcome(self) -> Outcome:
        """Kills sent since the last reset against the kill notifications received."""
        by_webhook = {f"webhook:{m.webhook_id}": m.slug for m in self.maps}
        got: Counter[tuple[int, str]] = Counter()
        first: dict[tuple[int, str], float] = {}
        for message in self.discord.received:
            slug = by_webhook.get(message.target)
            if slug is None:
                continue
            for embed in message.body.get("embeds") or []:
                footer = str((embed.get("footer") or {}).get("text", ""))
                if not footer.startswith("Killmail ID: "):
                    continue
                with contextlib.suppress(ValueError):
                    kill_id = int(footer.removeprefix("Killmail ID: ").split()[0])
                    key = (kill_id, slug)
                    got[key] += 1
                    first.setdefault(key, message.at)
        expected = delivered = lost = 0
        latencies: list[float] = []
        largest: tuple[int, float | None, float | None] | None = None
        for kill_id, (sent_at, maps) in self._sent.items():
            mine: list[float] = []
            for slug in maps:
                expected += 1
                at = first.get((kill_id, slug))
                if at is None:
                    lost += 1
                    continue
                delivered += 1
                mine.append((at - sent_at) * 1000.0)
            latencies += mine
            if largest is None or len(maps) > largest[0]:
                largest = (len(maps), min(mine, default=None), max(mine, default=None))
        doubled = sum(n - 1 for n in got.values() if n > 1)
        unexpected = sum(
            1
            for (kill_id, slug) in got
            if kill_id in self._sent and slug not in self._sent[kill_id][1]
        )
        invalid = self.discord.invalid if isinstance(self.discord, WebhookSink) else 0
        return Outcome(
            len(self._sent),
            expected,
            delivered,
            lost,
            doubled,
            unexpected,
            latencies,
            largest,
            invalid,
        )


async def _until(loop: asyncio.AbstractEventLoop, at: float) -> None:
    delay = at - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)
