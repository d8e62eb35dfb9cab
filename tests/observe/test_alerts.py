"""Each alert rule driven into firing and back against the simulator.

One engine per test over the simulator, its config file watched, its alert engine evaluating
every 50 ms with small thresholds. Faults are real: the killstream refuses sockets, the fake
Discord answers 500 or 429, the pipeline stops reading its queue, the cache is asked to beat
a ratio it cannot. Each test checks the alert firing (the engine's list, ``wc_alert_firing``,
the history row, the message on the operations webhook) and its resolution (the list, the
metric, the history row closed, the resolved message).
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.store.pgtest import fresh_schema
from tests.support import connected, wait_for
from wanderer_console.config.alerts import RULES
from wanderer_console.config.loader import load_settings
from wanderer_console.launch import demo_config_text
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.store.backends import open_store
from wanderer_console.store.sqlite import DB_NAME

pytestmark = pytest.mark.timeout(120)

OPS = "ops"
"""The simulator's webhook the operations messages go to."""


def config_text(
    sim: Simulator, data: Path, rules: dict[str, dict[str, Any]], store_url: str | None = None
) -> str:
    """The demo config with an ``[alerts]`` section: fast evaluation, the operations webhook,
    every rule off except those in ``rules`` (on ``store_url``'s database when given)."""
    lines = [f'\n[store]\nurl = "{store_url}"'] if store_url else []
    lines += [
        "",
        "[alerts]",
        "interval_seconds = 0.05",
        "rate_window_seconds = 3",
        "cache_min_lookups = 1",
        "discord_min_interval_seconds = 0",
        f'discord_webhook_url = "{sim.webhook_url(OPS)}"',
    ]

    for rule in RULES:
        fields = rules.get(rule, {"enabled": False})
        lines.append(f"[alerts.{rule}]")
        lines += [f"{key} = {str(value).lower()}" for key, value in fields.items()]
    return demo_config_text(sim, data_dir=data) + "\n".join(lines) + "\n"


async def engine(
    sim: Simulator,
    tmp_path: Path,
    rules: dict[str, dict[str, Any]],
    store_url: str | None = None,
    **kwargs: Any,
) -> Runtime:
    data = tmp_path / "data"
    path = tmp_path / "config.toml"
    path.write_text(config_text(sim, data, rules, store_url), encoding="utf-8")
    path.chmod(0o600)
    runtime = Runtime(load_settings(path).settings, data_dir=data, config_path=path, **kwargs)
    await runtime.start()
    return runtime


@pytest.fixture
async def stopper() -> AsyncIterator[list[Runtime]]:
    started: list[Runtime] = []
    yield started
    for runtime in started:
        await runtime.stop()


def firing(runtime: Runtime, rule: str) -> list[dict[str, Any]]:
    return [alert for alert in runtime.alerts.firing() if alert["rule"] == rule]


def ops_titles(sim: Simulator) -> list[str]:
    return [
        embed["title"]
        for message in sim.discord.messages_for(sim.webhook_target(OPS))
        for embed in message.body.get("embeds", ())
    ]


async def fires_and_resolves(
    runtime: Runtime,
    sim: Simulator,
    rule: str,
    fault: Any,
    repair: Any,
    timeout: float = 30.0,
    *,
    quiet_first: bool = True,
) -> dict[str, Any]:
    """Cause ``fault``, see ``rule`` fire everywhere, ``repair``, see it resolve everywhere.

    First nothing fires for ``rule`` (unless ``quiet_first`` is off: a rule configured to fire
    from the start): a start slower than a rule's threshold (a loaded runner: a source still
    connecting after 0.3 s) fires it, and the alert stays listed until the next evaluation after
    the source connects; taken for the fault's, it named the wrong subject."""
    if quiet_first:
        await wait_for(lambda: not firing(runtime, rule), timeout, f"{rule} quiet first")
    await fault()
    alert = (await wait_for(lambda: firing(runtime, rule), timeout, f"{rule} firing"))[0]
    assert runtime.metrics.value("wc_alert_firing", rule=rule) == 1
    snapshot = runtime.console.snapshot_now()
    assert any(a.rule == rule for a in snapshot.alerts.firing)  # what the banner shows
    history = runtime.store.alert_history()
    assert any(r.rule == rule and r.resolved_at is None for r in history)
    await repair()
    await wait_for(lambda: not firing(runtime, rule), timeout, f"{rule} resolved")
    assert runtime.metrics.value("wc_alert_firing", rule=rule) == 0
    closed = [r for r in runtime.store.alert_history() if r.rule == rule]
    assert closed
    assert all(r.resolved_at is not None for r in closed)
    await wait_for(
        lambda: f"[RESOLVED] {rule}" in ops_titles(sim), timeout, f"{rule} resolved message"
    )
    titles = ops_titles(sim)
    # In order: the resolved message never comes before the firing message it closes.
    assert f"[FIRING] {rule}" in titles
    assert titles.index(f"[FIRING] {rule}") < titles.index(f"[RESOLVED] {rule}")
    return alert


