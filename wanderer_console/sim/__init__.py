"""Local simulator: fake Wanderer map, fake wanderer-kills killstream and fake Discord.

Everything listens on 127.0.0.1 only and runs inside the caller's asyncio loop. Start with
:class:`Simulator` (the demo, the benchmarks and the end-to-end tests do), which seeds a
:class:`DataGenerator` and runs :class:`FakeMapServer`, :class:`FakeKillstream` and
:class:`FakeDiscord` on free ports and drives seeded scenarios (:class:`ScenarioStats`,
:func:`scenario_summary` and :func:`discord_summary` from :mod:`~.summary`). The individual
fakes are usable on their own for focused tests, as are fake ESI (:mod:`~.esi`), zKillboard
R2Z2 (:mod:`~.r2z2`) and the killstream's REST API (:mod:`~.killstream_rest`), each served by
:class:`AppServer`. :class:`~.process.SimProcess` runs the simulator in a process of its own
for the benchmarks; :mod:`~.ulid` makes the map's event ids.
"""

from wanderer_console.sim.discord import FakeDiscord, ReceivedMessage, webhook_url
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.killstream import FakeKillstream
from wanderer_console.sim.map_server import FakeMapServer
from wanderer_console.sim.server import AppServer
from wanderer_console.sim.simulator import SCENARIO_KINDS, ScenarioStats, Simulator
from wanderer_console.sim.summary import CarriedNotification, discord_summary, scenario_summary

__all__ = [
    "SCENARIO_KINDS",
    "AppServer",
    "CarriedNotification",
    "DataGenerator",
    "FakeDiscord",
    "FakeKillstream",
    "FakeMapServer",
    "ReceivedMessage",
    "ScenarioStats",
    "Simulator",
    "discord_summary",
    "scenario_summary",
    "webhook_url",
]
