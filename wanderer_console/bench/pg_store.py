"""PostgreSQL next to SQLite: the ingest and delivery scenarios on both store backends, in one run.

Run only when a PostgreSQL database is given (``bench --database URL``, else the
``WANDERER_CONSOLE_TEST_PG`` variable the tests use). Everything is written to a scratch schema
of its own (``wc_bench_<random>``, dropped at the end), so the database's own tables are never
touched; the user needs the right to create a schema there (a scratch database is best).

* **Ingest** (:mod:`~wanderer_console.bench.ingest`'s path): killmails per second from the fake
  killstream's socket to the store, kill notifications off. Two consoles run side by side, each
  over its own simulator, one on SQLite and one on PostgreSQL, and their rounds alternate (which
  one goes first alternates too), so a change of the machine's speed falls on both alike; the
  ratio is the median of each round pair's PostgreSQL/SQLite ratio.
* **Delivery** (:mod:`~wanderer_console.bench.delivery`'s burst): the share of the Discord-limit
  ceiling a burst to one webhook reaches, on each backend (with the suite's window scale). Under
  Discord's limits the store is not the bottleneck: the shares should match.
* **Delivery, limits lifted**: the same dispatcher with the fake's limits and the channel pacing
  out of the way, so the rate is what claiming, sending and marking rows costs on each backend
  (the store's round trips show here, if anywhere); a few bursts per backend, alternating, the
  ratio the median of each pair's.
* **Two instances** (:mod:`~wanderer_console.bench.pg_cluster`): a burst over four maps
  delivered by one engine process, then by two sharing one PostgreSQL database (each sending for
  the maps it leases), limits lifted: kills per second of each and the two/one ratio, every kill
  exactly once.

Lost notifications or kills, and 429s, are failures of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import SecretStr

from wanderer_console.bench.delivery import ceiling_seconds
from wanderer_console.bench.harness import Rig, console_over_simulator, numbered_frames
from wanderer_console.config.model import Settings
from wanderer_console.delivery.discord import DiscordSender
from wanderer_console.delivery.dispatcher import Dispatcher, ResolvedTarget
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.http.client import HttpClient
from wanderer_console.sim.discord import FakeDiscord, webhook_url
from wanderer_console.sim.server import AppServer
from wanderer_console.store.base import DatabaseUrl, Store
from wanderer_console.store.postgres import PostgresStore
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

__all__ = [
    "NO_CLUSTER_WHY",
    "PG_URL_ENV",
    "PgSizes",
    "bench_url",
    "deliver_burst",
    "run_ingest_pair",
    "run_pg_bench",
    "scratch_schema",
]

PG_URL_ENV: Final = "WANDERER_CONSOLE_TEST_PG"
"""The variable naming a PostgreSQL database when ``--database`` is not given."""
_FIRST_ID: Final = 900_000_000
"""Killmail ids of this benchmark's kills."""


@dataclass(frozen=True, slots=True)
class PgSizes:
    """How much work the PostgreSQL comparison does."""

    ingest_killmails: int
    """Per backend, over all rounds."""
    ingest_rounds: int
    delivery_notifications: int
    delivery_window_scale: float
    unlimited_notifications: int
    unlimited_rounds: int = 3
    """Bursts per backend with the limits lifted, alternating (the figures are medians)."""
    two_instance_kills: int | None = None
    """The two-instance run's burst; ``None`` leaves the run out."""


def bench_url(given: str | None = None) -> DatabaseUrl | None:
    """The database to compare on: ``given``, else ``$WANDERER_CONSOLE_TEST_PG``, else None."""
    text = (given or os.environ.get(PG_URL_ENV, "")).strip()
    return DatabaseUrl(text) if text else None


@contextlib.contextmanager
def scratch_schema(url: DatabaseUrl) -> Iterator[DatabaseUrl]:
    """A new schema in ``url``'s database (dropped afterwards), as a URL whose connections
    work in it (``search_path``)."""
    import psycopg

    name = f"wc_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url.secret(), autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE SCHEMA "{name}"'.encode())
    joiner = "&" if "?" in url.secret() else "?"
    try:
        yield DatabaseUrl(f"{url.secret()}{joiner}options=-csearch_path%3D{name}")
    finally:
        with psycopg.connect(url.secret(), autocommit=True, connect_timeout=5) as admin:
            admin.execute("SET lock_timeout = '10s'")
            admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'.encode())


