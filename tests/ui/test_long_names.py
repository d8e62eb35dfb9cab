"""Long names on an 80×24 terminal: a map key may be 63 characters long, so a connection is
``map:`` and 63 more, a delivery target ``<map>/<route>``. The name gives way (cut with ``…``;
Enter on the row shows it whole); what the row is for (its state, DEAD) stays on screen."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.ui.conftest import HEALTHY, NOW, PRIMARY, AppFactory
from tests.ui.fakes import (
    SeededBackend,
    first_frame,
    next_frame,
    screen_lines,
    seeded_settings,
    settle,
)

pytestmark = pytest.mark.slow

SLUG = "wormhole-chain-" + "j" * 48
"""A map key as long as the config allows (63 characters)."""


def long_names() -> dict[str, Any]:
    snapshot = copy.deepcopy(HEALTHY)
    map_sse = snapshot["connections"][0]
    map_sse.update(name=f"map:{SLUG}", state="disconnected", since=NOW - 30, quality=20)
    target = snapshot["delivery"]["targets"][PRIMARY]
    target.update(label=f"{SLUG}/primary", disabled="404 Unknown Webhook", disabled_since=NOW)
    return snapshot


def row_of(lines: list[str], start: str) -> str:
    """The first line of a panel starting with ``start`` (a table row, above any note)."""
    return next(line for line in lines if line.startswith(f"│ {start}"))


async def test_a_long_map_name_leaves_its_state_on_screen(make_app: AppFactory) -> None:
    app = make_app(long_names())
    async with app.run_test(size=(80, 24)) as pilot:
        await first_frame(pilot)
        await settle(pilot)
        lines = screen_lines(app)
        connection = row_of(lines, "map:wormhole-chain-")
        assert "disconnected" in connection, "\n".join(lines)
        assert "…" in connection
        target = row_of(lines, "wormhole-chain-")
        assert "DEAD" in target, "\n".join(lines)
        assert "…" in target


async def test_a_long_map_display_name_leaves_every_flag_on_the_toggles_screen(
    make_app: AppFactory,
) -> None:
    """A map's display name is free text: a long one widened the scope column until only the
    ``enabled`` flag was left on screen (kill, system, character and rally scrolled off)."""
    engine = SeededBackend(HEALTHY)
    long_name = "Wormhole Chain of the Home Alliance — J123456 staging and intel"
    names = {"alpha": long_name, "bravo": "Bravo"}
    engine.settings = seeded_settings().model_copy(update={"map_names": names})
    app = make_app(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await first_frame(pilot)
        await pilot.press("t")
        await settle(pilot)
        lines = screen_lines(app)
        [header] = [line for line in lines if "enabled" in line and "Scope" in line]
        assert header.split()[-5:] == ["enabled", "kill", "system", "character", "rally"]
        [row] = [line for line in lines if "Wormhole" in line]
        assert row.split()[-5:] == ["on"] * 5, "\n".join(lines)
        assert "…" in row
        # Renamed in the config: the next frame shows the new name.
        engine.settings = seeded_settings().model_copy(update={"map_names": {"alpha": "Home"}})
        await next_frame(pilot, engine)
        assert any(line.split()[:3] == ["map", "Home", "on"] for line in screen_lines(app))
