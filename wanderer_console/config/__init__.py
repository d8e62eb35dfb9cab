"""Configuration: the settings model, TOML + environment loading with located errors."""

from wanderer_console.config.loader import (
    ConfigError,
    LoadedConfig,
    Problem,
    default_config_path,
    load_settings,
    parse_settings_text,
)
from wanderer_console.config.model import MapSettings, NotificationFlags, Settings

__all__ = [
    "ConfigError",
    "LoadedConfig",
    "MapSettings",
    "NotificationFlags",
    "Problem",
    "Settings",
    "default_config_path",
    "load_settings",
    "parse_settings_text",
]