async def test_a_disconnected_source(
    sim: Simulator, tmp_path: Path, stopper: list[Runtime]
) -> None:
    runtime = await engine(sim, tmp_path, {"source_disconnected": {"threshold": 0.3}})
    stopper.append(runtime)
    await connected(runtime)

    async def cut() -> None:
        sim.killstream.refuse_connections = True
        await sim.killstream.drop_connections()

    async def mend() -> None:
        sim.killstream.refuse_connections = False

    alert = await fires_and_resolves(runtime, sim, "source_disconnected", cut, mend)
    assert alert["subject"].startswith("killstream")
    assert alert["value"] > 0.3


@pytest.mark.postgresql
async def test_an_engine_on_postgresql_posts_its_alerts(sim: Simulator, tmp_path: Path) -> None:
    """On PostgreSQL the engine sends only the notifications of the maps whose lease it holds
    (several engines may share the database); the operations messages belong to no map, and
    were never sent, by one engine or several. Whoever holds the first map's lease sends them."""
    with fresh_schema() as url:
        runtime = await engine(
            sim, tmp_path, {"source_disconnected": {"threshold": 0.3}}, store_url=url.secret()
        )
        try:
            await connected(runtime)

            async def cut() -> None:
                sim.killstream.refuse_connections = True
                await sim.killstream.drop_connections()

            async def mend() -> None:
                sim.killstream.refuse_connections = False

            await fires_and_resolves(runtime, sim, "source_disconnected", cut, mend)
            await wait_for(
                lambda: runtime.store.outbox_counts().get("pending", 0) == 0,
                10.0,
                "nothing left pending",
            )
        finally:
            await runtime.stop()


@pytest.mark.parametrize("sim_options", [{"seed": 5, "gateway": True}])
async def test_a_disconnected_discord_gateway(
    sim: Simulator, tmp_path: Path, stopper: list[Runtime]
) -> None:
    """The bot's gateway (slash commands, voice for the rally pings) is a source like the
    others: unreachable past the threshold, the operator is told."""
    gateway = sim.gateway
    assert gateway is not None
    runtime = await engine(sim, tmp_path, {"source_disconnected": {"threshold": 0.3}})
    stopper.append(runtime)
    await connected(runtime)
    assert runtime.gateway is not None
    await wait_for(runtime.gateway.ready.is_set, 10, "the gateway session")

    async def cut() -> None:
        gateway.refuse_connections = True
        gateway.drop_connections()

    async def mend() -> None:
        gateway.refuse_connections = False

    alert = await fires_and_resolves(runtime, sim, "source_disconnected", cut, mend)
    assert alert["subject"] == runtime.gateway.health.name
    assert alert["value"] > 0.3


async def test_a_silent_map(sim: Simulator, tmp_path: Path, stopper: list[Runtime]) -> None:
    runtime = await engine(sim, tmp_path, {"map_silent": {"threshold": 1.0}})
    stopper.append(runtime)
    await connected(runtime)

    async def wait() -> None:
        pass  # nothing happens on the map: the silence is the fault

    async def speak() -> None:
        sim.map.add_system(sim.tracked_system_ids[0])  # any map event ends the silence

    alert = await fires_and_resolves(runtime, sim, "map_silent", wait, speak)
    assert alert["subject"] == f"sse:{sim.map_slug}"


