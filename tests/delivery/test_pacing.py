"""Packing outbox rows into messages, and the per-channel budget."""

from __future__ import annotations

import orjson
import pytest

from wanderer_console.delivery.pacing import ANSWER_WAIT, BucketBudget, ChannelPacer, pack
from wanderer_console.store.base import OutboxRow


def row(i: int, **body: object) -> OutboxRow:
    payload = {"embeds": [{"title": f"t{i}", "description": "d"}], **body}
    return OutboxRow(
        i, "home", f"k{i}", "kill", "webhook", "webhook:1", orjson.dumps(payload).decode(), 0
    )


def test_consecutive_rows_share_messages_of_at_most_ten() -> None:
    batches = pack([row(i) for i in range(23)])
    assert [len(b.rows) for b in batches] == [10, 10, 3]
    assert [e["title"] for b in batches for e in b.body["embeds"]] == [f"t{i}" for i in range(23)]


def test_rows_with_content_travel_alone_and_keep_their_place() -> None:
    rows = [row(0), row(1, content="<@&5> rally"), row(2), row(3)]
    batches = pack(rows)
    assert [[r.id for r in b.rows] for b in batches] == [[0], [1], [2, 3]]
    assert batches[1].body["content"] == "<@&5> rally"


def test_6000_character_total_splits_a_batch() -> None:
    big = [row(i) for i in range(4)]
    big = [
        r._replace(body=orjson.dumps({"embeds": [{"description": "x" * 2500}]}).decode())
        for r in big
    ]
    assert [len(b.rows) for b in pack(big)] == [2, 2]


def test_a_message_of_one_row_is_posted_as_stored_a_merged_one_is_encoded_again() -> None:
    """A row sent alone carries its stored JSON as the request body (parsing it to encode it
    again gave the same bytes, at a cost per delivery); a merged message has no stored form."""
    alone = pack([row(7, content="rally")])
    assert [b.raw for b in alone] == [row(7, content="rally").body.encode()]
    assert alone[0].body == orjson.loads(row(7, content="rally").body)
    # A row that travels alone among others (content) keeps its stored form; merged ones not.
    batches = pack([row(0), row(1), row(2, content="ping"), row(3)])
    assert [len(b.rows) for b in batches] == [2, 1, 1]
    assert batches[0].raw is None
    assert [e["title"] for e in batches[0].body["embeds"]] == ["t0", "t1"]
    assert batches[1].raw == row(2, content="ping").body.encode()
    assert batches[2].raw == row(3).body.encode()
    # What is posted as stored is what encoding the parsed body gives.
    for batch in (*alone, *batches[1:]):
        assert batch.raw == orjson.dumps(batch.body)


def test_different_usernames_are_not_merged() -> None:
    batches = pack([row(0, username="a"), row(1, username="b")])
    assert len(batches) == 2


def test_pacer_budget_and_window() -> None:
    pacer = ChannelPacer(per_minute=3, window=60.0)
    for t in (0.0, 1.0, 2.0):
        assert pacer.delay("c", t) == 0.0
        pacer.record("c", t)
    assert pacer.delay("c", 10.0) == 50.0  # the oldest send leaves the window at t=60
    assert pacer.delay("other", 10.0) == 0.0
    assert pacer.delay("c", 60.0) == 0.0
    assert pacer.count("c", 60.0) == 2


def test_bucket_budget_lets_out_no_more_than_the_last_answer_left() -> None:
    """Workers of several maps sharing a webhook: after the bucket's pause, one send probes
    (nothing says what the new window holds); its answer lets out what it says remains, the
    sends already out taken off; a spent bucket waits for its reset."""
    budget = BucketBudget()
    assert budget.delay("webhook:1", 0.0) == 0.0  # nothing known: one send
    budget.started("webhook:1", 0.0)
    assert budget.delay("webhook:1", 0.0) == ANSWER_WAIT  # the others wait for its answer
    budget.answered("webhook:1", remaining=0, reset_after=2.0, now=0.1)
    assert budget.ended("webhook:1")  # a send was held for it: the waits end
    assert budget.delay("webhook:1", 0.5) == pytest.approx(1.6)  # spent: its reset
    assert budget.delay("webhook:1", 2.1) == 0.0  # a new window: one probe
    budget.started("webhook:1", 2.1)
    assert budget.delay("webhook:1", 2.1) == ANSWER_WAIT  # not a burst of every waiter
    budget.answered("webhook:1", remaining=2, reset_after=2.0, now=2.2)
    budget.ended("webhook:1")
    budget.started("webhook:1", 2.2)
    budget.started("webhook:1", 2.2)
    assert budget.delay("webhook:1", 2.2) == pytest.approx(2.0)  # the two it allowed are out
    budget.answered("webhook:1", remaining=1, reset_after=1.9, now=2.3)  # the other not counted
    budget.ended("webhook:1")
    assert budget.delay("webhook:1", 2.3) > 0  # 1 left, less the one still out
    assert budget.delay("channel:2", 2.3) == 0.0  # each bucket on its own
