"""Trackers: several kill feeds per map, each with its own clauses, target and pings (issue 22).

A tracker is aa-killtracker's unit (PARITY.md §11): the kill clauses of
:class:`~wanderer_console.config.filters.KillClauses`, a Discord target, a ping and a colour.
A map's ``[filters]`` and kill routes stay its implicit ``default`` tracker, so a config without
``[[maps.<key>.trackers]]`` behaves exactly as before. A kill that matches several trackers of a
map is sent once to each distinct target (:mod:`wanderer_console.pipeline.trackers`).
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from wanderer_console.config.discord_values import ChannelId, EmbedColor, RoleId, WebhookUrl
from wanderer_console.config.filters import KillClauses
from wanderer_console.config.section import LIVE

__all__ = ["DEFAULT_TRACKER", "PingKind", "TrackerList", "TrackerScope", "TrackerSettings"]

DEFAULT_TRACKER: Final = "default"
"""The name of a map's implicit tracker (its ``[filters]`` and kill routes); reserved."""

PingKind = Literal["none", "here", "everyone"]
"""What a tracker's message pings besides its roles."""
TrackerScope = Literal["map", "all"]
"""Which kills a tracker looks at: the map's (tracked systems or characters), or every kill."""

_HEX_COLOUR = re.compile(r"^#?([0-9a-fA-F]{6})$")


def _colour(value: object) -> object:
    """``"#rrggbb"`` (as aa-killtracker writes colours) or an integer."""
    if isinstance(value, str):
        match = _HEX_COLOUR.match(value.strip())
        if match is None:
            raise ValueError('must be "#rrggbb" (six hex digits) or an integer')
        return int(match.group(1), 16)
    return value


class TrackerSettings(KillClauses):
    """One tracker: its clauses (ANDed, as in ``[filters]``), where it posts and whom it pings."""

    name: Annotated[str, LIVE] = Field(min_length=1, max_length=64)
    """Shown in the console, in ``kill`` explanations and on the message ("Tracker **caps**")."""
    enabled: Annotated[bool, LIVE] = True
    """Off: the tracker matches nothing (the console's trackers screen switches it)."""
    description: Annotated[str, LIVE] = ""
    """A note for operators; not sent."""
    scope: Annotated[TrackerScope, LIVE] = "map"
    """``map``: kills in the map's tracked systems or involving its tracked characters;
    ``all``: every kill the console receives (R2Z2 brings all of New Eden, the killstream only
    the tracked systems), e.g. for "capitals within 5 jumps of home"."""
    webhook_url: Annotated[WebhookUrl, LIVE] = None
    """Where it posts; with neither this nor ``channel_id`` it posts where the map's
    system-kill route does."""
    channel_id: Annotated[ChannelId, LIVE] = ""
    """A channel the map's bot posts in (when no ``webhook_url``)."""
    ping: Annotated[PingKind, LIVE] = "none"
    """``here`` or ``everyone`` starts the message with that mention; ``none`` pings nobody."""
    ping_role_ids: Annotated[list[RoleId], LIVE] = Field(default_factory=list)
    """Roles mentioned (``<@&id>``) on its messages."""
    color: Annotated[EmbedColor | None, BeforeValidator(_colour), LIVE] = None
    """Embed colour, ``"#rrggbb"``; unset keeps the kill's value colour."""
    show_name: Annotated[bool, LIVE] = True
    """Start the message with ``Tracker **<name>**`` (aa-killtracker's ``is_posting_name``)."""

    @model_validator(mode="after")
    def _name(self) -> TrackerSettings:
        if self.name.strip().casefold() == DEFAULT_TRACKER:
            raise ValueError(
                f"name {self.name!r} is reserved for the map's own filters (its default tracker)"
            )
        return self


def _unique_names(trackers: list[TrackerSettings]) -> list[TrackerSettings]:
    seen: set[str] = set()
    for tracker in trackers:
        key = tracker.name.strip().casefold()
        if key in seen:
            raise ValueError(f"two trackers are named {tracker.name!r}; names must differ")
        seen.add(key)
    return trackers


TrackerList = Annotated[list[TrackerSettings], AfterValidator(_unique_names)]
"""A map's trackers, names unique (case-insensitively)."""