async def test_a_stalled_discord(sim: Simulator, tmp_path: Path, stopper: list[Runtime]) -> None:
    rules = {
        "outbox_depth": {"threshold": 2},
        "outbox_oldest": {"threshold": 0.5},
        "delivery_failures": {"threshold": 1},
        "breaker_open": {"threshold": 0.2},
    }
    runtime = await engine(sim, tmp_path, rules)
    stopper.append(runtime)
    await connected(runtime)
    sim.discord.outage = (500, {"message": "stalled"}, {})
    await sim.run_scenario(1.0, rate=10)
    for rule in rules:
        await wait_for(lambda r=rule: firing(runtime, r), 30, f"{rule} firing")  # type: ignore[misc]
        assert runtime.metrics.value("wc_alert_firing", rule=rule) == 1
    # The firing messages wait in the outbox like everything else while Discord is down.
    assert not ops_titles(sim)
    sim.discord.outage = None
    for rule in rules:
        await wait_for(lambda r=rule: not firing(runtime, r), 60, f"{rule} resolved")  # type: ignore[misc]
        assert runtime.metrics.value("wc_alert_firing", rule=rule) == 0
    for rule in rules:
        await wait_for(lambda r=rule: f"[RESOLVED] {r}" in ops_titles(sim), 60, f"{rule} message")  # type: ignore[misc]
    # A breaker probing a stalled Discord opens again and again: each opening is an alert of
    # its own. Every alert in the history has its firing and resolved message, exactly once.
    await wait_for(lambda: not runtime.store.outbox_depth(), 30, "outbox drained")
    titles = ops_titles(sim)
    for rule in rules:
        fired = [r for r in runtime.store.alert_history() if r.rule == rule]
        assert fired
        assert all(r.resolved_at is not None for r in fired)
        assert titles.count(f"[FIRING] {rule}") == len(fired), titles
        assert titles.count(f"[RESOLVED] {rule}") == len(fired), titles


async def test_429s(sim: Simulator, tmp_path: Path, stopper: list[Runtime]) -> None:
    runtime = await engine(sim, tmp_path, {"rate_limited": {"threshold": 0.1}})
    stopper.append(runtime)
    await connected(runtime)

    async def limit() -> None:
        body = {"message": "You are being rate limited.", "retry_after": 0.1, "global": False}
        sim.discord.fail_next(429, body, {"retry-after": "0.1"}, times=3)
        await sim.run_scenario(0.5, rate=10)

    async def nothing() -> None:
        pass  # the window moves past the 429s

    await fires_and_resolves(runtime, sim, "rate_limited", limit, nothing)


async def test_a_saturated_queue(sim: Simulator, tmp_path: Path, stopper: list[Runtime]) -> None:
    runtime = await engine(sim, tmp_path, {"queue_saturation": {"threshold": 0.5}}, queue_size=4)
    stopper.append(runtime)
    await connected(runtime)

    async def stall() -> None:
        await runtime._tasks.cancel("pipeline")  # the pipeline stops reading: a fault to inject
        await sim.run_scenario(1.0, rate=20)

    async def resume() -> None:
        runtime._tasks.spawn("pipeline", runtime.worker.run)

    alert = await fires_and_resolves(runtime, sim, "queue_saturation", stall, resume)
    assert alert["value"] > 0.5


