"""A steady killmail load for benchmarks: kills in tracked systems at a fixed rate."""

from __future__ import annotations

import asyncio
import math
import random

from wanderer_console.sim.simulator import Simulator

__all__ = ["TICK", "KillLoad"]

TICK = 0.005
"""Seconds between load bursts."""


class KillLoad:
    """Pushes kills for tracked systems at a steady rate (catch-up is capped, never bursty)."""

    def __init__(self, sim: Simulator, rate: float, seed: int) -> None:
        self.sim = sim
        self.rate = rate
        self.pushed = 0
        """Kills pushed so far."""
        self._rng = random.Random(seed)
        self._systems = sorted(sim.tracked_system_ids)
        self._exclude = set(sim.tracked_character_ids)

    async def run(self) -> None:
        """Push until cancelled."""
        loop = asyncio.get_running_loop()
        started, sent = loop.time(), 0
        max_burst = max(1, math.ceil(self.rate * TICK * 4))
        while True:
            due = int((loop.time() - started) * self.rate) - sent
            for _ in range(min(due, max_burst)):
                kill = self.sim.generator.make_killmail(
                    system_id=self._rng.choice(self._systems), exclude_character_ids=self._exclude
                )
                await self.sim.killstream.push_kill(kill)
                sent += 1
                self.pushed += 1
            if due > max_burst:  # behind: drop the debt instead of bursting later
                started = loop.time() - sent / self.rate
            await asyncio.sleep(TICK)