def _ratio(pg: float, lite: float) -> float | None:
    return round(pg / lite, 3) if lite else None


# -- ingest ----------------------------------------------------------------------------------------


async def _ingest_round(rig: Rig, templates: list[dict[str, Any]], first: int, count: int) -> Any:
    """One round of ``count`` new kills through ``rig``: (killmails per second, lost)."""
    sim, store = rig.sim, rig.runtime.store
    frames = numbered_frames(templates, first, count)
    baseline, written = store.event_count(), store.events_written
    wires = sim.killstream.wire_frames(frames)
    os.sync()
    started = time.perf_counter()
    sim.killstream.write_wire(wires)
    deadline = started + 300
    while store.events_written - written < count:
        if time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.005)
    elapsed = (store.last_write_at or time.perf_counter()) - started
    stored = store.event_count() - baseline
    return stored / max(elapsed, 1e-9), count - stored


async def run_ingest_pair(
    url: DatabaseUrl, killmails: int, rounds: int, *, seed: int = 7
) -> dict[str, Any]:
    """Ingest on SQLite and on PostgreSQL, alternating rounds; rates are medians."""

    def lite(settings: Settings) -> None:
        settings.notifications.kill = False

    def pg(settings: Settings) -> None:
        settings.notifications.kill = False
        settings.store.url = SecretStr(url.secret())

    per_round = max(1, killmails // rounds)
    rates: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    lost = 0
    async with (
        console_over_simulator(seed=seed, configure=lite) as on_sqlite,
        console_over_simulator(seed=seed, configure=pg) as on_pg,
    ):
        assert isinstance(on_pg.runtime.store, PostgresStore)
        rigs = {"sqlite": on_sqlite, "postgresql": on_pg}
        tracked = sorted(on_sqlite.sim.tracked_system_ids)
        templates = [
            on_sqlite.sim.generator.make_killmail(system_id=tracked[i % len(tracked)])
            for i in range(min(per_round, 2_000))
        ]
        for round_no in range(rounds):
            order = ["sqlite", "postgresql"] if round_no % 2 == 0 else ["postgresql", "sqlite"]
            for backend in order:
                rate, missing = await _ingest_round(
                    rigs[backend], templates, _FIRST_ID + round_no * per_round, per_round
                )
                rates[backend].append(rate)
                lost += missing
                await asyncio.sleep(0.2)  # the other's background work (checkpoints) settles
    ratios = [p / s for p, s in zip(rates["postgresql"], rates["sqlite"], strict=True)]
    sqlite_rate = statistics.median(rates["sqlite"])
    pg_rate = statistics.median(rates["postgresql"])
    return {
        "killmails_per_backend": per_round * rounds,
        "rounds": rounds,
        "lost": lost,
        "sqlite_killmails_per_second": round(sqlite_rate, 1),
        "postgresql_killmails_per_second": round(pg_rate, 1),
        "pg_sqlite_ratio": round(statistics.median(ratios), 3),
        "per_round": [
            {"sqlite": round(s, 1), "postgresql": round(p, 1), "ratio": round(p / s, 3)}
            for s, p in zip(rates["sqlite"], rates["postgresql"], strict=True)
        ],
    }


# -- delivery --------------------------------------------------------------------------------------


async def deliver_burst(
    open_store: Callable[[], Store],
    notifications: int,
    *,
    webhook_limit: int = 5,
    webhook_window: float = 2.0,
    channel_limit: int = 30,
    channel_window: float = 60.0,
) -> dict[str, Any]:
    """One burst to one webhook of the fake Discord from the store ``open_store`` makes (as
    :func:`~wanderer_console.bench.delivery.run_delivery_bench`, on any backend)."""
    discord = FakeDiscord(
        webhook_limit=webhook_limit,
        webhook_window=webhook_window,
        channel_per_minute=channel_limit,
        channel_window=channel_window,
    )
    async with AppServer(discord.app) as server:
        store = open_store()
        metrics = Metrics()
        http = HttpClient("discord", metrics=metrics)
        target = Target(TargetKind.WEBHOOK, webhook_url(server.url, 1), "bench")
        targets = {("bench", target.key): ResolvedTarget(target)}
        dispatcher = Dispatcher(
            store,
            DiscordSender(http, api_url=f"{server.url}/api/v10", user_agent="bench"),
            metrics,
            lambda: targets,
            poll_interval=0.05,
            channel_per_minute=channel_limit,
            channel_window=channel_window,
        )
        try:
            store.enqueue(
                [
                    Notification(
                        "bench",
                        NotificationType.KILL,
                        f"kill:{i}",
                        target,
                        {"embeds": [{"title": f"Kill {i}", "description": "x" * 200}]},
                    )
                    for i in range(notifications)
                ]
            )
            started = time.time()
            task = asyncio.create_task(dispatcher.run())
            deadline = time.perf_counter() + 10 * channel_window + 60
            # The dispatcher's own counter (in memory): polling the store would tax the store
            # being measured.
            while metrics.value("wc_notifications_delivered_total", type="kill") < notifications:
                if time.perf_counter() > deadline:
                    break
                await asyncio.sleep(0.005)
            done_at = time.time()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            sent = store.outbox_counts().get("sent", 0)
        finally:
            await http.aclose()
            store.close()
    first_at = discord.received[0].at if discord.received else started
    last_at = discord.received[-1].at if discord.received else done_at
    elapsed = max(last_at - first_at, 1e-9)
    ceiling = ceiling_seconds(
        notifications,
        per_message=10,
        webhook_limit=webhook_limit,
        webhook_window=webhook_window,
        channel_limit=channel_limit,
        channel_window=channel_window,
    )
    return {
        "notifications": notifications,
        "delivered": sent,
        "lost": notifications - sent,
        "messages": len(discord.received),
        "rejected_429": discord.rejected_429,
        "seconds": round(elapsed, 3),
        "seconds_to_all_marked_sent": round(done_at - started, 3),
        "delivered_per_second": round(notifications / max(done_at - started, 1e-9), 2),
        "share_of_ceiling": round(min(ceiling / elapsed, 1.0), 3) if ceiling else 1.0,
    }


async def _burst_on(
    backend: str, url: DatabaseUrl, notifications: int, **limits: Any
) -> dict[str, Any]:
    """One burst from a fresh SQLite file or a fresh PostgreSQL schema."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="wc-bench-") as tmp:
            return await deliver_burst(
                lambda: SqliteStore(Path(tmp) / "bench.db"), notifications, **limits
            )
    with scratch_schema(url) as fresh:
        return await deliver_burst(lambda: PostgresStore(fresh), notifications, **limits)


async def _delivery_pair(
    url: DatabaseUrl, notifications: int, rounds: int = 1, **limits: Any
) -> dict[str, dict[str, Any]]:
    """The same burst on each backend, ``rounds`` times alternating (which goes first
    alternates too); with several rounds each backend's result is its median round by rate,
    its ``rounds`` listing them all, and ``ratios`` each round pair's PostgreSQL/SQLite rate."""
    runs: dict[str, list[dict[str, Any]]] = {"sqlite": [], "postgresql": []}
    for round_no in range(rounds):
        order = ["sqlite", "postgresql"] if round_no % 2 == 0 else ["postgresql", "sqlite"]
        for backend in order:
            runs[backend].append(await _burst_on(backend, url, notifications, **limits))
    out: dict[str, dict[str, Any]] = {}
    for backend, results in runs.items():
        ranked = sorted(results, key=lambda r: float(r["delivered_per_second"]))
        median = dict(ranked[len(ranked) // 2])
        if rounds > 1:
            median["delivered_per_second"] = round(
                statistics.median(float(r["delivered_per_second"]) for r in results), 2
            )
            median["lost"] = sum(int(r["lost"]) for r in results)
            median["rejected_429"] = sum(int(r["rejected_429"]) for r in results)
            median["rounds"] = [r["delivered_per_second"] for r in results]
        out[backend] = median
    if rounds > 1:
        out["ratios"] = {
            "per_round": [
                round(float(p["delivered_per_second"]) / float(s["delivered_per_second"]), 3)
                for s, p in zip(runs["sqlite"], runs["postgresql"], strict=True)
            ]
        }
    return out


def _delivery_figures(pair: dict[str, dict[str, Any]]) -> dict[str, Any]:
    lite, pg = pair["sqlite"], pair["postgresql"]
    per_round = (pair.get("ratios") or {}).get("per_round")
    ratio = (
        round(statistics.median(per_round), 3)
        if per_round
        else _ratio(pg["delivered_per_second"], lite["delivered_per_second"])
    )
    return {
        "sqlite": lite,
        "postgresql": pg,
        "sqlite_share_of_ceiling": lite["share_of_ceiling"],
        "postgresql_share_of_ceiling": pg["share_of_ceiling"],
        "sqlite_delivered_per_second": lite["delivered_per_second"],
        "postgresql_delivered_per_second": pg["delivered_per_second"],
        "pg_sqlite_ratio": ratio,
        **({"ratio_per_round": per_round} if per_round else {}),
        "lost": lite["lost"] + pg["lost"],
        "rejected_429": lite["rejected_429"] + pg["rejected_429"],
    }


# -- two instances ---------------------------------------------------------------------------------


NO_CLUSTER_WHY: Final = (
    "this build has no multi-instance support (wanderer_console.cluster): one engine per database"
)
"""Why the two-instance delivery run is absent from the result on such a build."""


def _two_instances_missing() -> str | None:
    try:
        import wanderer_console.cluster  # noqa: F401
    except ImportError:
        return NO_CLUSTER_WHY
    return None


# -- the scenario ----------------------------------------------------------------------------------


async def run_pg_bench(
    url: DatabaseUrl,
    sizes: PgSizes,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Ingest and delivery on both backends; the PostgreSQL/SQLite ratio of each."""
    say = progress or (lambda _text: None)
    started = time.perf_counter()
    with scratch_schema(url) as fresh:
        say("bench: postgresql: ingest, SQLite and PostgreSQL rounds alternating ...")
        ingest = await run_ingest_pair(fresh, sizes.ingest_killmails, sizes.ingest_rounds)
    scale = sizes.delivery_window_scale
    say("bench: postgresql: delivery under Discord's limits, each backend ...")
    limited = _delivery_figures(
        await _delivery_pair(
            url,
            sizes.delivery_notifications,
            webhook_window=2.0 / scale,
            channel_window=60.0 / scale,
        )
    )
    limited["window_scale"] = scale
    say("bench: postgresql: delivery with the limits lifted, each backend ...")
    unlimited = _delivery_figures(
        await _delivery_pair(
            url,
            sizes.unlimited_notifications,
            sizes.unlimited_rounds,
            webhook_limit=1_000_000,
            webhook_window=1.0,
            channel_limit=1_000_000,
        )
    )
    cluster: dict[str, Any]
    missing = _two_instances_missing()
    if missing is not None:
        cluster = {"available": False, "why": missing}
    elif sizes.two_instance_kills is None:
        cluster = {"available": False, "why": "not run at these sizes"}
    else:
        from wanderer_console.bench.pg_cluster import run_two_instances

        cluster = await run_two_instances(
            url, sizes.two_instance_kills, schema=scratch_schema, progress=say
        )
    server = _server_version(url)
    return {
        "scenario": "postgresql",
        "database": str(url),
        "server_version": server,
        "ingest": ingest,
        "delivery": limited,
        "delivery_unlimited": unlimited,
        "two_instances": cluster,
        "lost": ingest["lost"] + limited["lost"] + unlimited["lost"] + cluster.get("lost", 0),
        "doubled": cluster.get("doubled", 0),
        "rejected_429": limited["rejected_429"] + cluster.get("rejected_429", 0),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _server_version(url: DatabaseUrl) -> str | None:
    import psycopg

    with psycopg.connect(url.secret(), autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return None if row is None else str(row[0])
