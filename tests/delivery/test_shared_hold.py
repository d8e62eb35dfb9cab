"""The cluster's pause as one engine holds it when the shared database refuses a write.

A real store refuses for real (``PRAGMA query_only``); the hold's side of the cluster's pause is
the same SQL on SQLite and PostgreSQL (``delivery_pause``), and what a heartbeat hands the hold
is read back from that store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.delivery.rig import make_rig
from wanderer_console.delivery.hold import DeliveryHold, SharedPause

pytestmark = pytest.mark.timeout(60)


async def test_a_resume_of_a_pause_the_database_never_took_is_not_saved_for_every_engine_later(
    tmp_path: Path,
) -> None:
    """Paused while the database refused the write, the pause held this engine only; the
    operator's resume, refused too, left it paused ('stays paused on every engine'), and the
    first heartbeat that reached the database then saved it for every engine, against the
    operator's last word."""
    async with make_rig(tmp_path) as rig:
        hold = DeliveryHold(rig.dispatcher, tmp_path, shared=SharedPause(rig.store, "engine-a"))
        rig.store._conn.execute("PRAGMA query_only = ON")
        paused = hold.hold("tui:alice@laptop via socket")
        assert not paused.ok
        assert "this engine only" in paused.message
        assert rig.dispatcher.paused

        resumed = hold.release()
        assert resumed.ok, resumed.message
        assert "every engine" not in resumed.message
        assert not rig.dispatcher.paused

        rig.store._conn.execute("PRAGMA query_only = OFF")
        hold.follow(rig.store.cluster_state().pause)  # what the next heartbeat hands it
        assert rig.store.cluster_pause() is None  # never saved for every engine
        assert not rig.dispatcher.paused
