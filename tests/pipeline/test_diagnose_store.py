"""``kill ID`` explains a kill the engine received, from its event store: the demo's kills (from
the simulator, which no one can fetch once it is gone) are explained too."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.support import connected, wait_for
from wanderer_console.cli import main
from wanderer_console.launch import demo_settings, write_demo_config
from wanderer_console.pipeline.diagnose import StoredEvents, diagnose_kill
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.store.sqlite import DB_NAME

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


async def _demo_run(tmp_path: Path) -> tuple[Path, list[int], str]:
    """An engine over the simulator receives a scenario, then both stop: the config file, the
    ids of the kills it stored, and the map's key."""
    async with Simulator(seed=11) as sim:
        config = write_demo_config(sim, data_dir=tmp_path)
        runtime = Runtime(
            demo_settings(sim, data_dir=tmp_path), data_dir=tmp_path, config_path=config
        )
        await runtime.start()
        try:
            await connected(runtime)
            stats = await asyncio.wait_for(sim.run_scenario(2.0, rate=10.0), 10)
            kills = stats.expected_kill_ids
            assert kills
            await wait_for(
                lambda: all(runtime.store.has_event("*", f"kill:{k}") for k in kills),
                10,
                "the scenario's kills in the event store",
            )
        finally:
            await runtime.stop()
        return config, kills, sim.map_slug


async def test_a_kill_the_engine_received_is_explained_from_its_store(tmp_path: Path) -> None:
    config, kills, tenant = await _demo_run(tmp_path)
    # The simulator is gone: nothing can be fetched, the map's REST API does not answer.
    settings = demo_settings_from(config)
    store = StoredEvents(tmp_path / DB_NAME)
    verdict = await diagnose_kill(settings, kills[0], store=store)
    assert verdict["killmail_id"] == kills[0]
    assert verdict["killmail_source"] == "event store"
    assert "tracking_load_error" in verdict["maps"][tenant]  # said, not hidden
    # What the engine did with it when it arrived, from its outbox.
    [queued, *_] = verdict["when_received"]["notifications"]
    assert queued["map"] == tenant
    assert queued["target"].startswith(("webhook:", "channel:"))
    assert queued["status"] in ("pending", "sending", "sent")
    if "sent_at" in queued:
        assert "T" in queued["sent_at"]  # ISO 8601


def demo_settings_from(config: Path):  # type: ignore[no-untyped-def]
    from wanderer_console.config.loader import load_settings

    return load_settings(config, environ={}).settings


async def test_the_kill_command_reads_the_store_of_the_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, kills, tenant = await _demo_run(tmp_path)
    kill = kills[0]
    code = await asyncio.to_thread(
        main, ["kill", str(kill), "--config", str(config), "--data-dir", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    verdict = json.loads(out)
    assert verdict["killmail_source"] == "event store"
    assert tenant in verdict["maps"]
    assert verdict["database"] == str(tmp_path / DB_NAME)  # the key every command names it by
    assert "event_store" not in verdict


def test_a_kill_the_store_lacks_is_fetched_as_before(tmp_path: Path) -> None:
    assert StoredEvents(tmp_path / DB_NAME).killmail(42) is None  # no database at all
