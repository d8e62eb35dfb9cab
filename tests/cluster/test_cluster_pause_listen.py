"""An engine's listening connection for the cluster's pause, against a real PostgreSQL.

One engine on a fresh schema (its connections named, so the test can find and end them as a
server restart does), with a lease so long that no heartbeat comes during a test once its map is
taken: whatever it does about a pause or a resume, it was told, not polled.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.store.pgtest import connections, end_connections, named_schema
from tests.support import wait_for
from wanderer_console.config.loader import parse_settings_text
from wanderer_console.runtime import Runtime
from wanderer_console.sim.multimap import MultiMapSim
from wanderer_console.store.base import DatabaseUrl
from wanderer_console.store.postgres import PostgresStore

pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.timeout(120)]

LEASE = 600.0
ALICE = "tui:alice@laptop via socket"


def _listening(url: DatabaseUrl) -> int:
    """The connections opened with ``url`` that are listening (``LISTEN`` last ran)."""
    return connections(url, where=" AND query LIKE 'LISTEN %%'")


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[Runtime, DatabaseUrl, MultiMapSim]]:
    async with MultiMapSim(1, seed=4, discord_limit=100) as sim:
        with named_schema() as url:
            text = sim.config_text(agent="wc-pause-listen", lease_seconds=LEASE)
            settings, _ = parse_settings_text(text, environ={})
            settings.store.url = SecretStr(url.secret())
            rt = Runtime(settings, data_dir=tmp_path / "one")
            await rt.start()
            try:
                await wait_for(
                    lambda: rt.cluster.wake() or rt.cluster.owned() == list(sim.maps), 30
                )
                await wait_for(lambda: _listening(url) == 1, 30, "the engine to listen")
                yield rt, url, sim
            finally:
                if rt.ready.is_set():
                    await rt.stop()


async def test_a_resume_written_while_the_listener_was_cut_is_followed_once_it_is_back(
    engine: tuple[Runtime, DatabaseUrl, MultiMapSim],
) -> None:
    rt, url, _sim = engine
    other = PostgresStore(url)  # another engine's side of the database
    try:
        other.pause_cluster(ALICE, "b")
        await wait_for(lambda: rt.dispatcher.paused, 30, "the engine to follow the pause")
        assert end_connections(url) >= 1  # a server restart: the listener's connection too
        other.close()
        other = PostgresStore(url)
        assert other.resume_cluster()
        await wait_for(lambda: not rt.dispatcher.paused, 30, "the engine to follow the resume")
    finally:
        other.close()


async def test_a_stop_closes_the_listening_connection_without_a_warning(
    engine: tuple[Runtime, DatabaseUrl, MultiMapSim], caplog: pytest.LogCaptureFixture
) -> None:
    rt, url, _sim = engine
    with caplog.at_level(logging.INFO, logger="wanderer_console"):
        await rt.stop()
    assert connections(url) == 0
    assert not [r for r in caplog.records if "listen" in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
    ]
