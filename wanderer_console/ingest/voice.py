"""Who is in a guild's voice channels, from the gateway's events (no I/O).

``GUILD_CREATE`` brings a guild's channels, its AFK channel and the voice states of everyone in
voice when the bot connects; ``VOICE_STATE_UPDATE`` then moves people in, between and out of
channels (``channel_id`` null: they left); ``GUILD_UPDATE`` may change the AFK channel and
``CHANNEL_CREATE``/``CHANNEL_UPDATE`` add channels. Voice mentions ping the people in voice
channels (voice and stage) except the AFK channel, and never a bot (PARITY.md §5.4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["VOICE_CHANNEL_TYPES", "VoiceStates"]

VOICE_CHANNEL_TYPES: Final = frozenset({2, 13})
"""``GUILD_VOICE`` and ``GUILD_STAGE_VOICE``."""


@dataclass(slots=True)
class _Guild:
    afk_channel_id: str | None = None
    channel_types: dict[str, int] = field(default_factory=dict)
    members: dict[str, str] = field(default_factory=dict)
    """user id -> the channel they are in."""
    bots: set[str] = field(default_factory=set)


def _id(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value).isdigit() else None


def _list(value: Any) -> list[Any]:
    """``value`` when it is a list, else empty: a payload with another type there is skipped
    (iterating it would raise in the gateway's reader and end its connection)."""
    return value if isinstance(value, list) else []


class VoiceStates:
    """The voice channel of each user, per guild, kept from gateway dispatches."""

    def __init__(self) -> None:
        self._guilds: dict[str, _Guild] = {}

    def clear(self) -> None:
        """Forget everything (a fresh session sends every guild again)."""
        self._guilds.clear()

    def apply(self, name: str, data: Any) -> bool:
        """Apply one dispatch; True when it was one this tracker reads."""
        if not isinstance(data, dict):
            return False
        if name == "GUILD_CREATE":
            self._guild_create(data)
        elif name == "GUILD_UPDATE":
            guild = self._guilds.setdefault(_id(data.get("id")) or "", _Guild())
            guild.afk_channel_id = _id(data.get("afk_channel_id"))
        elif name == "GUILD_DELETE":
            self._guilds.pop(_id(data.get("id")) or "", None)
        elif name in ("CHANNEL_CREATE", "CHANNEL_UPDATE"):
            guild_id, channel_id = _id(data.get("guild_id")), _id(data.get("id"))
            if guild_id and channel_id and isinstance(data.get("type"), int):
                self._guilds.setdefault(guild_id, _Guild()).channel_types[channel_id] = data["type"]
        elif name == "VOICE_STATE_UPDATE":
            guild_id = _id(data.get("guild_id"))
            if guild_id is None:
                return False
            self._voice_state(self._guilds.setdefault(guild_id, _Guild()), data)
        else:
            return False
        return True

    def _guild_create(self, data: dict[str, Any]) -> None:
        guild_id = _id(data.get("id"))
        if guild_id is None:
            return
        guild = self._guilds[guild_id] = _Guild(afk_channel_id=_id(data.get("afk_channel_id")))
        for channel in _list(data.get("channels")):
            if isinstance(channel, dict):
                channel_id = _id(channel.get("id"))
                if channel_id and isinstance(channel.get("type"), int):
                    guild.channel_types[channel_id] = channel["type"]
        for member in _list(data.get("members")):
            user = member.get("user") if isinstance(member, dict) else None
            if isinstance(user, dict) and user.get("bot") and _id(user.get("id")):
                guild.bots.add(str(user["id"]))
        for state in _list(data.get("voice_states")):
            if isinstance(state, dict):
                self._voice_state(guild, state)

    @staticmethod
    def _voice_state(guild: _Guild, state: dict[str, Any]) -> None:
        user_id = _id(state.get("user_id"))
        if user_id is None:
            return
        member = state.get("member")
        user = member.get("user") if isinstance(member, dict) else None
        if isinstance(user, dict) and user.get("bot"):
            guild.bots.add(user_id)
        channel_id = _id(state.get("channel_id"))
        if channel_id is None:
            guild.members.pop(user_id, None)
        else:
            guild.members[user_id] = channel_id

    def participants(self, guild_id: str) -> list[str]:
        """User ids in a voice channel of the guild other than its AFK channel, bots left out
        (sorted, so the same people give the same message)."""
        guild = self._guilds.get(str(guild_id))
        if guild is None:
            return []
        return sorted(
            user
            for user, channel in guild.members.items()
            if channel != guild.afk_channel_id
            and guild.channel_types.get(channel, 2) in VOICE_CHANNEL_TYPES
            and user not in guild.bots
        )

    def known(self, guild_id: str) -> bool:
        """The guild's ``GUILD_CREATE`` (or a voice state of it) has been seen."""
        return str(guild_id) in self._guilds

    def counts(self) -> dict[str, int]:
        """People in voice (AFK and bots left out) per guild, for the snapshot."""
        return {guild: len(self.participants(guild)) for guild in self._guilds}
