"""Priority systems in the store: case-insensitive names, kept across reopen, every change
recorded with who made it (both backends)."""

from __future__ import annotations

from wanderer_console.store.backends import open_store
from wanderer_console.store.base import Store, StoreLocation


def test_add_remove_and_trail(store: Store) -> None:
    assert store.priority_systems() == []
    assert store.add_priority_system(" J154624 ", actor="discord:pilot", now=10.0)
    assert not store.add_priority_system("j154624", actor="tui:op", now=11.0)  # same name
    assert store.add_priority_system("Jita", actor="tui:op", now=12.0)
    names = [(p.name, p.added_by) for p in store.priority_systems()]
    assert names == [("J154624", "discord:pilot"), ("Jita", "tui:op")]
    assert store.remove_priority_system("JITA", actor="discord:other", now=13.0)
    assert not store.remove_priority_system("Amarr", actor="tui:op", now=14.0)
    trail = [(c.at, c.actor, c.action, c.name) for c in store.priority_changes()]
    assert trail == [
        (10.0, "discord:pilot", "add", "J154624"),
        (12.0, "tui:op", "add", "Jita"),
        (13.0, "discord:other", "remove", "JITA"),
    ]


def test_priority_systems_survive_a_reopen(store_location: StoreLocation) -> None:
    first = open_store(store_location)
    try:
        first.add_priority_system("J154624", actor="discord:pilot")
    finally:
        first.close()
    second = open_store(store_location)
    try:
        assert [p.name for p in second.priority_systems()] == ["J154624"]
    finally:
        second.close()
