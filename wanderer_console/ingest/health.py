"""Connection health: the state of each source, as the snapshot and the UI show it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["ConnectionHealth", "ConnectionState"]


class ConnectionState(StrEnum):
    """Life cycle of a connection."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DEGRADED = "degraded"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(slots=True)
class ConnectionHealth:
    """Mutable health record owned by one source; read through :meth:`snapshot`."""

    name: str
    kind: str
    state: ConnectionState = ConnectionState.CONNECTING
    since: float = field(default_factory=time.time)
    last_event_at: float | None = None
    reconnects: int = 0
    events: int = 0
    heartbeat_rtt_ms: float | None = None
    last_error: str | None = None

    def set_state(self, state: ConnectionState, error: str | None = None) -> None:
        """Move to ``state``; ``since`` changes only when the state does."""
        if state is not self.state:
            self.state = state
            self.since = time.time()
        if error is not None:
            self.last_error = error
        elif state is ConnectionState.CONNECTED:
            self.last_error = None

    def saw_event(self) -> None:
        """Count one event received now."""
        self.events += 1
        self.last_event_at = time.time()

    def snapshot(self) -> dict[str, Any]:
        """A plain, immutable-by-copy view for the runtime snapshot."""
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state.value,
            "since": self.since,
            "last_event_at": self.last_event_at,
            "reconnects": self.reconnects,
            "events": self.events,
            "heartbeat_rtt_ms": self.heartbeat_rtt_ms,
            "last_error": self.last_error,
        }
