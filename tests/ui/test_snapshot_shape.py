"""The UI tests' hand-made snapshots have the shape a real engine produces.

The console's tests feed fixed snapshots so their screens are deterministic; this keeps those
fixtures honest: every key the fixtures hold exists in :meth:`Runtime.snapshot` with a value of
the same kind, so a fixture cannot keep a key (or a shape) the engine no longer produces. (The
fixtures leave out ``queue`` and ``config``, which the console reads as optional.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.ui.conftest import HEALTHY, degraded_snapshot, delivery_fault_snapshot
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator


def _kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "scalar"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _mismatches(fake: Any, real: Any, path: str = "") -> list[str]:
    """Where ``fake`` has a key ``real`` lacks, or a dict/list where ``real`` has another kind."""
    out: list[str] = []
    if isinstance(fake, dict) and isinstance(real, dict):
        for key, value in fake.items():
            if key not in real:
                # Keys named by data (targets, maps, lanes) are free; structural keys are not.
                if real and all(not isinstance(v, dict) for v in real.values()):
                    continue
                if not real or path.endswith(("targets", "tracking", "lanes", "breakers")):
                    continue
                out.append(f"{path}.{key}: not in a real snapshot")
                continue
            out += _mismatches(value, real[key], f"{path}.{key}")
    elif isinstance(fake, list) and isinstance(real, list) and fake and real:
        out += _mismatches(fake[0], real[0], f"{path}[0]")
    elif real is not None and fake is not None and _kind(fake) != _kind(real):
        out.append(f"{path}: {_kind(fake)} in the fixture, {_kind(real)} in a real snapshot")
    return out


async def test_ui_fixture_snapshots_have_the_shape_of_a_real_runtime_snapshot(
    tmp_path: Path,
) -> None:
    async with Simulator(seed=3) as sim:
        runtime = Runtime(demo_settings(sim, data_dir=tmp_path), data_dir=tmp_path)
        await runtime.start()
        try:
            real = runtime.snapshot()
        finally:
            await runtime.stop()
    for fake in (HEALTHY, degraded_snapshot(), delivery_fault_snapshot()):
        assert set(real) - set(fake) <= {"queue", "config"}
        assert _mismatches(fake, real) == []
