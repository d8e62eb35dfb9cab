"""The fake services a hosted-mode engine talks to, started and stopped together.

One fake hosted Wanderer (:class:`~wanderer_console.sim.map_host.FakeMapHost`) serving a map per
slug (three systems each, one map key) and the notifier config for the ``listed`` slugs, one fake
killstream and one fake Discord (bot channels): what the single-engine and the cluster hosted
tests share.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from wanderer_console.sim.discord import FakeDiscord
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.killstream import FakeKillstream
from wanderer_console.sim.map_host import FakeMapHost
from wanderer_console.sim.server import AppServer

__all__ = ["HostedServices", "hosted_services"]


@dataclass
class HostedServices:
    gen: DataGenerator
    host: FakeMapHost
    discord: FakeDiscord
    killstream: FakeKillstream
    host_url: str
    discord_url: str
    systems: dict[str, list[int]]
    """Each served map's three systems, by slug."""


@asynccontextmanager
async def hosted_services(
    *,
    seed: int,
    served: str,
    listed: Iterable[str],
    channels: Mapping[str, str],
    map_key: str,
    plugin_key: str,
) -> AsyncIterator[HostedServices]:
    """Serve a map per character of ``served``; list ``listed`` in the notifier config, each
    with its primary channel from ``channels``."""
    gen = DataGenerator(seed)
    host = FakeMapHost(gen)
    pool = sorted(s.id for s in gen.systems.values())
    systems = {slug: pool[i * 3 : i * 3 + 3] for i, slug in enumerate(served)}
    for slug, own in systems.items():
        host.add_map(slug, own, (), api_key=map_key)
    host.plugin_api_key = plugin_key
    for slug in listed:
        host.set_notifier_config(slug, channels={"primary": channels[slug]})
    discord = FakeDiscord()
    killstream = FakeKillstream()
    host_app = AppServer(host.app, on_stop=host.close)
    discord_app = AppServer(discord.app)
    await host_app.start()
    await discord_app.start()
    await killstream.start()
    try:
        yield HostedServices(gen, host, discord, killstream, host_app.url, discord_app.url, systems)
    finally:
        await killstream.stop()
        await discord_app.stop()
        await host_app.stop()
