"""Config loading: TOML + environment, legacy notifier variables, located errors, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from wanderer_console.cli import main
from wanderer_console.config import ConfigError, load_settings, parse_settings_text

VALID = """\
[console]
dry_run = true

[maps.home]
url = "http://127.0.0.1:9"
api_key = "secret-map-key"

[maps.home.discord]
webhook_url = "https://discord.com/api/webhooks/123/tok-en"
"""


def test_valid_file_loads_with_defaults() -> None:
    settings, used = parse_settings_text(VALID, environ={})
    home = settings.maps["home"]
    assert settings.console.dry_run is True
    assert home.slug == "home"
    assert home.name == "home"
    assert home.notifications.kill is True
    assert settings.console.startup_suppression_seconds == 30
    assert used == ()


def test_environment_overrides_file() -> None:
    settings, _ = parse_settings_text(
        VALID,
        environ={
            "WANDERER_CONSOLE_CONSOLE__DRY_RUN": "false",
            "WANDERER_CONSOLE_NOTIFICATIONS__KILL": "false",
        },
    )
    assert settings.console.dry_run is False
    assert settings.notifications.kill is False


def test_legacy_notifier_variables_configure_one_map() -> None:
    env = {
        "MAP_URL": "https://wanderer.example.org",
        "MAP_NAME": "Home Chain",
        "MAP_API_KEY": "k",
        "DISCORD_BOT_TOKEN": "bot-token",
        "DISCORD_CHANNEL_ID": "111",
        "DISCORD_SYSTEM_KILL_CHANNEL_ID": "222",
        "DISCORD_RALLY_WEBHOOK_URL": "https://discord.com/api/webhooks/9/abc",
        "DISCORD_RALLY_GROUP_IDS": "5, 6",
        "KILL_NOTIFICATIONS_ENABLED": "off",
        "WORMHOLE_ONLY_KILL_NOTIFICATIONS_ENABLED": "yes",
        "STARTUP_SUPPRESSION_SECONDS": "5",
        "MAX_KILLMAIL_AGE_SECONDS": "600",
        "WEBSOCKET_URL": "http://kills.example.org:4004",
        "WANDERER_KILLS_URL": "http://kills.example.org:4004",
        "DISCORD_API_URL": "http://127.0.0.1:1/api/v10",
        "ESI_URL": "http://127.0.0.1:2",
        "CORPORATION_KILL_FOCUS": "98000001,98000002",
    }
    settings, used = parse_settings_text("", environ=env)
    home = settings.maps["home-chain"]
    assert home.slug == "Home Chain"
    assert home.url == "https://wanderer.example.org"
    assert home.api_key.get_secret_value() == "k"
    assert home.discord.channel_id == "111"
    assert home.discord.system_kill_channel_id == "222"
    assert home.discord.rally_group_ids == ["5", "6"]
    assert home.filters.wormhole_only is True
    assert home.filters.corporation_kill_focus == [98000001, 98000002]
    assert settings.notifications.kill is False
    assert settings.console.startup_suppression_seconds == 5
    assert settings.console.max_killmail_age_seconds == 600
    assert settings.killstream.websocket_url == "ws://kills.example.org:4004"
    assert settings.discord.api_url == "http://127.0.0.1:1/api/v10"
    assert settings.esi.url == "http://127.0.0.1:2"
    assert settings.discord.bot_token is not None
    assert "MAP_API_KEY" in used


def test_errors_name_file_line_and_key() -> None:
    text = VALID + 'channel_id = "https://discord.com/api/webhooks/1/x"\n'
    with pytest.raises(ConfigError) as caught:
        parse_settings_text(text, file="c.toml", environ={})
    (problem,) = caught.value.problems
    assert problem.file == "c.toml"
    assert problem.line == 10
    assert problem.key == "maps.home.discord.channel_id"
    assert "webhook" in problem.message


def test_missing_required_key_points_at_its_table() -> None:
    text = '[console]\n\n[maps.home]\nurl = "http://x"\n'
    with pytest.raises(ConfigError) as caught:
        parse_settings_text(text, file="c.toml", environ={})
    (problem,) = caught.value.problems
    assert (problem.line, problem.key) == (3, "maps.home.api_key")


def test_toml_syntax_error_has_a_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings_text("[console]\nlog_level = \n", file="c.toml", environ={})
    assert caught.value.problems[0].line == 2


def test_secrets_never_appear_in_errors() -> None:
    text = VALID.replace('"secret-map-key"', '"secret-map-key"\nbogus = 1')
    with pytest.raises(ConfigError) as caught:
        parse_settings_text(text, environ={})
    assert "secret-map-key" not in str(caught.value)
    assert "tok-en" not in str(caught.value)


def test_example_config_is_valid() -> None:
    example = Path(__file__).parents[2] / "config" / "wanderer.example.toml"
    loaded = load_settings(example, environ={})
    assert "home" in loaded.settings.maps


def test_config_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(VALID.replace("dry_run = true", 'dry_run = "maybe"'))
    assert main(["config", "check", "--config", str(broken)]) == 1
    err = capsys.readouterr().err
    assert f"{broken}:2: console.dry_run:" in err

    good = tmp_path / "good.toml"
    good.write_text(VALID)
    assert main(["config", "check", "--config", str(good)]) == 0
    assert "config ok" in capsys.readouterr().out

    assert main(["config", "check", "--config", str(tmp_path / "missing.toml")]) == 1
    assert "file not found" in capsys.readouterr().err


def test_http_overrides_are_validated_per_service() -> None:
    settings, _ = parse_settings_text(
        VALID + "\n[http.discord]\nrate_per_second = 100\n", environ={}
    )
    assert settings.http == {"discord": {"rate_per_second": 100}}
    with pytest.raises(ConfigError) as caught:
        parse_settings_text(VALID + "\n[http.discrod]\nburst = 1\n", file="c.toml", environ={})
    (problem,) = caught.value.problems
    assert (problem.line, problem.key) == (11, "http")
    assert "unknown service 'discrod'" in problem.message
    with pytest.raises(ConfigError, match="bogus"):
        parse_settings_text(VALID + "\n[http.esi]\nbogus = 1\n", environ={})


@pytest.mark.parametrize("section", ["esi", "r2z2"])
@pytest.mark.parametrize("agent", ["Jöns' notifier (ops@example.org)", "ok\r\nX-Injected: 1", ""])
def test_a_user_agent_that_cannot_be_an_http_header_is_refused_when_the_config_is_read(
    section: str, agent: str
) -> None:
    """Every HTTP client is built with ``esi.user_agent`` (and R2Z2's with its own): a value
    that is not printable ASCII was accepted by ``config check``, then stopped the engine at
    start with a bare encoding error from the HTTP library (or split the header)."""
    text = VALID + f'\n[{section}]\nuser_agent = "{agent}"\n'.replace("\r\n", "\\r\\n")
    with pytest.raises(ConfigError) as caught:
        parse_settings_text(text, file="c.toml", environ={})
    (problem,) = caught.value.problems
    assert problem.key == f"{section}.user_agent"
    assert "printable ASCII" in problem.message


def test_a_plain_user_agent_is_kept() -> None:
    agent = "Jons-notifier/1.0 (+https://example.org; ops@example.org)"
    settings, _ = parse_settings_text(VALID + f'\n[esi]\nuser_agent = "{agent}"\n', environ={})
    assert settings.esi.user_agent == agent
