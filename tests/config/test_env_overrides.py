"""A key the config file sets and an environment variable overrides (``WANDERER_CONSOLE_*`` or
a notifier variable) is said by ``config check``, at the file's line, naming the variable:
otherwise the file shows one value, the engine runs another, and editing it there does
nothing, with no sign of why."""

from __future__ import annotations

from pathlib import Path

import pytest

from wanderer_console.cli import main

FILE = """\
[console]
dry_run = true

[maps.home]
url = "http://127.0.0.1:9"
api_key = "file-map-key-0001"

[maps.home.discord]
channel_id = "111111111111111111"
"""


def _check(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    path = tmp_path / "c.toml"
    path.write_text(FILE, encoding="utf-8")
    path.chmod(0o600)
    with pytest.MonkeyPatch.context() as patch:
        for name in ("MAP_NAME", "MAP_URL", "DISCORD_CHANNEL_ID", "DISCORD_BOT_TOKEN"):
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        code = main(["config", "check", "--offline", "--config", str(path)])
    return code, capsys.readouterr().err


def test_config_check_names_the_variables_that_override_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        "WANDERER_CONSOLE_CONSOLE__DRY_RUN": "false",
        "WANDERER_CONSOLE_MAPS__HOME__API_KEY": "env-map-key-0002",
        "MAP_NAME": "home",
        "DISCORD_CHANNEL_ID": "222222222222222222",
        "DISCORD_BOT_TOKEN": "x",
    }
    code, err = _check(tmp_path, env, capsys)
    assert code == 0, err
    file = tmp_path / "c.toml"
    assert f"{file}:2: console.dry_run:" in err
    assert "WANDERER_CONSOLE_CONSOLE__DRY_RUN" in err
    assert f"{file}:6: maps.home.api_key:" in err
    assert "WANDERER_CONSOLE_MAPS__HOME__API_KEY" in err
    assert f"{file}:9: maps.home.discord.channel_id:" in err
    assert "DISCORD_CHANNEL_ID" in err
    # No value is printed: the overridden key may be a secret.
    for value in ("file-map-key-0001", "env-map-key-0002", "222222222222222222"):
        assert value not in err


def test_a_variable_for_a_key_the_file_does_not_set_is_no_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _check(tmp_path, {"WANDERER_CONSOLE_CONSOLE__LOG_LEVEL": "DEBUG"}, capsys)
    assert code == 0, err
    assert "overrid" not in err


async def test_an_edit_of_a_key_the_environment_overrides_says_it_has_no_effect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hot reload: the file's dry_run edited while WANDERER_CONSOLE_CONSOLE__DRY_RUN is set.
    Before, the reload said "configuration reloaded" and nothing changed, with no word why."""
    import logging

    from wanderer_console.config.loader import load_settings
    from wanderer_console.config.reload import ConfigReloader
    from wanderer_console.runtime import Runtime

    monkeypatch.setenv("WANDERER_CONSOLE_CONSOLE__DRY_RUN", "true")
    path = tmp_path / "c.toml"
    data = tmp_path / "data"
    base = f'[console]\ndata_dir = "{data}"\n' + FILE.removeprefix("[console]\n")
    path.write_text(base, encoding="utf-8")
    path.chmod(0o600)
    runtime = Runtime(load_settings(path).settings, data_dir=data, config_path=path)
    reloader = ConfigReloader(runtime, path)
    reloader.baseline()
    try:
        edited = base.replace("dry_run = true", "dry_run = false")
        path.write_text(edited, encoding="utf-8")
        with caplog.at_level(logging.WARNING, logger="wanderer_console"):
            result = reloader.reload(source="test")
        assert result.status == "applied"
        assert runtime.settings.console.dry_run is True  # the environment still wins
        (record,) = [r for r in caplog.records if "the environment overrides" in r.getMessage()]
        ctx = record.ctx  # type: ignore[attr-defined]
        assert ctx["keys"] == {"console.dry_run": "WANDERER_CONSOLE_CONSOLE__DRY_RUN"}
        assert result.overridden == {"console.dry_run": "WANDERER_CONSOLE_CONSOLE__DRY_RUN"}

        # An edit of a key no variable sets says nothing of the kind.
        caplog.clear()
        path.write_text(edited.replace('channel_id = "1111', 'channel_id = "3333'), "utf-8")
        with caplog.at_level(logging.WARNING, logger="wanderer_console"):
            assert reloader.reload(source="test").overridden == {}
        assert not [r for r in caplog.records if "the environment overrides" in r.getMessage()]
    finally:
        reloader.close()
        await runtime.stop()
