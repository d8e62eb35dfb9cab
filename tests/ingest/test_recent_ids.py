"""The bounded memory of recently seen ids that drops repeats at the source."""

from __future__ import annotations

from wanderer_console.ingest.recent import RecentIds


def test_seen_records_then_answers() -> None:
    recent = RecentIds(size=3)
    assert recent.seen(1) is False
    assert recent.seen(1) is True
    assert 1 in recent
    assert 2 not in recent


def test_bounded_oldest_forgotten_first() -> None:
    recent = RecentIds(size=3)
    for value in (1, 2, 3):
        recent.seen(value)
    recent.seen(1)  # touched: now the newest
    recent.seen(4)  # evicts 2, the least recently seen
    assert len(recent) == 3
    assert 2 not in recent
    assert all(v in recent for v in (1, 3, 4))
