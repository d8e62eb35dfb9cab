"""The last line of defence: credential shapes are masked wherever they appear in text."""

from __future__ import annotations

import logging

from wanderer_console.telemetry.logging import RedactingFilter, redact

BOT_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"


def test_bot_tokens_ingest_keys_and_query_credentials_are_masked() -> None:
    text = (
        f"token {BOT_TOKEN} key wci_3f9a8b7c6d5e4f3a2b1c"
        " url https://x.test/a?api_key=s3cr3t&b=1"
        " hook https://discord.com/api/webhooks/123/tok-en.x?wait=true"
    )
    masked = redact(text)
    for secret in (BOT_TOKEN, "3f9a8b7c6d5e4f3a2b1c", "s3cr3t", "tok-en.x"):
        assert secret not in masked
    assert "wci_***" in masked
    assert "api_key=***&b=1" in masked
    assert "/webhooks/123/***?wait=true" in masked


def test_redacting_filter_rewrites_a_third_party_record() -> None:
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "HTTP Request: %s %s", ("POST", "x"), None
    )
    record.args = ("POST", "https://discord.com/api/webhooks/9/secret-token")
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "HTTP Request: POST https://discord.com/api/webhooks/9/***"


def test_an_interaction_token_is_redacted() -> None:
    url = "http://127.0.0.1:1/api/v10/interactions/1300000000000000001/aW50ZXJhY3Rpb24abc-_.x/callback"
    assert redact(url) == "http://127.0.0.1:1/api/v10/interactions/1300000000000000001/***/callback"


def test_the_password_of_credentials_in_a_url_is_masked() -> None:
    text = (
        "map API 404: https://ops:hunter2-pass@maps.example.com/api/maps/x/systems;"
        " wss://k:p4ss@kills.example.com/socket/websocket; keep http://127.0.0.1:8080/x"
        " and postgresql://wc@db/wc"
    )
    masked = redact(text)
    assert "hunter2-pass" not in masked
    assert "p4ss" not in masked
    assert "https://ops:***@maps.example.com/api/maps/x/systems" in masked
    assert "wss://k:***@kills.example.com" in masked
    assert "http://127.0.0.1:8080/x" in masked  # a port is not a password
    assert "postgresql://wc@db/wc" in masked  # a user alone is no secret


def test_a_password_option_in_a_database_url_is_masked() -> None:
    masked = redact("postgresql://db/wc?sslmode=require&password=s3cr3t-pw&application_name=x")
    assert masked == "postgresql://db/wc?sslmode=require&password=***&application_name=x"


def test_secrets_nested_in_a_log_lines_context_are_masked() -> None:
    """A context value is not always a string: a list of problems (a rejected config), a dict
    of changes. A secret inside one was written as it was."""
    import json

    from wanderer_console.telemetry.logging import JsonFormatter

    hook = "https://discord.com/api/webhooks/123/not-a-real-token-value"
    record = logging.LogRecord("wanderer_console.t", logging.ERROR, __file__, 1, "m", None, None)
    record.ctx = {
        "problems": [f"maps.home.webhook: {hook} refused"],
        "changes": {"discord.url": {"old": "x", "new": "postgresql://wc:pw-secret@db/wc"}},
        "pair": ("ok", "Bearer abc.def.ghi"),
        "count": 3,
        "error": RuntimeError("connection to postgresql://wc:pw-too@db/wc failed"),
    }
    line = JsonFormatter().format(record)
    assert "not-a-real-token-value" not in line
    assert "pw-secret" not in line
    assert "abc.def.ghi" not in line
    assert "pw-too" not in line
    entry = json.loads(line)
    assert entry["problems"] == [
        "maps.home.webhook: https://discord.com/api/webhooks/123/*** refused"
    ]
    assert entry["count"] == 3
