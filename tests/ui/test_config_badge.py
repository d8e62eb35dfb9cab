"""The config badge: a change that waits for a restart, or one the engine rejected, is shown on
the dashboard (and in the activity panel) until it is resolved, however it was made."""

from __future__ import annotations

import copy
from typing import Any

from tests.ui.conftest import HEALTHY, AppFactory
from tests.ui.fakes import SeededBackend, first_frame, next_frame
from wanderer_console.console_api import ConfigState
from wanderer_console.ui.app import WandererApp
from wanderer_console.ui.faults import config_text

SIZE = (120, 40)


def _snapshot(**config: Any) -> dict[str, Any]:
    snapshot = copy.deepcopy(HEALTHY)
    snapshot["config"] = {"path": "/etc/wanderer-console/config.toml", **config}
    return snapshot


def _badge(app: WandererApp) -> str | None:
    badge = app.screen.query_one("#config-badge")
    return str(badge.render()) if badge.display else None


def test_the_badge_names_the_keys_waiting_for_a_restart() -> None:
    state = ConfigState(restart_required=("killstream.websocket_url", "server.port"))
    assert config_text(state) == (
        "RESTART NEEDED for killstream.websocket_url, server.port: saved, applies at the next"
        " start of the engine"
    )


def test_a_rejected_change_outranks_a_pending_restart() -> None:
    state = ConfigState(
        last_status="rejected",
        errors=("config.toml:7: notifications.kil: unknown key", "second"),
        restart_required=("server.port",),
    )
    text = config_text(state)
    assert text is not None
    assert text.startswith("CONFIG CHANGE REJECTED: config.toml:7: notifications.kil")
    assert "(+1 more)" in text
    assert "running configuration is kept" in text


def test_nothing_to_say_for_a_file_running_as_written() -> None:
    assert config_text(ConfigState(last_status="applied")) is None
    assert config_text(None) is None


async def test_the_dashboard_shows_and_clears_the_restart_badge(make_app: AppFactory) -> None:
    engine = SeededBackend(_snapshot())
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        assert _badge(app) is None

        engine.data["config"]["restart_required"] = ["server.port"]
        await next_frame(pilot, engine)
        badge = _badge(app)
        assert badge is not None
        assert badge.startswith("RESTART NEEDED for server.port")
        assert any(
            "restart needed for server.port" in text for _, text in app.state.activity.entries
        )

        engine.data["config"]["restart_required"] = []
        await next_frame(pilot, engine)
        assert _badge(app) is None
