"""The notifier's bot variables (PARITY.md §3.2-3.3) configure the console's gateway."""

from __future__ import annotations

import pytest

from wanderer_console.config.loader import ConfigError, parse_settings_text


def test_the_notifier_bot_variables() -> None:
    env = {
        "MAP_NAME": "home",
        "MAP_URL": "http://x",
        "MAP_API_KEY": "k",
        "DISCORD_APPLICATION_ID": "1200000000000000001",
        "DISCORD_GUILD_ID": "900000000000000001",
        "STATUS_MESSAGES_ENABLED": "yes",
        "VOICE_PARTICIPANT_NOTIFICATIONS_ENABLED": "true",
    }
    settings, _ = parse_settings_text("", environ=env)
    discord = settings.discord
    assert discord.application_id == "1200000000000000001"
    assert discord.guild_id == "900000000000000001"
    assert discord.status_messages is True
    assert discord.voice_mentions is True
    assert discord.fallback_to_here is True  # FALLBACK_TO_HERE_ENABLED defaults to true upstream
    settings, _ = parse_settings_text("", environ={**env, "FALLBACK_TO_HERE_ENABLED": "false"})
    assert settings.discord.fallback_to_here is False


def test_a_guild_id_that_is_no_id_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings_text('[discord]\nguild_id = "my guild"\n', environ={})
    assert "guild id" in str(caught.value.problems[0])
