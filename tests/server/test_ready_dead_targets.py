"""``/ready`` names each dead mark once, with its map: two maps may post to one webhook.

A target is dead per (map, target): the webhook two maps share can be dead for one map and
alive for the other. ``/ready`` listed the bare target keys, so a key dead for one map of two
read as dead for everyone, and a key dead for both maps was listed twice. A real engine on the
simulator, serving ``/ready`` on a loopback port, with a second map (``other``) following the
same fake map and posting to the same primary webhook as the demo map.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support import map_on_primary_webhook, wait_for
from wanderer_console.config.loader import parse_settings_text
from wanderer_console.config.model import ServerSettings, Settings
from wanderer_console.launch import demo_config_text
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

OTHER = "other"


@pytest.fixture
def runtime_settings(sim: Simulator, tmp_path: Path) -> Settings:
    """The server's demo settings plus a second map on the same webhook as the demo's primary."""
    text = demo_config_text(sim, data_dir=tmp_path) + map_on_primary_webhook(sim, OTHER)
    settings, _ = parse_settings_text(text, file="<two maps>", environ={})
    settings.server = ServerSettings(enabled=True, port=0)
    return settings


def _kill_webhook(runtime: Runtime, *maps: str) -> str:
    """Mark the shared primary webhook dead for ``maps`` (as a 404 would, with the credential
    the engine holds, so it is not revived as changed) and return its key."""
    targets = runtime.dispatcher._targets()
    shared = {key for tenant, key in targets if tenant == OTHER}
    (key,) = shared
    assert {tenant for tenant, k in targets if k == key} >= {OTHER, *maps}
    for tenant in maps:
        runtime.store.set_dead_target(
            tenant,
            key,
            reason="404 Unknown Webhook",
            fingerprint=targets[(tenant, key)].fingerprint,
            now=time.time(),
        )
    # The dispatcher reads the marks at its next look (within a second).
    runtime.dispatcher.wake()
    return key


async def test_a_webhook_dead_for_one_of_two_maps_is_listed_once_with_its_map(
    runtime: Runtime, client: httpx.AsyncClient, sim: Simulator
) -> None:
    demo = sim.map_slug
    key = _kill_webhook(runtime, demo)
    await wait_for(lambda: len(runtime.dispatcher.dead_targets) == 1, 10, "the dead mark read")

    ready = await client.get("/ready")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["dead_targets"] == [{"map": demo, "target": key}]
    dead = [r for r in body["reasons"] if r.startswith("target ")]
    assert len(dead) == 1
    assert dead[0].startswith(f"target {key} (map {demo}): dead since ")


async def test_a_webhook_dead_for_both_maps_is_two_entries_without_repeats(
    runtime: Runtime, client: httpx.AsyncClient, sim: Simulator
) -> None:
    demo = sim.map_slug
    key = _kill_webhook(runtime, demo, OTHER)
    await wait_for(lambda: len(runtime.dispatcher.dead_targets) == 2, 10, "the dead marks read")

    body = (await client.get("/ready")).json()
    assert body["dead_targets"] == sorted(
        [{"map": demo, "target": key}, {"map": OTHER, "target": key}],
        key=lambda d: d["map"],
    )
    dead = [r for r in body["reasons"] if r.startswith("target ")]
    assert len(dead) == 2
    assert sorted(r.partition(" (map ")[2].partition(")")[0] for r in dead) == sorted([demo, OTHER])
