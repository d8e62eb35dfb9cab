"""The pipeline when the store cannot be read: PostgreSQL restarted under a running engine.

A map event is checked against the event log before it is decided (a resumed stream repeats
events). That read failing on a connection the restart had ended was taken for bad input: "pipeline
failed on one event; continuing", the event dropped, and the stream's next event moved the cursor
past it for good. It now waits for the store and is decided again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.pgtest import end_connections, named_schema
from tests.support import connected, wait_for
from wanderer_console.config.loader import load_settings
from wanderer_console.launch import demo_config_text
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.store.base import DatabaseUrl

pytestmark = [pytest.mark.postgresql, pytest.mark.timeout(60)]


@pytest.fixture
def url() -> Iterator[DatabaseUrl]:
    """A fresh schema, its connections named so the test can end them (a server restart)."""
    with named_schema() as named:
        yield named


def stored(url: DatabaseUrl, event_id: str) -> bool:
    """Whether the event log holds ``event_id`` (read beside the engine, on its own connection:
    a read through the engine's pool would repair it before the pipeline's read)."""
    import psycopg

    with psycopg.connect(url.secret(), autocommit=True) as beside:
        row = beside.execute("SELECT 1 FROM events WHERE event_id = %s", (event_id,)).fetchone()
    return row is not None


async def test_a_map_event_read_during_a_server_restart_is_not_lost(
    sim: Simulator, tmp_path: Path, url: DatabaseUrl
) -> None:
    data = tmp_path / "data"
    path = tmp_path / "config.toml"
    path.write_text(
        demo_config_text(sim, data_dir=data) + f'\n[store]\nurl = "{url.secret()}"\n',
        encoding="utf-8",
    )
    path.chmod(0o600)
    runtime = Runtime(load_settings(path).settings, data_dir=data, config_path=path)
    await runtime.start()
    try:
        await connected(runtime)
        pool = runtime.store._pg._pool  # type: ignore[attr-defined]
        with pool.connection(), pool.connection():
            pass  # idle connections, as after concurrent reads: each one ended by the restart
        end_connections(url)
        system = sim.generator.new_system()
        envelope = sim.map.add_system(system.system_id, name=system.name)

        await wait_for(lambda: stored(url, envelope["id"]), 20.0, "the event stored")
        later = sim.map.add_system(sim.generator.new_system().system_id)
        await wait_for(lambda: stored(url, later["id"]), 20.0, "the next event stored")
        assert runtime.metrics.value("wc_errors_total", component="pipeline") == 0
    finally:
        await runtime.stop()
