"""How long delivery keeps trying, and how it re-sends what may already have been posted.

Transient failures (5xx, timeouts, refused connections, 429, an open breaker) never exhaust a
notification: it waits with capped backoff until it is delivered or older than ``max_age``.
A target's later messages do not pass it: once one of them is due, the target is tried again from
its oldest message (the store's ``due_outbox``), after a short pause (``retry_pause``).
Only Discord's permanent answers stop it: 400 fails that one notification (with Discord's
reason), 401/403/404 hold its target as dead until the credential changes or an operator
retries it.

A send whose outcome is unknown (no answer after the request went out, or in flight at a crash)
is never blindly repeated: a bot message goes again with the same ``nonce`` (Discord returns the
original instead of posting twice, within ``nonce_window``); a webhook message, which has no
nonce, goes again once ``uncertain_window`` has passed and is counted, because it may post twice.
That re-send waits longer for its answer (``confirm_timeout``); if its outcome is unknown too, the
notification is not sent a third time: it ends ``uncertain`` (probably delivered, listed by
``outbox list`` for the operator).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from wanderer_console.config.model import Settings
from wanderer_console.config.routing import route_credentials
from wanderer_console.domain.notification import Target

__all__ = ["DeliveryPolicy", "ResolvedTarget", "TargetState", "fingerprint", "resolved_targets"]


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """The dispatcher's retry and stop rules (from ``[discord]`` settings)."""

    backoff_base: float = 1.0
    """First retry delay after a transient failure, doubling per attempt."""
    backoff_cap: float = 60.0
    """Longest wait between two attempts: a recovered Discord is used within a minute."""
    retry_pause: float = 0.25
    """Least wait before a target whose message failed (5xx, no connection) is tried again, its
    oldest message first (or that message's backoff, if shorter). Its later messages keep it
    due, and without the pause it would be tried again at once, again and again, until the
    breaker opened (for ever with a cool-down of 0)."""
    max_age: float = 86_400.0
    """A notification still undelivered this long after it was queued fails (``expired``)."""
    uncertain_window: float = 10.0
    """Wait before re-sending a webhook message whose outcome was unknown."""
    nonce_window: float = 120.0
    """How long Discord is trusted to remember a nonce (it says "a few minutes")."""
    confirm_timeout: float = 30.0
    """A re-send after an unknown outcome waits this long for Discord's answer: a slow Discord
    that outlasted the normal timeout once gets the time to confirm."""
    stop_grace: float = 5.0
    """On a graceful stop, how long in-flight requests may take to finish."""
    request_timeout: float | None = None
    """How long one send waits for Discord's answer (``None``: the HTTP client's timeout)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        """The rules as ``[discord]`` and ``[console]`` set them (made again on every reload)."""
        return cls(
            max_age=settings.discord.max_delivery_age_hours * 3600,
            uncertain_window=settings.discord.uncertain_retry_seconds,
            stop_grace=settings.console.stop_grace_seconds,
            request_timeout=settings.discord.request_timeout_seconds,
        )

    def send_timeout(self, confirm: bool) -> float | None:
        """How long a send waits for its answer; a re-send after an unknown outcome
        (``confirm``) waits :attr:`confirm_timeout`, or longer if sends normally do."""
        if not confirm:
            return self.request_timeout
        return max(self.confirm_timeout, self.request_timeout or 0.0)

    def backoff(self, attempts: int) -> float:
        """Delay before the attempt after ``attempts`` failed ones."""
        return min(self.backoff_cap, self.backoff_base * 2.0 ** min(attempts, 30))


def fingerprint(target: Target, token: str | None) -> str:
    """A short digest of a target's address and credential: it changes when either is fixed.

    Stored with a dead target; it reveals nothing of the secret (a truncated SHA-256 of a
    high-entropy token).
    """
    raw = f"{target.kind.value}\0{target.address}\0{token or ''}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(slots=True)
class TargetState:
    """Live delivery state of one target (shown in the snapshot)."""

    key: str
    sent: int = 0
    """Notifications confirmed."""
    messages: int = 0
    """Discord messages confirmed (a message carries up to 10 notifications)."""
    rate_limited: int = 0
    uncertain: int = 0
    """Notifications re-sent after an unknown outcome."""
    last_uncertain_at: float | None = None
    """When the last of them was re-sent (wall time): the console marks the target for a while
    after it, then shows the count as history."""
    disabled_reason: str | None = None
    """Why Discord refused this target for good (its notifications wait)."""
    paused_until: float = 0.0
    last_error: str | None = None
    """Discord's last answer when it was not a confirmation; cleared by the next one."""
    failing: bool = False
    """The last answer was a transient failure (5xx, no connection, open breaker): the first
    success after it makes the target's waiting notifications due at once."""
    sent_times: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """A target plus the credential needed to post to it."""

    target: Target
    bot_token: str | None = None

    @property
    def fingerprint(self) -> str:
        """Digest of address and credential (a dead target revives when it changes)."""
        return fingerprint(self.target, self.bot_token)


def resolved_targets(settings: Settings) -> dict[tuple[str, str], ResolvedTarget]:
    """Every configured target by ``(tenant, key)``, with the credential it posts with."""
    return {
        key: ResolvedTarget(target, token)
        for key, (target, token) in route_credentials(settings).items()
    }
