"""Notification flags: flip them on the live settings and write them back to the TOML file.

The engine reads the same :class:`~wanderer_console.config.model.Settings` object, so a flip takes
effect at once. The file is edited with tomlkit so the operator's comments and layout survive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table

from wanderer_console.config.model import NotificationFlags, Settings
from wanderer_console.ui.config_text import atomic_write_text

__all__ = [
    "FLAG_NAMES",
    "FlagRef",
    "all_flags",
    "flags_for",
    "set_flag",
    "write_flag",
    "write_value",
]

FLAG_NAMES = ("enabled", "kill", "system", "character", "rally")
"""The switches the toggles screen shows, in column order."""


@dataclass(frozen=True, slots=True)
class FlagRef:
    """One switch: ``tenant`` is ``None`` for the global flags."""

    tenant: str | None
    flag: str

    @property
    def label(self) -> str:
        """``global kill`` or ``map <tenant> kill``."""
        scope = "global" if self.tenant is None else f"map {self.tenant}"
        return f"{scope} {self.flag}"

    @property
    def toml_path(self) -> tuple[str, ...]:
        """Where the flag lives in the config file."""
        if self.tenant is None:
            return ("notifications", self.flag)
        return ("maps", self.tenant, "notifications", self.flag)


def flags_for(settings: Settings, tenant: str | None) -> NotificationFlags:
    """The global flags, or one map's."""
    return settings.notifications if tenant is None else settings.maps[tenant].notifications


def all_flags(settings: Settings) -> list[FlagRef]:
    """Every global flag, then every map's, in display order."""
    scopes: list[str | None] = [None, *settings.maps]
    return [FlagRef(tenant, flag) for tenant in scopes for flag in FLAG_NAMES]


def set_flag(settings: Settings, ref: FlagRef, value: bool) -> None:
    """Change the live setting."""
    if ref.flag not in FLAG_NAMES:
        raise ValueError(f"unknown flag {ref.flag!r}")
    setattr(flags_for(settings, ref.tenant), ref.flag, value)


def write_flag(path: Path, ref: FlagRef, value: bool) -> None:
    """Set the flag in the TOML file at ``path``, creating tables as needed, keeping comments."""
    write_value(path, ref.toml_path, value)


def write_value(path: Path, toml_path: tuple[str, ...], value: Any) -> None:
    """Set one key in the TOML file at ``path`` (tables created as needed), keeping comments.

    The file is replaced atomically and keeps its mode (0600 for a file holding secrets).
    """
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    document = tomlkit.parse(text)
    table: Any = document
    for key in toml_path[:-1]:
        if key not in table:
            table[key] = tomlkit.table()
        table = table[key]
        if not isinstance(table, Table | dict):
            raise ValueError(f"{'.'.join(toml_path[:-1])} is not a table in {path}")
    table[toml_path[-1]] = value
    atomic_write_text(path, tomlkit.dumps(document))