async def test_thresholds_apply_live(
    sim: Simulator, tmp_path: Path, stopper: list[Runtime]
) -> None:
    """The cache floor and the disk floor, each set past what the engine has, then back (the
    console's operation: saved to the file, applied at the next evaluation)."""
    runtime = await engine(
        sim,
        tmp_path,
        {"cache_hit_ratio": {"threshold": 1.01}, "disk_space": {"threshold": 1e12}},
    )
    stopper.append(runtime)
    await connected(runtime)

    async def lookups() -> None:
        # A miss (loaded from the fake ESI) and a hit: a ratio of 0.5, under the floor.
        system = sim.tracked_system_ids[0]
        assert await runtime.cache.get_system(system) is not None
        assert await runtime.cache.get_system(system) is not None

    async def lower_cache() -> None:
        result = await runtime.console.set_alert_rule(
            "cache_hit_ratio", "threshold", 0.0, actor="test"
        )
        assert result.ok, result.message

    await fires_and_resolves(runtime, sim, "cache_hit_ratio", lookups, lower_cache)

    async def nothing() -> None:
        pass

    async def lower_disk() -> None:
        result = await runtime.console.set_alert_rule("disk_space", "threshold", 0, actor="test")
        assert result.ok, result.message

    # Its floor is past the disk from the start: it fires before anything is done.
    await fires_and_resolves(runtime, sim, "disk_space", nothing, lower_disk, quiet_first=False)
    assert runtime.config_path is not None
    assert "[alerts.disk_space]" in runtime.config_path.read_text(encoding="utf-8")
    refused = await runtime.console.set_alert_rule("disk_space", "threshold", -1, actor="test")
    assert not refused.ok
    assert "alerts.disk_space.threshold" in refused.message
    assert runtime.settings.alerts.disk_space.threshold == 0


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
async def test_a_threshold_that_is_not_finite_is_refused(
    sim: Simulator, tmp_path: Path, stopper: list[Runtime], value: float
) -> None:
    """The control API's JSON spells ``Infinity`` and ``NaN``: a threshold of ``inf`` (bounded
    only from below) was saved and applied (a floor rule fired for ever, a ceiling one never);
    ``nan`` was refused as "not greater than or equal to 0". Both are now refused as what they
    are, naming the field, the file and the running settings as they were."""
    runtime = await engine(sim, tmp_path, {"disk_space": {"threshold": 0}})
    stopper.append(runtime)
    assert runtime.config_path is not None
    before = runtime.config_path.read_text(encoding="utf-8")
    refused = await runtime.console.set_alert_rule("disk_space", "threshold", value, actor="t")
    assert not refused.ok
    assert refused.message.startswith(
        "alerts.disk_space.threshold: Input should be a finite number"
    ), refused.message
    assert runtime.settings.alerts.disk_space.threshold == 0
    assert runtime.config_path.read_text(encoding="utf-8") == before


async def test_a_rule_posts_at_most_once_per_interval(
    sim: Simulator, tmp_path: Path, stopper: list[Runtime]
) -> None:
    runtime = await engine(sim, tmp_path, {"disk_space": {"threshold": 1e12}})
    stopper.append(runtime)
    path = runtime.config_path
    assert path is not None
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "discord_min_interval_seconds = 0", "discord_min_interval_seconds = 3600"
        ),
        encoding="utf-8",
    )
    assert runtime.reloader is not None
    runtime.reloader.reload(source="test")
    assert runtime.settings.alerts.discord_min_interval_seconds == 3600
    await wait_for(lambda: firing(runtime, "disk_space"), 10, "first firing")
    for threshold in (0, 1e12, 0):  # resolve, fire again (within the hour), resolve
        await runtime.console.set_alert_rule("disk_space", "threshold", threshold, actor="t")
        await wait_for(
            lambda t=threshold: bool(firing(runtime, "disk_space")) == (t > 0),  # type: ignore[misc]
            10,
            f"threshold {threshold} applied",
        )
    assert len([r for r in runtime.store.alert_history() if r.rule == "disk_space"]) == 2
    await wait_for(lambda: "[RESOLVED] disk_space" in ops_titles(sim), 10, "resolved message")
    await runtime.drain(timeout=5.0)
    # The second firing came within the interval: no message, and so no resolved one either.
    assert ops_titles(sim) == ["[FIRING] disk_space", "[RESOLVED] disk_space"]


async def test_an_alert_firing_at_a_stop_resolves_after_the_restart(
    sim: Simulator, tmp_path: Path
) -> None:
    runtime = await engine(sim, tmp_path, {"disk_space": {"threshold": 1e12}})
    try:
        await wait_for(lambda: firing(runtime, "disk_space"), 10, "firing")
        await wait_for(lambda: "[FIRING] disk_space" in ops_titles(sim), 10, "firing message")
    finally:
        await runtime.stop()
    again = await engine(sim, tmp_path, {"disk_space": {"threshold": 0}})
    try:
        history = again.store.alert_history()
        assert len(history) == 1  # the same alert, taken up again
        await wait_for(lambda: again.store.alert_history()[0].resolved_at is not None, 10, "closed")
        await wait_for(lambda: "[RESOLVED] disk_space" in ops_titles(sim), 10, "resolved message")
        assert again.metrics.value("wc_alert_firing", rule="disk_space") == 0
        assert ops_titles(sim).count("[FIRING] disk_space") == 1
    finally:
        await again.stop()


