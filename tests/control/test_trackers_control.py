"""Trackers through the control endpoint's real socket: the snapshot lists them (no webhook
token), and ``set_tracker`` switches one, applied, saved into its ``[[...]]`` entry, audited."""

from __future__ import annotations

from pathlib import Path

from tests.control.conftest import append_to, secrets_of, text_of
from wanderer_console.config.model import Settings
from wanderer_console.control.explain import target_names
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

HOOKS = "https://discord.com/api/webhooks"


async def test_trackers_listed_and_switched_over_the_socket(
    engine: Runtime, remote: RemoteBackend, config_file: Path, sim: Simulator
) -> None:
    assert (await remote.snapshot()).trackers == ()  # no [[trackers]]: not sent at all
    append_to(
        config_file,
        '\n# kill feeds\n[[maps.demo.trackers]]\nname = "caps"\n'
        f'webhook_url = "{sim.webhook_url("caps")}"\nping = "here"\n\n'
        '[[maps.demo.trackers]]\nname = "intel"\nscope = "all"\n',
    )
    assert engine.reloader is not None
    assert engine.reloader.reload(source="test").status == "applied"

    snapshot = await remote.snapshot()
    rows = [(t.tenant, t.name, t.enabled, t.target, t.ping) for t in snapshot.trackers]
    assert rows == [
        ("demo", "default", True, "routes", ""),
        ("demo", "caps", True, f"webhook:{sim.webhook_id('caps')}", "@here"),
        ("demo", "intel", True, f"webhook:{sim.webhook_id('system-kills')}", ""),
    ]
    assert not any(secret in snapshot.model_dump_json() for secret in secrets_of(sim))

    result = await remote.set_tracker("demo", "intel", False, actor="tui:alice@laptop")
    assert result.ok, result.message
    assert [t.enabled for t in engine.settings.maps["demo"].trackers] == [True, False]
    text = text_of(config_file)
    assert text.endswith('name = "intel"\nscope = "all"\nenabled = false\n')
    assert "# kill feeds" in text  # comments survive
    history = await remote.config_history()
    assert history[-1].changes == ("maps.demo.trackers",)

    result = await remote.set_tracker("demo", "default", False, actor="t")
    assert result.ok, result.message
    assert engine.settings.maps["demo"].filters.default_tracker is False
    assert [t.enabled for t in (await remote.snapshot()).trackers] == [False, True, False]

    refused = await remote.set_tracker("demo", "nope", True, actor="t")
    assert not refused.ok
    assert "trackers: default, caps, intel" in refused.message


def test_a_tracker_target_is_labelled_by_the_tracker() -> None:
    settings = Settings.model_validate(
        {
            "maps": {
                "home": {
                    "url": "http://127.0.0.1:9",
                    "api_key": "k",
                    "discord": {"webhook_url": f"{HOOKS}/100000000000000001/a"},
                    "trackers": [
                        {"name": "caps", "webhook_url": f"{HOOKS}/100000000000000002/b"},
                        {"name": "intel"},  # the system-kill route's target: no label of its own
                    ],
                }
            }
        }
    )
    assert target_names(settings) == {
        "webhook:100000000000000001": (
            "home/primary",
            "https://discord.com/api/webhooks/100000000000000001/***",
        ),
        "webhook:100000000000000002": (
            "home/caps",
            "https://discord.com/api/webhooks/100000000000000002/***",
        ),
    }
