"""Message packing and per-channel pacing for Discord delivery.

Discord allows about 30 messages a minute per channel for webhooks, whatever the webhook, and 10
embeds per message. When notifications queue up for one target, packing them into messages of up
to 10 embeds multiplies what a channel can carry; the pacer keeps each channel under its budget
so the console never provokes a 429 it could have avoided.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from wanderer_console.domain.discord_limits import EMBED_TOTAL_MAX, EMBEDS_MAX, embed_total
from wanderer_console.store.base import OutboxRow

__all__ = ["Batch", "ChannelPacer", "pack"]


@dataclass(frozen=True, slots=True)
class Batch:
    """Outbox rows sent together as one Discord message."""

    rows: tuple[OutboxRow, ...]
    body: dict[str, Any]


def _batchable(body: dict[str, Any]) -> bool:
    # Mentions live in ``content``; a message that pings is never merged with others.
    return not body.get("content") and bool(body.get("embeds"))


def pack(rows: Sequence[OutboxRow], *, max_embeds: int = EMBEDS_MAX) -> list[Batch]:
    """Group consecutive rows into messages, keeping order and every Discord limit."""
    batches: list[Batch] = []
    current: list[OutboxRow] = []
    current_body: dict[str, Any] | None = None
    for row in rows:
        body: dict[str, Any] = orjson.loads(row.body)
        if current_body is not None and _batchable(body):
            merged = [*current_body["embeds"], *body["embeds"]]
            same_sender = body.get("username") == current_body.get("username")
            if same_sender and len(merged) <= max_embeds and embed_total(merged) <= EMBED_TOTAL_MAX:
                current_body = {**current_body, "embeds": merged}
                current.append(row)
                continue
        if current_body is not None:
            batches.append(Batch(tuple(current), current_body))
        current, current_body = [row], body
        if not _batchable(body):
            batches.append(Batch((row,), body))
            current, current_body = [], None
    if current_body is not None:
        batches.append(Batch(tuple(current), current_body))
    return batches


class ChannelPacer:
    """A sliding window of sent messages per channel."""

    def __init__(self, per_minute: int = 30, window: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window = window
        self._sent: dict[str, deque[float]] = {}

    def delay(self, channel: str, now: float) -> float:
        """Seconds to wait before the next message to ``channel`` fits the budget."""
        sent = self._sent.get(channel)
        if not sent:
            return 0.0
        while sent and now - sent[0] >= self.window:
            sent.popleft()
        if len(sent) < self.per_minute:
            return 0.0
        return sent[0] + self.window - now

    def record(self, channel: str, now: float) -> None:
        """Count one message sent to ``channel`` at ``now``."""
        self._sent.setdefault(channel, deque()).append(now)

    def count(self, channel: str, now: float) -> int:
        """Messages sent to ``channel`` within the window."""
        self.delay(channel, now)
        return len(self._sent.get(channel, ()))
