"""Nothing posted twice, nothing lost: a second engine, graceful stops and crashes mid-delivery.

Each test runs the real engine as a subprocess (``python -m wanderer_console --no-ui``) against
the simulator's fake Discord, which answers 0.4 s after posting (so a stop or a crash lands with
requests in flight) and honours ``nonce``/``enforce_nonce`` as Discord does. Kills in tracked
systems go to a bot channel, kills of tracked pilots elsewhere to a webhook, so both transports
are judged in one run. What reached the fake Discord is counted per target and killmail id.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.support import kill_id, start_headless, wait_for
from wanderer_console.sim import Simulator
from wanderer_console.store.lock import lock_holder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

BOT_CHANNEL = "100000000000000009"
PER_TARGET = 150


def _config(sim: Simulator, path: Path) -> Path:
    path.write_text(
        f"""
[console]
startup_suppression_seconds = 0
stop_grace_seconds = 5
[discord]
api_url = "{sim.discord_api_url}"
bot_token = "{sim.bot_token}"
uncertain_retry_seconds = 1
[esi]
enabled = false
[killstream]
websocket_url = "{sim.killstream_url}"
[maps.home]
url = "{sim.map_url}"
slug = "{sim.map_slug}"
api_key = "{sim.map_api_key}"
[maps.home.discord]
system_kill_channel_id = "{BOT_CHANNEL}"
character_kill_webhook_url = "{sim.webhook_url("pilots")}"
"""
    )
    return path


def _rows(db: Path) -> list[tuple[str, str, int]]:
    """``(status, target_kind, uncertain)`` of every outbox row, read beside the engine."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT status, target_kind, uncertain FROM outbox").fetchall()
    except sqlite3.OperationalError:
        return []  # not created yet
    finally:
        conn.close()


