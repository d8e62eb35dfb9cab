"""Configuration: the settings model, TOML + environment loading with located errors.

:class:`Settings` (:mod:`~.model`, with :class:`MapSettings`, :class:`NotificationFlags` and the
per-map :class:`~.filters.MapFilters`) is the one validated tree every other package reads.
:func:`load_settings` and :func:`parse_settings_text` build it, or raise :class:`ConfigError`
listing each :class:`Problem` with its file, line and key. Also here: where each notification
goes (:mod:`~.routing`: ``Route``, ``resolve_target``), the data directory (:mod:`~.paths`:
``default_data_dir``, ``command_data_dir``), hot reload (:class:`~.reload.ConfigReloader`), the
audit history and its ``config history|restore`` commands (:mod:`~.audit`, :mod:`~.audit_cli`),
secret redaction and hygiene, the Notifier's legacy environment variables (:mod:`~.legacy_env`)
and the checks of Discord-bound values (:mod:`~.discord_values`).
"""

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
