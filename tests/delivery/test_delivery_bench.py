"""The delivery benchmark: its ceiling model, and a quick run that loses nothing."""

from __future__ import annotations

import json

import pytest

from wanderer_console.bench.delivery import ceiling_seconds, main


def test_ceiling_combines_both_windows() -> None:
    limits = {
        "per_message": 10,
        "webhook_limit": 5,
        "webhook_window": 2.0,
        "channel_limit": 30,
        "channel_window": 60.0,
    }
    assert ceiling_seconds(50, **limits) == 0.0  # five messages fit the first window
    assert ceiling_seconds(60, **limits) == 2.0  # the sixth waits for the webhook bucket
    # 50 messages: 30 in the first 10 s, then the channel budget, then 4 more webhook windows.
    assert ceiling_seconds(500, **limits) == pytest.approx(66.0)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_quick_run_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--notifications", "200"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in (
        "delivered_per_second",
        "ceiling_per_second",
        "share_of_ceiling",
        "seconds",
        "ceiling_seconds",
        "rejected_429",
        "messages",
    ):
        assert key in result
    assert result["lost"] == 0
    assert result["rejected_429"] <= 1  # paced from the headers: at most the first can 429
    assert result["delivered"] == 200
    assert result["messages"] == 20  # batched ten embeds to a message
