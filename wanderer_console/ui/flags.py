"""Notification flags as the console shows and switches them (no Textual, no file access).

The flags come from the engine's snapshot (its
:class:`~wanderer_console.console_api.ConsoleSettingsView`: the global
:class:`~wanderer_console.console_api.FlagSet` and one per map); a switch is an operation on the
backend (``set_flag``), which applies it and saves it to the engine's config file.
"""

from __future__ import annotations

from dataclasses import dataclass

from wanderer_console.console_api import FLAG_NAMES, ConsoleSettingsView

__all__ = ["FLAG_NAMES", "FlagRef", "all_flags", "flag_value", "scope_label", "scopes"]


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


def scopes(settings: ConsoleSettingsView) -> list[str | None]:
    """``None`` (global), then every configured map's slug, in display order."""
    return [None, *settings.maps]


def scope_label(settings: ConsoleSettingsView, tenant: str | None) -> str:
    """``global``, or ``map <display name>`` (the slug when the map has no name)."""
    if tenant is None:
        return "global"
    return f"map {settings.map_names.get(tenant) or tenant}"


def flag_value(settings: ConsoleSettingsView, ref: FlagRef) -> bool:
    """Whether the switch ``ref`` is on; a map unknown to ``settings`` reads as on."""
    if ref.tenant is None:
        return settings.notifications.get(ref.flag)
    flags = settings.maps.get(ref.tenant)
    return True if flags is None else flags.get(ref.flag)


def all_flags(settings: ConsoleSettingsView) -> list[FlagRef]:
    """Every global flag, then every map's, in display order."""
    return [FlagRef(tenant, flag) for tenant in scopes(settings) for flag in FLAG_NAMES]