async def test_an_alert_firing_longer_than_the_retention_resolves_after_a_restart(
    sim: Simulator, tmp_path: Path
) -> None:
    """An alert fires, its message goes out, and it stays firing past ``retention_days``: the
    hourly retention runs (here the store's own statement, with the clock 31 days on) and the
    engine restarts. Its resolved message still follows when the condition clears, once."""
    runtime = await engine(sim, tmp_path, {"disk_space": {"threshold": 1e12}})
    try:
        await wait_for(lambda: firing(runtime, "disk_space"), 10, "firing")
        await wait_for(lambda: "[FIRING] disk_space" in ops_titles(sim), 10, "firing message")
        await wait_for(
            lambda: runtime.store.outbox_counts().get("pending", 0) == 0, 10, "message sent"
        )
    finally:
        await runtime.stop()
    store = open_store(tmp_path / "data" / DB_NAME)
    try:
        store.prune(before=time.time() + 31 * 86_400)  # the retention, 31 days later
    finally:
        store.close()
    again = await engine(sim, tmp_path, {"disk_space": {"threshold": 0}})
    try:
        await wait_for(lambda: again.store.alert_history()[0].resolved_at is not None, 10, "closed")
        await wait_for(lambda: "[RESOLVED] disk_space" in ops_titles(sim), 10, "resolved message")
        await again.drain(timeout=5.0)
        assert ops_titles(sim) == ["[FIRING] disk_space", "[RESOLVED] disk_space"]
    finally:
        await again.stop()


async def test_a_rule_without_a_measure_drops_its_value(
    sim: Simulator, tmp_path: Path, stopper: list[Runtime]
) -> None:
    """``wc_alert_value{rule}`` is the worst *current* measure: once a rule has none (the map
    stream is no longer connected, so no silence is measured), its sample goes away rather than
    keeping the last figure, which would keep Prometheus' ``WandererMapSilent`` firing."""
    runtime = await engine(sim, tmp_path, {"map_silent": {"threshold": 1e9}})
    stopper.append(runtime)
    await connected(runtime)
    registry = runtime.metrics.registry

    def value() -> float | None:
        return registry.get_sample_value("wc_alert_value", {"rule": "map_silent"})

    await wait_for(lambda: (value() or 0.0) > 0.0, 10, "a silence measured")
    sim.map.close()  # the stream ends and new ones are refused

    def map_down() -> bool:
        states = [s.health.snapshot()["state"] for s in runtime.maps.sources.values()]
        return bool(states) and all(state != "connected" for state in states)

    await wait_for(map_down, 10, "map stream down")
    seen = runtime.alerts.evaluations
    await wait_for(lambda: runtime.alerts.evaluations >= seen + 2, 10, "evaluations")
    assert value() is None


async def test_a_map_refused_again_and_again_is_disconnected_all_along(
    sim: Simulator, tmp_path: Path, stopper: list[Runtime]
) -> None:
    """A map stream answered 401 goes *failed*, then *reconnecting* at each retry, then *failed*
    again: each state lasts less than the threshold, but the source has not been connected since
    the first refusal, and that is what ``source_disconnected`` measures."""
    runtime = await engine(sim, tmp_path, {"source_disconnected": {"threshold": 1.0}})
    stopper.append(runtime)
    await connected(runtime)
    (source,) = runtime.maps.sources.values()
    source._refused_delay = 0.1  # retry a refused stream quickly (60 s as deployed)
    sim.map.api_key = "revoked"
    sim.map.drop_connections()
    await wait_for(lambda: source.health.reconnects >= 3, 10, "refused and retried")
    assert source.health.state.value in ("failed", "reconnecting")
    alert = (await wait_for(lambda: firing(runtime, "source_disconnected"), 10, "firing"))[0]
    assert alert["subject"] == f"sse:{sim.map_slug}"
    assert alert["value"] > 1.0


