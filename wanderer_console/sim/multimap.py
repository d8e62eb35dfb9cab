"""Several maps, one killstream, one Discord: the simulator for engines sharing one database.

:class:`MultiMapSim` runs one :class:`~wanderer_console.sim.map_server.FakeMapServer` per map
(each on its own port, with its own key, seeded with systems and pilots no other map has), one
fake killstream with its REST API (the gap backfill), and one fake Discord whose buckets are
enforced. Each map posts everything to its own bot channel, so what Discord received is judged
per map: :meth:`MultiMapSim.push_kill` and :meth:`MultiMapSim.add_system` record what each map
must be told, :meth:`MultiMapSim.delivered` counts what each channel got (kills by killmail id,
new systems by their embed), repeats included.

Every engine gets the same configuration (:meth:`MultiMapSim.config_text`) but for its
User-Agent (``[esi] user_agent``, also the Discord client's), so the fake Discord can tell
which engine sent a message: :attr:`MultiMapSim.requests` logs every request it answered
(time, User-Agent, channel, status), accepted or not.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wanderer_console.sim.discord import FakeDiscord
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.killstream import FakeKillstream
from wanderer_console.sim.killstream_rest import FakeKillstreamRest
from wanderer_console.sim.map_server import FakeMapServer
from wanderer_console.sim.server import AppServer

__all__ = ["DiscordRequest", "MultiMapSim", "SimMap"]

_CHANNEL_BASE = 1_400_000_000_000_000_000
_BOT_TOKEN = "sim-cluster-bot-token"


@dataclass
class SimMap:
    """One map of the simulation and what it must be told."""

    key: str
    server: FakeMapServer
    app: AppServer
    channel_id: str
    systems: list[int]
    """Systems seeded at the start (kills are made in these)."""
    pilots: list[int]
    kills: list[int] = field(default_factory=list)
    """Killmail ids pushed in its systems: each must reach its channel once."""
    added_systems: list[int] = field(default_factory=list)
    """Systems added by map events: each must be announced in its channel once."""

    @property
    def url(self) -> str:
        """The map server's base URL."""
        return self.app.url


@dataclass(frozen=True, slots=True)
class DiscordRequest:
    """One request the fake Discord answered."""

    at: float
    """Wall time of its arrival."""
    user_agent: str
    path: str
    status: int


class _RequestLog:
    """ASGI middleware noting every request's arrival, User-Agent and answer."""

    def __init__(self, app: ASGIApp, log: list[DiscordRequest]) -> None:
        self._app = app
        self._log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        at = time.time()
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        agent = headers.get("user-agent", "")
        path = str(scope.get("path", ""))

        async def noted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._log.append(DiscordRequest(at, agent, path, int(message["status"])))
            await send(message)

        await self._app(scope, receive, noted)


