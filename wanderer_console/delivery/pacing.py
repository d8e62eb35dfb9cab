"""Message packing and per-channel pacing for Discord delivery.

Discord allows about 30 messages a minute per channel for webhooks, whatever the webhook, and 10
embeds per message. When notifications queue up for one target, packing them into messages of up
to 10 embeds multiplies what a channel can carry; the pacer keeps each channel under its budget
so the console never provokes a 429 it could have avoided.

A target's rate-limit bucket (per webhook, per bot channel) may be sent to by several workers at
once (maps sharing one webhook): :class:`BucketBudget` lets them start no more sends than the
bucket's last answer left (``X-RateLimit-Remaining``), and one at a time while nothing says what
the bucket holds (at first, and once its window has reset). Without it, the workers held by the
bucket's pause all went the moment it ended, a burst past the limit that Discord answered with
429s.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from wanderer_console.domain.discord_limits import EMBED_TOTAL_MAX, EMBEDS_MAX, embed_total
from wanderer_console.store.base import OutboxRow

__all__ = ["ANSWER_WAIT", "Batch", "BucketBudget", "ChannelPacer", "pack"]

ANSWER_WAIT = 1.0
"""How long a send held for an answer of its bucket waits before it looks again (an answer
ends the wait at once: :meth:`BucketBudget.answered` says when a send was held)."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Outbox rows sent together as one Discord message."""

    rows: tuple[OutboxRow, ...]
    merged: dict[str, Any] | None = None
    """The message's body when it merges several rows; ``None`` for one row sent alone, whose
    stored body is the message (:attr:`raw`)."""

    @property
    def body(self) -> dict[str, Any]:
        """The message's body (parsed from the row's own for one row)."""
        if self.merged is not None:
            return self.merged
        parsed: dict[str, Any] = orjson.loads(self.rows[0].body)
        return parsed

    @property
    def raw(self) -> bytes | None:
        """One row's body as stored (JSON, written by ``orjson.dumps``), to post as is: parsing
        it to dump it again gives the same bytes. ``None`` for a merged message."""
        return self.rows[0].body.encode() if self.merged is None else None


def _batchable(body: dict[str, Any]) -> bool:
    # Mentions live in ``content``; a message that pings is never merged with others.
    return not body.get("content") and bool(body.get("embeds"))


def pack(rows: Sequence[OutboxRow], *, max_embeds: int = EMBEDS_MAX) -> list[Batch]:
    """Group consecutive rows into messages, keeping order and every Discord limit."""
    if len(rows) == 1:
        return [Batch((rows[0],))]  # nothing to merge: its body is not even parsed
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
            batches.append(_batch(current, current_body))
        current, current_body = [row], body
        if not _batchable(body):
            batches.append(Batch((row,)))
            current, current_body = [], None
    if current_body is not None:
        batches.append(_batch(current, current_body))
    return batches


def _batch(rows: list[OutboxRow], body: dict[str, Any]) -> Batch:
    return Batch((rows[0],)) if len(rows) == 1 else Batch(tuple(rows), body)


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


@dataclass(slots=True)
class _Bucket:
    remaining: int | None = None
    """Sends the bucket still allows until ``reset_at`` (``None``: unknown)."""
    reset_at: float = 0.0
    in_flight: int = 0
    held: bool = False
    """A send waits for an answer of this bucket."""


class BucketBudget:
    """Per target (its bucket), the sends its last answer allows, less those started since."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def delay(self, key: str, now: float) -> float:
        """Seconds before one more send to ``key`` fits its bucket (0: now); a send that waits
        for an answer gets :data:`ANSWER_WAIT` (the answer ends its wait, see
        :meth:`answered`)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        if now < bucket.reset_at and bucket.remaining is not None:
            if bucket.remaining > 0:
                return 0.0
            # Spent until its reset (an answer of a send out may move the reset: it ends the
            # wait, and the send measures again).
            bucket.held = bucket.in_flight > 0
            return bucket.reset_at - now
        if bucket.in_flight == 0:
            return 0.0  # nothing says what the bucket holds: one send, its answer tells
        bucket.held = True
        return ANSWER_WAIT

    def started(self, key: str, now: float) -> None:
        """One send to ``key`` starts (call it in the turn :meth:`delay` said 0)."""
        bucket = self._buckets.setdefault(key, _Bucket())
        bucket.in_flight += 1
        if bucket.remaining is not None:
            if now >= bucket.reset_at:
                bucket.remaining = None  # a new window: what it holds is not known
            else:
                bucket.remaining = max(0, bucket.remaining - 1)

    def answered(
        self, key: str, remaining: int | None, reset_after: float | None, now: float
    ) -> None:
        """A send to ``key`` was answered, with its ``X-RateLimit-*`` when given (before
        :meth:`ended`)."""
        bucket = self._buckets.get(key)
        if bucket is not None and remaining is not None and reset_after is not None:
            # The other sends out may not be counted in it yet: they are taken off.
            others = max(0, bucket.in_flight - 1)
            bucket.remaining = max(0, remaining - others)
            bucket.reset_at = now + reset_after

    def ended(self, key: str) -> bool:
        """A send started with :meth:`started` is over (answered, or never sent); True when a
        send was held for it (the caller ends the waits: each measures again)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return False
        bucket.in_flight = max(0, bucket.in_flight - 1)
        held, bucket.held = bucket.held, False
        if bucket.in_flight == 0 and bucket.remaining is None:
            del self._buckets[key]
        return held
