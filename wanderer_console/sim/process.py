"""The simulator in a process of its own, driven over stdin/stdout (for benchmarks).

In production the map, the killstream and Discord are other machines; a benchmark that runs the
fakes and their load generator inside the console's process charges their CPU, their heap (which
the garbage collector walks) and their event-loop turns to the console. :class:`SimProcess`
starts ``python -m wanderer_console.sim.process`` instead and talks to it in JSON lines:

- the child prints ``{"ready": {...}}`` with every address the console needs (:class:`SimAddress`);
- ``{"rate": N}`` starts (or changes) a steady kill load of N per second; answer ``{"ok": true}``;
- ``{"stats": true}`` answers ``{"pushed": n, "delivered": m}`` (kills pushed, Discord messages);
- end of input stops the simulator and the process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.sim.load import KillLoad
from wanderer_console.sim.simulator import Simulator

__all__ = ["WEBHOOK_NAMES", "SimAddress", "SimProcess", "main"]

WEBHOOK_NAMES = ("primary", "system-kills", "character-kills", "rally")
"""The webhooks the demo configuration names (``launch.demo_config_text``)."""
READY_TIMEOUT = 30.0
"""Seconds the child gets to start its servers."""


@dataclass(frozen=True)
class SimAddress:
    """Where a simulator in another process listens: what ``demo_settings`` reads from one."""

    map_url: str
    map_slug: str
    map_api_key: str
    killstream_url: str
    killstream_rest_url: str
    esi_url: str
    discord_api_url: str
    bot_token: str
    webhooks: dict[str, str]
    tracked_system_ids: list[int] = field(default_factory=list)
    tracked_character_ids: list[int] = field(default_factory=list)
    killstream_rest: bool = True
    """The child serves the killstream REST fallback (``demo_config_text`` checks it)."""

    def webhook_url(self, name: str) -> str:
        """The webhook URL the child registered for ``name``."""
        return self.webhooks[name]

    @classmethod
    def of(cls, sim: Simulator) -> SimAddress:
        """The addresses of a started simulator."""
        return cls(
            map_url=sim.map_url,
            map_slug=sim.map_slug,
            map_api_key=sim.map_api_key,
            killstream_url=sim.killstream_url,
            killstream_rest_url=sim.killstream_rest_url,
            esi_url=sim.esi_url,
            discord_api_url=sim.discord_api_url,
            bot_token=sim.bot_token,
            webhooks={name: sim.webhook_url(name) for name in WEBHOOK_NAMES},
            tracked_system_ids=sorted(sim.tracked_system_ids),
            tracked_character_ids=sorted(sim.tracked_character_ids),
        )


class SimProcess:
    """A simulator child process (``async with``): start, drive the load, read counters."""

    def __init__(self, *, seed: int = 1, discord_webhook_limit: int = 10**9) -> None:
        self._args = [
            "--seed",
            str(seed),
            "--discord-webhook-limit",
            str(discord_webhook_limit),
        ]
        self._proc: asyncio.subprocess.Process | None = None
        self.address: SimAddress | None = None
        """Set once the child is ready."""

    async def __aenter__(self) -> SimProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wanderer_console.sim.process",
            *self._args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            ready = await asyncio.wait_for(self._read(), READY_TIMEOUT)
            self.address = SimAddress(**ready["ready"])
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    async def set_rate(self, rate: float) -> None:
        """Start or change the kill load (kills per second)."""
        await self._ask({"rate": rate})

    async def stats(self) -> dict[str, int]:
        """Kills pushed and Discord messages received so far."""
        answer = await self._ask({"stats": True})
        return {"pushed": int(answer["pushed"]), "delivered": int(answer["delivered"])}

    async def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        proc = self._running()
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(message).encode() + b"\n")
        await proc.stdin.drain()
        return await asyncio.wait_for(self._read(), 10.0)

    async def _read(self) -> dict[str, Any]:
        proc = self._running()
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if not line:
            raise RuntimeError(f"simulator process ended (exit {await proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _running(self) -> asyncio.subprocess.Process:
        if self._proc is None:
            raise RuntimeError("simulator process not started")
        return self._proc

    async def _close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _serve(seed: int, webhook_limit: int) -> None:
    sim = Simulator(
        seed=seed,
        discord_webhook_limit=webhook_limit,
        discord_webhook_window=1.0,
        killstream_rest=True,
    )
    await sim.start()
    load: KillLoad | None = None
    feeder: asyncio.Task[None] | None = None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    try:
        say({"ready": SimAddress.of(sim).__dict__})
        while line := await reader.readline():
            request = json.loads(line)
            if "rate" in request:
                if feeder is not None:
                    feeder.cancel()
                load = KillLoad(sim, float(request["rate"]), seed)
                feeder = asyncio.create_task(load.run())
                say({"ok": True})
            elif "stats" in request:
                say(
                    {
                        "pushed": 0 if load is None else load.pushed,
                        "delivered": len(sim.discord.received),
                    }
                )
            else:
                say({"error": f"unknown request {sorted(request)}"})
    finally:
        if feeder is not None:
            await cancel_and_wait([feeder])
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until standard input closes."""
    parser = argparse.ArgumentParser(
        prog="python -m wanderer_console.sim.process", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--discord-webhook-limit", type=int, default=10**9)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.seed, args.discord_webhook_limit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