class MultiMapSim:
    """``maps`` fake maps, a killstream (with REST) and a Discord (see the module docstring)."""

    def __init__(
        self,
        maps: int = 4,
        *,
        seed: int = 1,
        systems_per_map: int = 4,
        pilots_per_map: int = 2,
        discord_limit: int = 5,
        discord_window: float = 2.0,
        channel_per_minute: int | None = 30,
    ) -> None:
        self.generator = gen = DataGenerator(seed)
        self._rng = random.Random(seed * 7_907 + 11)
        self.discord = FakeDiscord(
            webhook_limit=discord_limit,
            webhook_window=discord_window,
            channel_per_minute=channel_per_minute,
            bot_token=_BOT_TOKEN,
        )
        self.requests: list[DiscordRequest] = []
        """Every request the fake Discord answered, in arrival order."""
        self.killstream = FakeKillstream()
        self.killstream_rest = FakeKillstreamRest(self.killstream)
        pool = sorted(gen.systems.values(), key=lambda s: s.id)
        systems = self._rng.sample([s.id for s in pool], maps * systems_per_map)
        pilots = self._rng.sample(
            sorted(gen.characters.values(), key=lambda c: c.eve_id), maps * pilots_per_map
        )
        self.maps: dict[str, SimMap] = {}
        for index in range(maps):
            key = f"m{index + 1}"
            server = FakeMapServer(
                f"map-{key}",
                f"sim-key-{key}",
                str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                generator=gen,
            )
            own = systems[index * systems_per_map : (index + 1) * systems_per_map]
            crew = pilots[index * pilots_per_map : (index + 1) * pilots_per_map]
            server.seed(own, crew)
            self.maps[key] = SimMap(
                key,
                server,
                AppServer(server.app, on_stop=server.close),
                str(_CHANNEL_BASE + index + 1),
                own,
                [c.eve_id for c in crew],
            )
        self._tracked_pilots = {p for m in self.maps.values() for p in m.pilots}
        self._discord_app = AppServer(_RequestLog(self.discord.app, self.requests))
        self._rest_app = AppServer(self.killstream_rest.app)

    async def start(self) -> None:
        """Start every fake on a free 127.0.0.1 port."""
        try:
            for entry in self.maps.values():
                await entry.app.start()
            await self._discord_app.start()
            await self._rest_app.start()
            await self.killstream.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every fake (safe to call twice)."""
        await self.killstream.stop()
        await self._rest_app.stop()
        await self._discord_app.stop()
        for entry in self.maps.values():
            await entry.app.stop()

    async def __aenter__(self) -> MultiMapSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- configuration -------------------------------------------------------------------------

    def config_text(self, *, agent: str, lease_seconds: float, extra: str = "") -> str:
        """One engine's configuration: every map, each to its own bot channel; ``agent`` is its
        User-Agent (how the fake Discord tells the engines apart)."""
        lines = [
            "[console]",
            "startup_suppression_seconds = 0",
            "stop_grace_seconds = 5",
            "[discord]",
            f'api_url = "{self.discord_url}/api/v10"',
            f'bot_token = "{_BOT_TOKEN}"',
            "uncertain_retry_seconds = 1",
            "[esi]",
            "enabled = false",
            f'user_agent = "{agent}"',
            "[killstream]",
            f'websocket_url = "{self.killstream.url}"',
            f'rest_url = "{self._rest_app.url}"',
            "[cluster]",
            f"lease_seconds = {lease_seconds}",
            extra,
        ]
        for entry in self.maps.values():
            lines += [
                f"[maps.{entry.key}]",
                f'url = "{entry.url}"',
                f'slug = "{entry.server.slug}"',
                f'api_key = "{entry.server.api_key}"',
                f"[maps.{entry.key}.discord]",
                f'channel_id = "{entry.channel_id}"',
            ]
        return "\n".join(lines) + "\n"

    @property
    def discord_url(self) -> str:
        """Base URL of the fake Discord."""
        return self._discord_app.url

    # -- what happens on the maps ----------------------------------------------------------------

    async def push_kill(self, key: str) -> int:
        """A kill in one of the map's seeded systems, involving no tracked pilot; its id."""
        entry = self.maps[key]
        kill = self.generator.make_killmail(
            system_id=self._rng.choice(entry.systems),
            exclude_character_ids=self._tracked_pilots,
        )
        entry.kills.append(int(kill["killmail_id"]))
        await self.killstream.push_kill(kill)
        return int(kill["killmail_id"])

    def add_system(self, key: str) -> int:
        """Publish ``add_system`` of a new system on the map (announced to its channel)."""
        entry = self.maps[key]
        system = self.generator.new_system()
        entry.added_systems.append(system.id)
        entry.server.add_system(system.id)
        return system.id

    # -- what Discord received -------------------------------------------------------------------

    def delivered(self, key: str) -> tuple[Counter[int], Counter[str]]:
        """Killmail ids and system announcements (by embed identity) the map's channel got,
        each with how many times."""
        target = f"channel:{self.maps[key].channel_id}"
        kills: Counter[int] = Counter()
        systems: Counter[str] = Counter()
        for message in self.discord.messages_for(target):
            for notice in message.notifications:
                if notice.kind == "kill" and notice.killmail_id is not None:
                    kills[notice.killmail_id] += 1
                elif notice.kind == "system":
                    systems[notice.identity] += 1
        return kills, systems

    def senders(self, key: str) -> Counter[str]:
        """Messages the map's channel accepted, by the User-Agent that sent them."""
        target = f"channel:{self.maps[key].channel_id}"
        return Counter(m.headers.get("user-agent", "") for m in self.discord.messages_for(target))

    def summary(self) -> dict[str, Any]:
        """Per map: kills and systems expected, delivered, lost and doubled."""
        out: dict[str, Any] = {}
        for key, entry in self.maps.items():
            kills, systems = self.delivered(key)
            out[key] = {
                "kills": len(entry.kills),
                "kills_lost": sorted(set(entry.kills) - set(kills)),
                "kills_doubled": sorted(k for k, n in kills.items() if n > 1),
                "kills_unexpected": sorted(set(kills) - set(entry.kills)),
                "systems": len(entry.added_systems),
                "systems_delivered": len(systems),
                "systems_doubled": sum(n - 1 for n in systems.values()),
            }
        return out
