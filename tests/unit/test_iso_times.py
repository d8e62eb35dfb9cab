"""Every JSON output of the command line writes a moment as ISO 8601 UTC, not epoch seconds."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from wanderer_console.cli import main
from wanderer_console.domain.clock import iso_utc
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.store import SqliteStore
from wanderer_console.store.sqlite import DB_NAME


def _is_iso_utc(text: object) -> bool:
    return isinstance(text, str) and text.endswith("Z") and bool(datetime.fromisoformat(text))


def test_iso_utc() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00Z"
    assert iso_utc(1_700_000_000.5) == "2023-11-14T22:13:20.500000Z"
    assert iso_utc(None) is None


def test_tenant_list_writes_iso_times(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tenant", "add", "home", "--data-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["tenant", "list", "--data-dir", str(tmp_path)]) == 0
    (tenant,) = json.loads(capsys.readouterr().out)["tenants"]
    assert _is_iso_utc(tenant["created_at"])
    assert tenant["rotated_at"] is None


def test_outbox_list_writes_iso_times(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = SqliteStore(tmp_path / DB_NAME)
    try:
        target = Target(TargetKind.WEBHOOK, "https://discord.test/api/webhooks/1/tok", "home")
        store.enqueue(
            [Notification("home", NotificationType.KILL, "k1", target, {"content": "x"})],
            now=1_700_000_000.0,
        )
        (row,) = store.due_outbox(2e9, limit=5)
        store.mark_failed(row.id, error="400 Invalid Form Body")
    finally:
        store.close()
    assert main(["outbox", "list", "--data-dir", str(tmp_path)]) == 0
    (failed,) = json.loads(capsys.readouterr().out)["notifications"]
    assert failed["created_at"] == "2023-11-14T22:13:20Z"