def _kept_uncertain(db: Path) -> set[int]:
    """Killmail ids of the rows kept ``uncertain`` (probably delivered, never sent a third time:
    a kill that cut a send and then its one re-send leaves no way to know whether it posted)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        keys = conn.execute("SELECT dedup_key FROM outbox WHERE status = 'uncertain'").fetchall()
    finally:
        conn.close()
    return {int(str(key).split(":")[1]) for (key,) in keys}


def _posted(sim: Simulator) -> dict[str, Counter[int]]:
    """Killmail ids posted per target (``channel:…`` / ``webhook:…``), with repeats counted."""
    out: dict[str, Counter[int]] = {}
    for message in sim.discord.received:
        for embed in message.body.get("embeds") or []:
            killmail_id = kill_id(embed)
            if killmail_id is not None:
                out.setdefault(message.target, Counter())[killmail_id] += 1
    return out


async def _push_backlog(sim: Simulator) -> tuple[set[int], set[int]]:
    """Kills for the bot channel (tracked systems) and the webhook (tracked pilots elsewhere)."""
    gen = sim.generator
    systems = sorted(sim.tracked_system_ids)
    pilots = sorted(sim.tracked_character_ids)
    elsewhere = gen.new_system(wormhole=False).system_id
    bot_ids: set[int] = set()
    hook_ids: set[int] = set()
    for i in range(PER_TARGET):
        km = gen.make_killmail(system_id=systems[i % len(systems)], exclude_character_ids=pilots)
        bot_ids.add(int(km["killmail_id"]))
        await sim.killstream.push_kill(km)
        km = gen.make_killmail(system_id=elsewhere, victim_character_id=pilots[i % len(pilots)])
        hook_ids.add(int(km["killmail_id"]))
        await sim.killstream.push_kill(km)
    return bot_ids, hook_ids


class Engine:
    """The engine subprocess, started and stopped again and again on one data directory."""

    def __init__(self, config: Path, data: Path) -> None:
        self.config = config
        self.data = data
        self.db = data / "wanderer-console.db"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> asyncio.subprocess.Process:
        # Every start's log lines, kept beside the data directory: a failure is read there.
        with (self.data.parent / "engine.log").open("ab") as log_file:
            self.proc = proc = await start_headless(self.config, self.data, stdout=log_file)
        # The lock names our PID once the engine is built, after its signal handlers are in
        # place: a signal from then on is handled, never the default abrupt end.
        await wait_for(
            lambda: (h := lock_holder(self.data)) is not None and h.pid == proc.pid,
            timeout=30,
            what="the engine to take its lock",
        )
        return proc

    async def stop(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        _, err = await asyncio.wait_for(self.proc.communicate(), timeout=30)
        if sig is not signal.SIGKILL:
            assert self.proc.returncode == 0, err.decode()[-2000:]

    def running(self) -> bool:
        """True while the engine runs; an engine that exited by itself fails the test at once
        (a wait for its backlog would only time out), naming its exit code and its log."""
        if self.proc is not None and self.proc.returncode is not None:
            raise AssertionError(
                f"the engine exited by itself with code {self.proc.returncode};"
                f" its log: {self.data.parent / 'engine.log'}"
            )
        return True

    def kill_now(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()


async def _run_with_stops(
    tmp_path: Path, signals: list[signal.Signals], seed: int
) -> tuple[Simulator, dict[str, Counter[int]], set[int], set[int], list[tuple[str, str, int]]]:
    rng = random.Random(seed)
    sim = Simulator(seed=seed)
    sim.discord.answer_delay = 0.4
    await sim.start()
    engine = Engine(_config(sim, tmp_path / "config.toml"), tmp_path / "data")
    try:
        await engine.start()
        await wait_for(lambda: sim.killstream.joined_clients >= 2, 30, "the killstream joins")
        bot_ids, hook_ids = await _push_backlog(sim)
        total = len(bot_ids) + len(hook_ids)
        await wait_for(lambda: len(_rows(engine.db)) == total, 60, "the whole backlog queued")
        for sig in signals:
            await asyncio.sleep(rng.uniform(0.2, 2.0))  # a random moment of the delivery
            await engine.stop(sig)
            await engine.start()
        # Sent, or (a webhook message whose one re-send a kill cut too) kept as probably
        # delivered rather than posted a third time.
        await wait_for(
            lambda: (
                engine.running()
                and {status for status, _kind, _n in _rows(engine.db)} <= {"sent", "uncertain"}
            ),
            240,
            "every notification sent or kept as probably delivered",
        )
        await engine.stop(signal.SIGTERM)
        rows = _rows(engine.db)
    finally:
        engine.kill_now()
        await sim.stop()
    return sim, _posted(sim), bot_ids, hook_ids, rows


async def test_sigterm_and_sighup_at_30_random_moments_lose_nothing_and_post_nothing_twice(
    tmp_path: Path,
) -> None:
    signals = [signal.SIGTERM, signal.SIGHUP] * 15
    _sim, posted, bot_ids, hook_ids, rows = await _run_with_stops(tmp_path, signals, seed=31)
    bot = posted[f"channel:{BOT_CHANNEL}"]
    hook = next(counter for target, counter in posted.items() if target.startswith("webhook:"))
    assert set(bot) == bot_ids  # nothing lost
    assert set(hook) == hook_ids
    assert [k for k, n in bot.items() if n > 1] == []  # nothing posted twice
    assert [k for k, n in hook.items() if n > 1] == []
    # Graceful stops let requests in flight finish: no outcome was ever unknown.
    assert sum(n for _status, _kind, n in rows) == 0


async def test_kill_9_at_20_random_moments_loses_nothing_and_doubles_only_uncertain_webhooks(
    tmp_path: Path,
) -> None:
    sim, posted, bot_ids, hook_ids, rows = await _run_with_stops(
        tmp_path, [signal.SIGKILL] * 20, seed=97
    )
    bot = posted[f"channel:{BOT_CHANNEL}"]
    hook = next(counter for target, counter in posted.items() if target.startswith("webhook:"))
    assert set(bot) == bot_ids
    # Nothing lost: a webhook kill missing from Discord is one kept uncertain for the operator.
    assert set(hook) <= hook_ids
    assert hook_ids - set(hook) <= _kept_uncertain(tmp_path / "data" / "wanderer-console.db")
    # Bot messages are re-sent with their nonce: Discord answers with the original.
    assert [k for k, n in bot.items() if n > 1] == []
    assert sim.discord.nonce_replays >= 1, "some crash should have landed mid-request"
    assert {kind for status, kind, _n in rows if status == "uncertain"} <= {"webhook"}
    assert max(hook.values()) <= 2  # never a third post
    # A webhook message can double only where its outcome was unknown, and that is counted.
    doubled = sum(n - 1 for n in hook.values())
    uncertain = sum(n for _status, kind, n in rows if kind == "webhook")
    assert doubled <= uncertain


async def test_second_engine_on_a_data_dir_in_use_refuses_and_read_only_commands_work(
    tmp_path: Path,
) -> None:
    async with Simulator(seed=5) as sim:
        config = _config(sim, tmp_path / "config.toml")
        data = tmp_path / "data"
        first = Engine(config, data)
        proc = await first.start()
        try:
            await wait_for(lambda: sim.killstream.joined_clients >= 2, 30, "the killstream joins")
            bot_ids, hook_ids = await _push_backlog(sim)
            second = await start_headless(config, data)
            _, err = await asyncio.wait_for(second.communicate(), timeout=30)
            message = err.decode()
            assert second.returncode == 3, message
            assert f"in use by another engine (PID {proc.pid}" in message
            assert "Traceback" not in message
            for command in (
                ["config", "history"],
                ["replay", "--since", "1h", "--dry-run", "--no-rest"],
                ["tenant", "list"],
                ["outbox", "list"],
            ):
                tool = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "wanderer_console",
                    *command,
                    "--config",
                    str(config),
                    "--data-dir",
                    str(data),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                out, err = await asyncio.wait_for(tool.communicate(), timeout=60)
                assert tool.returncode == 0, (command, err.decode())
                # replay's summary is the last line on stderr (after any config warning)
                json.loads((out if out.strip() else err).decode().splitlines()[-1])
            await wait_for(
                lambda: {s for s, _k, _n in _rows(first.db)} == {"sent"}, 120, "all sent"
            )
            await first.stop(signal.SIGTERM)
        finally:
            first.kill_now()
        posted = _posted(sim)
    assert set(posted[f"channel:{BOT_CHANNEL}"]) == bot_ids
    assert all(n == 1 for counter in posted.values() for n in counter.values())
    # One process drove the outbox: every row was attempted exactly once.
    conn = sqlite3.connect(data / "wanderer-console.db")
    try:
        attempts = conn.execute("SELECT attempts, COUNT(*) FROM outbox GROUP BY 1").fetchall()
    finally:
        conn.close()
    assert attempts == [(1, len(bot_ids) + len(hook_ids))]
