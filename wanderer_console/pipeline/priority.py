"""Priority systems and whom a ping reaches: what the rules and the renderers ask per event.

:class:`PrioritySystems` holds the operators' priority systems (kept in the store: added with
``/notifier system add-priority`` or in the console) in memory, so a kill's decision does not
read the database. A name matches any name the system goes by (EVE name, map labels),
case-insensitively; a name made of digits matches the system id.

:class:`Pings` says whom a notification that pings reaches: with ``discord.voice_mentions`` the
people in the guild's voice channels (AFK channel excluded, from the gateway's voice states),
``@here`` when nobody is there and ``discord.fallback_to_here``; without voice mentions,
``@here`` as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol

from wanderer_console.config.model import Settings
from wanderer_console.store.base import PrioritySystem, Store
from wanderer_console.store.priority import priority_key

__all__ = ["MAX_VOICE_MENTIONS", "Ping", "Pings", "PrioritySystems", "VoiceRoster"]

MAX_VOICE_MENTIONS = 50
"""People in voice mentioned at most (``<@id>`` each, within the 2,000-character content)."""


class PrioritySystems:
    """The store's priority systems, in memory; changes go through here (store, then memory)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.rows: tuple[PrioritySystem, ...] = ()
        self._keys: frozenset[str] = frozenset()
        self._ids: frozenset[int] = frozenset()
        self.reload()

    def reload(self) -> None:
        """Read the list from the store again."""
        self.rows = tuple(self._store.priority_systems())
        self._keys = frozenset(priority_key(row.name) for row in self.rows)
        self._ids = frozenset(int(key) for key in self._keys if key.isdigit())

    def __bool__(self) -> bool:
        return bool(self._keys)

    def names(self) -> list[str]:
        """The names as written, sorted case-insensitively."""
        return [row.name for row in self.rows]

    def add(self, name: str, *, actor: str) -> bool:
        """Add ``name`` (False: it was one already)."""
        added = self._store.add_priority_system(name, actor=actor)
        self.reload()
        return added

    def remove(self, name: str, *, actor: str) -> bool:
        """Remove ``name`` (False: it was not one)."""
        removed = self._store.remove_priority_system(name, actor=actor)
        self.reload()
        return removed

    def matches(self, system_id: int, names: Iterable[str | None]) -> bool:
        """The system is a priority one, by id or by any of ``names``."""
        if not self._keys:
            return False
        if system_id in self._ids:
            return True
        return any(name and priority_key(name) in self._keys for name in names)


class Ping(NamedTuple):
    """Whom a notification pings: users by id, and/or ``@here``."""

    users: tuple[str, ...] = ()
    here: bool = False


class VoiceRoster(Protocol):
    """Who is in voice (the gateway's :class:`~wanderer_console.ingest.voice.VoiceStates`)."""

    def participants(self, guild_id: str) -> list[str]:
        """User ids in the guild's voice channels, AFK channel excluded."""
        ...


class Pings:
    """Whom a pinging notification reaches now (see the module docstring)."""

    def __init__(self, settings: Callable[[], Settings], voice: VoiceRoster | None) -> None:
        self._settings = settings
        self._voice = voice

    @property
    def settings(self) -> Settings:
        """The settings the pings follow (the running ones, read at each ping)."""
        return self._settings()

    @property
    def voice_enabled(self) -> bool:
        """Voice mentions are on and a gateway tracks voice."""
        discord = self._settings().discord
        return discord.voice_mentions and self._voice is not None and bool(discord.guild_id)

    def __call__(self) -> Ping:
        """The ping of a priority-system (or rally, with voice mentions) notification."""
        discord = self._settings().discord
        if not self.voice_enabled:
            return Ping(here=True)
        assert self._voice is not None
        # Discord lists at most 100 users in allowed_mentions; 50 mentions fit the content.
        users = tuple(self._voice.participants(discord.guild_id)[:MAX_VOICE_MENTIONS])
        if users:
            return Ping(users=users)
        return Ping(here=discord.fallback_to_here)
