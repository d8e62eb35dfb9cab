"""The UI tests' hand-made snapshots are engine snapshots as the contract declares them.

The console's tests feed fixed snapshots so their screens are deterministic. They are validated
as :class:`~wanderer_console.console_api.EngineSnapshot` (``extra="forbid"``), so a fixture cannot
hold a key the engine does not send, or a value of another kind; and the real engine's snapshot,
as its :class:`~wanderer_console.control.local.LocalBackend` serves it to the console, is the
same model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.ui.conftest import HEALTHY, degraded_snapshot, delivery_fault_snapshot
from wanderer_console.console_api import EngineSnapshot
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

FIXTURES = {
    "healthy": HEALTHY,
    "degraded": degraded_snapshot(),
    "delivery faults": delivery_fault_snapshot(),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_is_an_engine_snapshot(name: str) -> None:
    EngineSnapshot.model_validate(FIXTURES[name])


def test_a_key_the_contract_lacks_is_refused() -> None:
    bad = {**HEALTHY, "delivery": {**HEALTHY["delivery"], "pasued": True}}
    with pytest.raises(ValidationError, match="pasued"):
        EngineSnapshot.model_validate(bad)


@pytest.mark.slow
async def test_the_real_engines_snapshot_is_an_engine_snapshot(tmp_path: Path) -> None:
    """What the console is given in-process round-trips through JSON as the same model (what an
    attached console receives)."""
    async with Simulator(seed=3) as sim:
        runtime = Runtime(demo_settings(sim, data_dir=tmp_path), data_dir=tmp_path)
        await runtime.start()
        try:
            real = await runtime.console.snapshot()
        finally:
            await runtime.stop()
    assert isinstance(real, EngineSnapshot)
    assert EngineSnapshot.model_validate_json(real.model_dump_json()) == real
    assert real.connections  # the demo's map stream and killstream sockets
    assert real.settings.maps  # the demo's map, with its switches
