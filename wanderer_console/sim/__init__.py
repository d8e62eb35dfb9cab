"""Local simulator: fake Wanderer map, fake wanderer-kills killstream and fake Discord.

Everything listens on 127.0.0.1 only and runs inside the caller's asyncio loop. Start with
:class:`Simulator`; the individual fakes are usable on their own for focused tests.
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