async def test_a_breaker_reopened_by_each_failed_probe_is_open_all_along(
    sim: Simulator, tmp_path: Path, stopper: list[Runtime]
) -> None:
    """Discord answers 500 and keeps answering it: the breaker opens, lets a probe through,
    opens again when it fails (its ``opened_at`` moving with each probe, every 0.25 s here, 30 s
    as deployed). Each opening is shorter than the threshold, yet the host has been failing
    since the first one: ``breaker_open`` fires, and resolves once Discord answers again."""
    runtime = await engine(sim, tmp_path, {"breaker_open": {"threshold": 2.0}})
    stopper.append(runtime)
    await connected(runtime)
    sim.discord.outage = (500, {"message": "stalled"}, {})

    async def stall() -> None:
        await sim.run_scenario(1.0, rate=10)  # notifications to send: the breaker is probed

    async def mend() -> None:
        sim.discord.outage = None
        # It resolves when the breaker closes, at the next request to Discord: new
        # notifications are due at once (the retries wait up to a minute after their failures).
        await sim.run_scenario(0.5, rate=10)

    alert = await fires_and_resolves(runtime, sim, "breaker_open", stall, mend, timeout=60.0)
    assert alert["value"] > 2.0


async def test_an_alert_not_posted_before_a_restart_posts_no_resolved_message(
    sim: Simulator, tmp_path: Path
) -> None:
    """A rule fires, resolves, fires again within ``discord_min_interval_seconds`` (no message
    for that second firing) and the engine stops. At the restart the condition is gone: the
    alert is closed, and no ``[RESOLVED]`` message follows the firing nobody was told of."""
    runtime = await engine(sim, tmp_path, {"disk_space": {"threshold": 1e12}})
    try:
        path = runtime.config_path
        assert path is not None
        assert runtime.reloader is not None
        path.write_text(
            path.read_text(encoding="utf-8").replace(
                "discord_min_interval_seconds = 0", "discord_min_interval_seconds = 3600"
            ),
            encoding="utf-8",
        )
        runtime.reloader.reload(source="test")
        await wait_for(lambda: firing(runtime, "disk_space"), 10, "first firing")
        for threshold in (0, 1e12):  # resolve, fire again within the hour
            await runtime.console.set_alert_rule("disk_space", "threshold", threshold, actor="t")
            await wait_for(
                lambda t=threshold: bool(firing(runtime, "disk_space")) == (t > 0),  # type: ignore[misc]
                10,
                f"threshold {threshold} applied",
            )
        await runtime.drain(timeout=5.0)
        assert ops_titles(sim) == ["[FIRING] disk_space", "[RESOLVED] disk_space"]
    finally:
        await runtime.stop()
    again = await engine(sim, tmp_path, {"disk_space": {"threshold": 0}})
    try:
        await wait_for(
            lambda: all(r.resolved_at is not None for r in again.store.alert_history()),
            10,
            "the second firing closed",
        )
        await again.drain(timeout=5.0)
        assert ops_titles(sim) == ["[FIRING] disk_space", "[RESOLVED] disk_space"]
    finally:
        await again.stop()


async def test_a_disk_that_cannot_be_measured_keeps_its_alert_firing(
    sim: Simulator, tmp_path: Path, stopper: list[Runtime]
) -> None:
    """The disk floor fires; then measuring free space fails (the data directory's file system
    unmounted, permission denied). An unknown measure is not a healthy one: the alert keeps
    firing, says why it cannot tell, nothing resolves (no history row closed, no resolved
    message), and each failed measure is logged and counted in ``wc_errors_total``. Once the
    disk can be measured again the rule goes on from the new measure."""
    runtime = await engine(sim, tmp_path, {"disk_space": {"threshold": 1e12}})
    stopper.append(runtime)
    await wait_for(lambda: firing(runtime, "disk_space"), 10, "disk_space firing")
    await wait_for(lambda: "[FIRING] disk_space" in ops_titles(sim), 10, "firing message")
    measurer = runtime.alerts._measurer

    def unmounted(path: Path) -> int:  # the fault: no real mount to pull from under a test
        raise OSError(5, "Input/output error", str(path))

    measurer._disk_free = unmounted
    seen = runtime.alerts.evaluations
    await wait_for(lambda: runtime.alerts.evaluations >= seen + 3, 10, "evaluations")
    (alert,) = firing(runtime, "disk_space")
    assert "cannot measure" in alert["detail"]
    assert "Input/output error" in alert["detail"]
    assert all(r.resolved_at is None for r in runtime.store.alert_history())
    assert "[RESOLVED] disk_space" not in ops_titles(sim)
    assert runtime.metrics.value("wc_alert_firing", rule="disk_space") == 1
    assert runtime.metrics.value("wc_errors_total", component="alerts:disk_space") >= 3
    assert "cannot measure" in (runtime.alerts.view()["last_error"] or "")
    await runtime.console.set_alert_rule("disk_space", "threshold", 0, actor="test")
    seen = runtime.alerts.evaluations
    await wait_for(lambda: runtime.alerts.evaluations >= seen + 3, 10, "evaluations")
    assert firing(runtime, "disk_space")  # not measured: still not known to be healthy
    # Measurable again: the free space is above the new floor.
    measurer._disk_free = lambda path: shutil.disk_usage(path).free
    await wait_for(lambda: not firing(runtime, "disk_space"), 10, "resolved once measured")
    assert runtime.alerts.view()["last_error"] is None


