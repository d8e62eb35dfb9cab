"""Trackers through the control endpoint's real socket: the snapshot lists them (no webhook
token), and ``set_tracker`` switches one, applied, saved into its ``[[...]]`` entry, audited."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.control.conftest import append_to, secrets_of, text_of
from wanderer_console.config.loader import load_settings
from wanderer_console.config.model import Settings
from wanderer_console.config.reload import ConfigReloader
from wanderer_console.control.explain import target_names
from wanderer_console.control.local import LocalBackend
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


TRACKED_FILE = """\
[console]
data_dir = "{data_dir}"

[esi]
enabled = false

[killstream]
enabled = false

[maps.home]
url = "http://127.0.0.1:9"
api_key = "k"

[maps.home.discord]
webhook_url = "https://discord.com/api/webhooks/100000000000000001/a"

[[maps.home.trackers]]
name = "caps"

[[maps.home.trackers]]
name = "intel"
"""


async def test_a_switch_reaches_the_named_tracker_in_a_file_edited_since_its_last_reload(
    tmp_path: Path,
) -> None:
    """The switch found its tracker by position in the running settings and wrote that position
    in the file: with a tracker added ahead of it in the file and not yet reloaded (an editor's
    save the watcher had not read yet), switching "caps" off switched the new tracker off, and
    the reload that followed left "caps" on."""
    path = tmp_path / "config.toml"
    text = TRACKED_FILE.format(data_dir=tmp_path / "data")
    path.write_text(text, encoding="utf-8")
    runtime = Runtime(
        load_settings(path, environ={}).settings, data_dir=tmp_path / "data", config_path=path
    )
    # Not watching: the edit below stays unread until the switch's own reload.
    reloader = runtime.reloader = ConfigReloader(runtime, path)
    try:
        reloader.baseline()
        backend = LocalBackend(runtime)
        caps = '[[maps.home.trackers]]\nname = "caps"\n'
        path.write_text(
            text.replace(caps, '[[maps.home.trackers]]\nname = "fresh"\n\n' + caps),
            encoding="utf-8",
        )
        result = await backend.set_tracker("home", "caps", False, actor="tui:alice@laptop")
        assert result.ok, result.message
        saved = tomllib.loads(text_of(path))["maps"]["home"]["trackers"]
        expected = [("fresh", True), ("caps", False), ("intel", True)]
        assert [(t["name"], t.get("enabled", True)) for t in saved] == expected
        running = runtime.settings.maps["home"].trackers
        assert [(t.name, t.enabled) for t in running] == expected

        # A tracker gone from the file since the last reload: refused, saying what to do.
        path.write_text(text.replace('name = "intel"', 'name = "intel2"'), encoding="utf-8")
        refused = await backend.set_tracker("home", "intel", True, actor="t")
        assert not refused.ok
        assert "config.toml has no tracker 'intel' in map home any more" in refused.message
        assert "reload the configuration, then switch the tracker again" in refused.message
    finally:
        reloader.close()
        await runtime.stop()
