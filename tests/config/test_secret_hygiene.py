"""Secret hygiene in the configuration: open file modes, secrets pasted into the wrong field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wanderer_console.cli import main
from wanderer_console.config import ConfigError, load_settings, parse_settings_text

WEBHOOK_TOKEN = "Zq9w8e7r6t5y4u3i2o1pAsDfGhJkL"
WEBHOOK = f"https://discord.com/api/webhooks/123456789012345678/{WEBHOOK_TOKEN}"
BOT_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
INGEST_KEY = "wci_3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"
MAP_KEY = "map-key-0d9e8f7a6b5c4d3e"

GOOD = f"""\
[maps.home]
url = "http://127.0.0.1:9"
api_key = "{MAP_KEY}"

[maps.home.discord]
webhook_url = "{WEBHOOK}"
bot_token = "{BOT_TOKEN}"
channel_id = "100000000000000001"
"""


def _write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def _no_secret_in(text: str) -> None:
    for secret in (WEBHOOK_TOKEN, BOT_TOKEN, INGEST_KEY, MAP_KEY):
        assert secret not in text


# -- file permissions ----------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "who"), [(0o644, "group and others"), (0o640, "group")])
def test_a_readable_config_with_secrets_warns_with_the_fix(
    tmp_path: Path, mode: int, who: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, GOOD, mode)
    loaded = load_settings(path, environ={})
    (warning,) = loaded.warnings
    assert warning.file == str(path)
    assert f"readable by {who}" in warning.message
    assert f"chmod 600 {path}" in warning.message

    assert main(["config", "check", "--offline", "--config", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {path}: (file): holds secrets" in err
    assert f"chmod 600 {path}" in err
    _no_secret_in(err)


def test_a_private_config_or_one_without_secrets_does_not_warn(tmp_path: Path) -> None:
    assert load_settings(_write(tmp_path, GOOD, 0o600), environ={}).warnings == ()
    no_secrets = "[console]\ndry_run = true\n"
    assert load_settings(_write(tmp_path, no_secrets, 0o644), environ={}).warnings == ()


# -- secrets in the wrong field ------------------------------------------------------------------


def _problems(tmp_path: Path, text: str) -> dict[str, tuple[int | None, str]]:
    loaded = load_settings(_write(tmp_path, text), environ={})
    for warning in loaded.warnings:
        _no_secret_in(str(warning))
    return {w.key: (w.line, w.message) for w in loaded.warnings}


def test_webhook_url_in_the_map_url_or_api_key_is_located(tmp_path: Path) -> None:
    text = GOOD.replace('url = "http://127.0.0.1:9"', f'url = "{WEBHOOK}"').replace(
        f'api_key = "{MAP_KEY}"', f'api_key = "{WEBHOOK}"'
    )
    problems = _problems(tmp_path, text)
    line, message = problems["maps.home.url"]
    assert line == 2
    assert "Discord webhook URL" in message
    assert "not secret" in message
    line, message = problems["maps.home.api_key"]
    assert line == 3
    assert "not a api_key" in message
    assert "*_webhook_url" in message


def test_bot_token_outside_bot_token_fields_is_located(tmp_path: Path) -> None:
    text = GOOD.replace(f'api_key = "{MAP_KEY}"', f'api_key = "{BOT_TOKEN}"').replace(
        "[maps.home.discord]", f'name = "{BOT_TOKEN}"\n\n[maps.home.discord]'
    )
    problems = _problems(tmp_path, text)
    assert problems["maps.home.api_key"][0] == 3
    assert "Discord bot token" in problems["maps.home.api_key"][1]
    assert problems["maps.home.name"][0] == 5
    assert "bot_token" in problems["maps.home.name"][1]
    assert "maps.home.discord.bot_token" not in problems  # where it belongs


def test_ingest_key_in_a_map_field_is_located(tmp_path: Path) -> None:
    text = GOOD.replace(f'api_key = "{MAP_KEY}"', f'api_key = "{INGEST_KEY}"')
    line, message = _problems(tmp_path, text)["maps.home.api_key"]
    assert line == 3
    assert "ingest key" in message


def test_a_correct_config_has_no_misplaced_secret(tmp_path: Path) -> None:
    assert _problems(tmp_path, GOOD) == {}


def test_a_secret_from_the_environment_is_reported_without_a_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[console]\ndry_run = true\n")
    loaded = load_settings(
        path,
        environ={"MAP_URL": "http://127.0.0.1:9/home", "MAP_API_KEY": WEBHOOK},
    )
    (warning,) = [w for w in loaded.warnings if w.key.endswith("api_key")]
    assert warning.file == "(environment)"
    assert warning.line is None
    _no_secret_in(str(warning))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (WEBHOOK, "looks like a URL"),
        (BOT_TOKEN, "looks like a Discord bot token"),
        (INGEST_KEY, "looks like a console ingest key"),
    ],
)
def test_a_secret_in_a_channel_id_is_a_located_error_without_the_value(
    tmp_path: Path, value: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = GOOD.replace('channel_id = "100000000000000001"', f'channel_id = "{value}"')
    with pytest.raises(ConfigError) as caught:
        parse_settings_text(text, file="c.toml", environ={})
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.key) == (
        "c.toml",
        8,
        "maps.home.discord.channel_id",
    )
    assert expected in problem.message
    _no_secret_in(str(caught.value))

    path = _write(tmp_path, text)
    assert main(["config", "check", "--config", str(path)]) == 1
    captured = capsys.readouterr()
    assert f"{path}:8: maps.home.discord.channel_id: {expected}" in captured.err
    _no_secret_in(captured.err + captured.out)


def test_config_check_prints_misplaced_secrets_as_located_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = GOOD.replace('url = "http://127.0.0.1:9"', f'url = "{WEBHOOK}"')
    path = _write(tmp_path, text)
    assert main(["config", "check", "--offline", "--config", str(path)]) == 0
    captured = capsys.readouterr()
    assert f"warning: {path}:2: maps.home.url: looks like a Discord webhook URL" in captured.err
    _no_secret_in(captured.err + captured.out)