async def test_an_outbox_that_cannot_be_read_stops_no_other_rule(
    sim: Simulator, tmp_path: Path, stopper: list[Runtime]
) -> None:
    """Reading the outbox's oldest pending row fails (the database locked, the PostgreSQL
    server gone). That rule cannot tell, so its alerts stay as they are, the failure logged and
    counted; every other rule is still measured: the disk floor fires and posts meanwhile."""
    runtime = await engine(
        sim, tmp_path, {"disk_space": {"threshold": 1e12}, "outbox_oldest": {"threshold": 1e9}}
    )
    stopper.append(runtime)
    await wait_for(lambda: runtime.alerts.evaluations >= 1, 10, "a first evaluation")
    errors = runtime.metrics.value("wc_errors_total", component="alerts") or 0

    def locked(**_: Any) -> float | None:  # the fault: no real server to take down under a test
        raise sqlite3.OperationalError("database is locked")

    runtime.store.oldest_pending_at = locked  # type: ignore[method-assign]
    seen = runtime.alerts.evaluations
    await wait_for(lambda: runtime.alerts.evaluations >= seen + 3, 10, "evaluations")
    await wait_for(lambda: firing(runtime, "disk_space"), 10, "disk_space firing")
    await wait_for(lambda: "[FIRING] disk_space" in ops_titles(sim), 10, "firing message")
    assert not firing(runtime, "outbox_oldest")
    assert "database is locked" in (runtime.alerts.view()["last_error"] or "")
    assert runtime.metrics.value("wc_errors_total", component="alerts:outbox_oldest") >= 3
    assert (runtime.metrics.value("wc_errors_total", component="alerts") or 0) == errors


async def test_an_outbox_whose_depth_cannot_be_counted_stops_no_other_rule(
    sim: Simulator, tmp_path: Path, stopper: list[Runtime]
) -> None:
    """Counting the outbox's pending rows fails (the PostgreSQL server ended the connection, as
    the chaos cluster test's failover does). The depth rule cannot tell, so it is unmeasured,
    logged and counted; the alerts task goes on (it crashed and was restarted, every rule
    unmeasured meanwhile) and the engine's snapshot (the console, control status) still answers."""
    runtime = await engine(
        sim, tmp_path, {"disk_space": {"threshold": 1e12}, "outbox_depth": {"threshold": 1e9}}
    )
    stopper.append(runtime)
    await wait_for(lambda: runtime.alerts.evaluations >= 1, 10, "a first evaluation")
    errors = runtime.metrics.value("wc_errors_total", component="alerts") or 0

    def ended() -> dict[str, int]:  # the fault: no real server to take down under a test
        raise sqlite3.OperationalError("terminating connection due to administrator command")

    runtime.store.outbox_depth = ended  # type: ignore[method-assign]

    def said() -> bool:  # at the next count (the depth is counted at most once a second)
        return "terminating connection" in (runtime.alerts.view()["last_error"] or "")

    await wait_for(said, 10, "the failed count said")
    seen = runtime.alerts.evaluations
    await wait_for(lambda: runtime.alerts.evaluations >= seen + 3, 10, "evaluations")
    await wait_for(lambda: firing(runtime, "disk_space"), 10, "disk_space firing")
    assert not firing(runtime, "outbox_depth")
    assert said()
    assert runtime.metrics.value("wc_errors_total", component="alerts:outbox_depth") >= 3
    assert (runtime.metrics.value("wc_errors_total", component="alerts") or 0) == errors
    assert "delivery" in runtime.snapshot()
