"""A map's changes made while a load of it reads the map server (map events decided meanwhile)
are applied again over the state the load read, in order; a failed load stops recording them."""

from __future__ import annotations

from wanderer_console.domain.tracking import TrackedCharacter, TrackedSystem, TrackingIndex

A, B, C = 31_000_001, 31_000_002, 31_000_003
PILOT = 2_112_000_001


def test_changes_made_during_a_load_are_applied_again_over_what_it_read() -> None:
    index = TrackingIndex()
    index.replace("m", [TrackedSystem(A), TrackedSystem(B)], [])
    load = index.begin_load("m")
    index.put_system("m", TrackedSystem(C))  # added, then removed again, while it reads
    index.remove_system("m", C)
    index.remove_system("m", B)  # removed after the load read it
    index.put_character("m", TrackedCharacter(PILOT, name="Pilot"))
    index.replace("m", [TrackedSystem(A), TrackedSystem(B)], [], load=load)  # read before
    assert set(index.map("m").systems) == {A}
    assert index.maps_for_system(B) == set()
    assert index.maps_for_system(C) == set()
    assert set(index.map("m").characters) == {PILOT}
    assert index.maps_for_character(PILOT) == {"m"}

    index.put_system("m", TrackedSystem(C))  # after the load: not recorded, nothing replayed
    index.replace("m", [TrackedSystem(A)], [])
    assert set(index.map("m").systems) == {A}


def test_a_failed_load_stops_recording_and_a_later_load_keeps_its_own() -> None:
    index = TrackingIndex()
    first = index.begin_load("m")
    second = index.begin_load("m")  # began while the first still read
    index.put_system("m", TrackedSystem(C))
    index.abandon_load("m", first)  # not the latest: the second still records
    index.replace("m", [TrackedSystem(A)], [], load=second)
    assert set(index.map("m").systems) == {A, C}

    failed = index.begin_load("m")
    index.abandon_load("m", failed)
    index.put_system("m", TrackedSystem(B))  # not recorded: no load reads
    assert index._during == {}


def test_a_rename_made_during_a_load_is_applied_again_over_what_it_read() -> None:
    """A system renamed on the map (``system_metadata_changed``) while a load reads the map:
    the load's state, read before the rename, does not bring the old names back (the names
    were set on the tracked system alone, so the load's copy replaced them)."""
    index = TrackingIndex()
    index.replace("m", [TrackedSystem(A, name="J100001")], [])
    load = index.begin_load("m")
    index.rename_system("m", A, "Home", "staging")
    index.rename_system("m", B, "Elsewhere", None)  # not on the map: nothing to rename
    read = TrackedSystem(A, name="J100001", custom_name="Old home", temporary_name="old")
    index.replace("m", [read], [], load=load)
    system = index.map("m").systems[A]
    assert (system.custom_name, system.temporary_name) == ("Home", "staging")
    assert B not in index.map("m").systems

    index.rename_system("m", A, "J100001", None)  # its own name again: no custom name
    assert (system.custom_name, system.temporary_name) == (None, None)
