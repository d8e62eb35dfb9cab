"""Discord message limits and fixed-window rate-limit buckets (PROTOCOLS.md §5.1-5.2).

Pure helpers for :mod:`wanderer_console.sim.discord`: :func:`validate_message` reproduces the
400 answers Discord gives for oversized or empty messages (and for an empty field name or value,
footer text or author name, which Discord requires, an embed timestamp that is not ISO 8601, a
colour outside 0 to 0xFFFFFF, and more than 100 role or user ids in ``allowed_mentions``),
:class:`Bucket` the per-route ``X-RateLimit-*`` bookkeeping.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

__all__ = ["DISCORD_EPOCH_MS", "Bucket", "next_snowflake", "validate_message"]

DISCORD_EPOCH_MS: Final = 1_420_070_400_000
"""Discord's epoch (2015-01-01T00:00:00Z) in Unix milliseconds: a snowflake counts from it."""


def next_snowflake(now_ms: int, last: int) -> int:
    """A message id as Discord makes one at ``now_ms`` (Unix milliseconds), above ``last`` (ids
    made in the same millisecond still grow)."""
    return max(((now_ms - DISCORD_EPOCH_MS) << 22) | (1 << 17), last + 1)


_EMBED_LIMITS: Final = {"title": 256, "description": 4096}
_TOTAL_LIMIT: Final = 6000
_MENTIONS_MAX: Final = 100
_COLOR_MAX: Final = 0xFFFFFF


