"""Values Discord would refuse at send time are refused at load, located (file:line: key: problem).

The same validation runs for ``config check``, at start and on every hot reload (all three go
through :func:`parse_settings_text`), so a refused value never reaches the dispatcher.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wanderer_console.config import ConfigError, parse_settings_text
from wanderer_console.domain.discord_limits import (
    avatar_url_problem,
    color_problem,
    snowflake_problem,
    webhook_username_problem,
)

BASE = """\
[discord]
username = "Wanderer"

[maps.home]
url = "http://127.0.0.1:9"
api_key = "map-key"

[maps.home.discord]
webhook_url = "https://discord.com/api/webhooks/123456789012345678/tok"
channel_id = "100000000000000001"
rally_group_ids = ["200000000000000002"]
"""


def _problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings_text(text, file="c.toml", environ=environ or {})
    return [str(problem) for problem in caught.value.problems]


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDERER_CONSOLE", "MAP_"))}
    env["XDG_DATA_HOME"] = str(cwd / "xdg-data")
    return subprocess.run(
        [sys.executable, "-m", "wanderer_console", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_config_check_refuses_discord_in_webhook_username(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(BASE.replace('"Wanderer"', '"Discord Alerts"'))
    done = _cli("config", "check", "--config", str(path), cwd=tmp_path)
    assert done.returncode == 1
    assert f"{path}:2: discord.username: must not contain 'discord'" in done.stderr
    assert "config invalid: 1 problem(s)" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.slow
def test_start_refuses_a_webhook_username_discord_refuses(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(BASE.replace('"Wanderer"', '"Clyde"'))
    done = _cli("--config", str(path), "--no-ui", cwd=tmp_path)
    assert done.returncode == 1
    assert f"{path}:2: discord.username: must not contain 'clyde'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Discord Alerts", "must not contain 'discord'"),
        ("my DISCORD bot", "must not contain 'discord'"),
        ("Clyde", "must not contain 'clyde'"),
        ("x" * 81, "at most 80 characters"),
        ("Intel @ home", "must not contain '@'"),
        ("Wanderer #1", "must not contain '#'"),
        ("ops: intel", "must not contain ':'"),
        ("```x```", "must not contain '```'"),
        ("everyone", "Discord reserves that name"),
        ("  HERE ", "Discord reserves that name"),
        ("\u200b\u200b", "must contain a visible character"),
    ],
)
def test_usernames_discord_refuses_are_located_errors(name: str, expected: str) -> None:
    text = BASE.replace('"Wanderer"', f'"{name}"')
    (problem,) = _problems(text)
    assert problem.startswith("c.toml:2: discord.username: ")
    assert expected in problem


@pytest.mark.parametrize("name", ["Wanderer", "x" * 80, "  Intel  ", "", "Wanderer-Bot 2", "Ñandú"])
def test_usernames_discord_accepts_load(name: str) -> None:
    settings, _ = parse_settings_text(BASE.replace('"Wanderer"', f'"{name}"'), environ={})
    assert settings.discord.username == name.strip()


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "expected"),
    [
        (
            'rally_group_ids = ["200000000000000002"]',
            'rally_group_ids = ["200000000000000002", "@here"]',
            11,
            "maps.home.discord.rally_group_ids.1",
            "a role id is made of digits",
        ),
        (
            'channel_id = "100000000000000001"',
            'channel_id = "\u0661\u0662\u0663"',  # Arabic-Indic digits: str.isdigit() says yes
            10,
            "maps.home.discord.channel_id",
            "a channel id is made of digits 0-9",
        ),
        (
            'channel_id = "100000000000000001"',
            'channel_id = "99999999999999999999"',
            10,
            "maps.home.discord.channel_id",
            "Discord ids are between 1 and",
        ),
        (
            "webhooks/123456789012345678/tok",
            "webhooks/99999999999999999999/tok",
            9,
            "maps.home.discord.webhook_url",
            "the webhook id",
        ),
        (
            'webhook_url = "https',
            'bot_token = "Bot abc.def.ghi"\nwebhook_url = "https',
            9,
            "maps.home.discord.bot_token",
            'give the token alone (the console adds "Bot ")',
        ),
    ],
)
def test_discord_ids_and_tokens_discord_refuses_are_located_errors(
    old: str, new: str, line: int, key: str, expected: str
) -> None:
    (problem,) = _problems(BASE.replace(old, new))
    assert problem.startswith(f"c.toml:{line}: {key}: ")
    assert expected in problem
    assert "abc.def.ghi" not in problem  # a token is never echoed


def test_legacy_rally_role_ids_are_checked_too() -> None:
    env = {
        "MAP_NAME": "home",
        "MAP_URL": "http://127.0.0.1:9",
        "MAP_API_KEY": "k",
        "DISCORD_RALLY_GROUP_IDS": "200000000000000002,Officers",
    }
    (problem,) = _problems("", env)
    assert "maps.home.discord.rally_group_ids.1" in problem
    assert "a role id is made of digits" in problem


def test_blank_bot_token_means_none() -> None:
    settings, _ = parse_settings_text('[discord]\nbot_token = "  "\n', environ={})
    assert settings.discord.bot_token is None


def test_pure_rules_for_avatar_urls_and_colours() -> None:
    assert avatar_url_problem("https://images.evetech.net/a.png") is None
    assert avatar_url_problem("ftp://x/a.png") is not None
    assert avatar_url_problem("https://x/a b.png") is not None
    assert color_problem(0) is None
    assert color_problem(0xFFFFFF) is None
    assert color_problem(0x1000000) is not None
    assert color_problem(-1) is not None
    assert snowflake_problem("0") is not None
    assert snowflake_problem("1") is None
    assert webhook_username_problem("   ") is None  # blank: never sent


def test_avatar_and_colour_field_types_give_located_errors() -> None:
    from pydantic import BaseModel, ValidationError

    from wanderer_console.config.discord_values import AvatarUrl, EmbedColor

    class Probe(BaseModel):
        avatar_url: AvatarUrl = None
        color: EmbedColor = 0

    assert Probe(avatar_url=" ").avatar_url is None
    with pytest.raises(ValidationError, match="http:// or https://"):
        Probe(avatar_url="images/a.png")
    with pytest.raises(ValidationError, match="0 to 0xFFFFFF"):
        Probe(color=0x1000000)
