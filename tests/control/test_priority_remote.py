"""Priority systems through the control endpoint (an attached console): added, listed in the
snapshot, refused when bad, removed; each change recorded with the console's actor."""

from __future__ import annotations

import pytest

from wanderer_console.console_api import BackendError, OperationResult
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.runtime import Runtime


async def test_priority_systems_from_an_attached_console(
    engine: Runtime, remote: RemoteBackend
) -> None:
    added = await remote.add_priority_system("J154624", actor="tui:alice@host")
    assert added.ok
    assert added.count == 1
    again = await remote.add_priority_system("j154624", actor="tui:alice@host")
    assert again.count == 0
    assert "already" in again.message
    snapshot = await remote.snapshot()
    assert [p.name for p in snapshot.priority_systems] == ["J154624"]
    assert snapshot.priority_systems[0].added_by == "tui:alice@host via socket"
    bad = await remote.add_priority_system("x" * 101, actor="tui:alice@host")
    assert not bad.ok
    removed = await remote.remove_priority_system("J154624", actor="tui:bob@host")
    assert removed.count == 1
    assert engine.priority.names() == []
    trail = [(c.action, c.actor) for c in engine.store.priority_changes()]
    assert trail == [("add", "tui:alice@host via socket"), ("remove", "tui:bob@host via socket")]


async def test_an_unknown_priority_action_is_a_bad_request(
    engine: Runtime, remote: RemoteBackend
) -> None:
    with pytest.raises(BackendError, match="action must be"):
        await remote._call(  # the client never sends it: the endpoint must still refuse it
            "POST",
            "/v1/priority",
            OperationResult,
            {"action": "toggle", "name": "Jita"},
        )