@dataclass(slots=True)
class Bucket:
    """A fixed window of ``limit`` requests per ``window`` seconds."""

    key: str
    limit: int
    window: float
    count: int = 0
    started: float = 0.0

    @property
    def bucket_id(self) -> str:
        """Opaque id for ``X-RateLimit-Bucket``."""
        return hashlib.sha1(self.key.encode()).hexdigest()[:32]

    def _roll(self, now: float) -> None:
        if self.count == 0 or now - self.started >= self.window:
            self.count = 0
            self.started = now

    def reset_after(self, now: float) -> float:
        """Seconds until the current window ends (the full window when it has not started)."""
        self._roll(now)
        if self.count == 0:
            return self.window
        return max(0.0, self.started + self.window - now)

    def exhausted(self, now: float) -> bool:
        """True when one more request would exceed the limit."""
        self._roll(now)
        return self.count >= self.limit

    def take(self, now: float) -> None:
        """Count one request."""
        self._roll(now)
        self.count += 1

    def headers(self, now: float, wall: float | None = None) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers describing this bucket at monotonic ``now`` (``wall``:
        the UNIX time then, for ``X-RateLimit-Reset``; default ``time.time()``)."""
        after = self.reset_after(now)
        wall = time.time() if wall is None else wall
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - self.count)),
            "X-RateLimit-Reset": f"{wall + after:.3f}",
            "X-RateLimit-Reset-After": f"{after:.3f}",
            "X-RateLimit-Bucket": self.bucket_id,
        }

    def retry_after(self, now: float) -> tuple[float, str]:
        """``retry_after`` for the 429 body (float) and the ``Retry-After`` header (int)."""
        after = round(max(0.001, self.reset_after(now)), 3)
        return after, str(max(1, math.ceil(after)))


def _length(value: object) -> int:
    return len(value.strip()) if isinstance(value, str) else 0


def _iso8601(value: object) -> bool:
    """Whether ``value`` is an ISO 8601 date and time, as Discord wants an embed timestamp."""
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _problem(errors: list[tuple[tuple[str, ...], str]], path: tuple[str, ...], msg: str) -> None:
    errors.append((path, msg))


def _check_embed(
    embed: object, index: int, errors: list[tuple[tuple[str, ...], str]]
) -> int:  # returns the characters this embed counts toward the 6000 total
    base = ("embeds", str(index))
    if not isinstance(embed, dict):
        _problem(errors, base, "Must be an object.")
        return 0
    total = 0
    for key, limit in _EMBED_LIMITS.items():
        size = _length(embed.get(key))
        total += size
        if size > limit:
            _problem(errors, (*base, key), f"Must be {limit} or fewer in length.")
    color = embed.get("color")
    if color is not None and (
        isinstance(color, bool) or not isinstance(color, int) or not 0 <= color <= _COLOR_MAX
    ):
        _problem(errors, (*base, "color"), f"Must be an integer from 0 to {_COLOR_MAX}.")
    stamp = embed.get("timestamp")
    if stamp is not None and not _iso8601(stamp):
        _problem(errors, (*base, "timestamp"), f"Could not parse {stamp}. Should be ISO8601.")
    fields = embed.get("fields") or []
    if not isinstance(fields, list) or len(fields) > 25:
        _problem(errors, (*base, "fields"), "Must be 25 or fewer in length.")
        fields = []
    for f_index, field in enumerate(fields):
        path = (*base, "fields", str(f_index))
        if not isinstance(field, dict):
            _problem(errors, path, "Must be an object.")
            continue
        for key, limit in (("name", 256), ("value", 1024)):
            size = _length(field.get(key))
            total += size
            if size == 0:
                _problem(errors, (*path, key), "This field is required")
            elif size > limit:
                _problem(errors, (*path, key), f"Must be {limit} or fewer in length.")
    for key, sub, limit in (("footer", "text", 2048), ("author", "name", 256)):
        obj = embed.get(key)
        if isinstance(obj, dict):
            size = _length(obj.get(sub))
            total += size
            if size == 0:  # required whenever the footer or author is sent
                _problem(errors, (*base, key, sub), "This field is required")
            elif size > limit:
                _problem(errors, (*base, key, sub), f"Must be {limit} or fewer in length.")
    return total


def _check_allowed_mentions(allowed: object, errors: list[tuple[tuple[str, ...], str]]) -> None:
    """Discord lists at most 100 role ids and 100 user ids in ``allowed_mentions``."""
    if not isinstance(allowed, dict):
        return
    for key in ("roles", "users"):
        ids = allowed.get(key)
        if isinstance(ids, list) and len(ids) > _MENTIONS_MAX:
            _problem(
                errors, ("allowed_mentions", key), f"Must be {_MENTIONS_MAX} or fewer in length."
            )


def _nest(errors: list[tuple[tuple[str, ...], str]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, message in errors:
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node.setdefault("_errors", []).append({"code": "BASE_TYPE_INVALID", "message": message})
    return tree


def validate_message(body: object, *, webhook: bool) -> dict[str, Any] | None:
    """Discord's 400 JSON for an invalid message body, or ``None`` when it would be accepted."""
    if not isinstance(body, dict):
        return {"code": 50109, "message": "The request body contains invalid JSON."}
    errors: list[tuple[tuple[str, ...], str]] = []
    content = body.get("content")
    if content is not None and not isinstance(content, str):
        _problem(errors, ("content",), "Could not interpret the value as string.")
    elif _length(content) > 2000:
        _problem(errors, ("content",), "Must be 2000 or fewer in length.")
    username = body.get("username")
    if webhook and isinstance(username, str):
        lowered = username.lower()
        if len(username) > 80 or "clyde" in lowered or "discord" in lowered:
            _problem(errors, ("username",), "Username cannot be used.")
    _check_allowed_mentions(body.get("allowed_mentions"), errors)
    embeds = body.get("embeds") or []
    if not isinstance(embeds, list) or len(embeds) > 10:
        _problem(errors, ("embeds",), "Must be 10 or fewer in length.")
        embeds = []
    total = sum(_check_embed(embed, i, errors) for i, embed in enumerate(embeds))
    if total > _TOTAL_LIMIT:
        _problem(errors, ("embeds",), f"Embed size exceeds maximum size of {_TOTAL_LIMIT}")
    if errors:
        return {"code": 50035, "message": "Invalid Form Body", "errors": _nest(errors)}
    others = ("components", "poll", "attachments", "sticker_ids", "files")
    if _length(content) == 0 and not embeds and not any(body.get(k) for k in others):
        return {"code": 50006, "message": "Cannot send an empty message"}
    return None
