"""Fixtures for the delivery tests: golden files and a check of every Discord limit."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wanderer_console.domain import discord_limits as limits

GOLDEN_DIR = Path(__file__).parent / "golden"


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


@pytest.fixture
def golden() -> Callable[[str, Any], None]:
    """Compare ``data`` with ``golden/<name>.json`` exactly; ``UPDATE_GOLDEN=1`` rewrites it."""

    def check(name: str, data: Any) -> None:
        path = GOLDEN_DIR / f"{name}.json"
        text = _dump(data)
        if os.environ.get("UPDATE_GOLDEN") == "1":
            path.write_text(text, encoding="utf-8")
            return
        if not path.exists():
            pytest.fail(f"missing golden {path.name}; run with UPDATE_GOLDEN=1 to create it")
        assert text == path.read_text(encoding="utf-8"), f"golden {path.name} differs"

    return check


def _count(text: Any) -> int:
    return len(str(text or "").strip())


def assert_within_limits(body: dict[str, Any]) -> None:
    """Assert every Discord message limit of PROTOCOLS.md §5.1, one by one."""
    assert _count(body.get("content")) <= limits.CONTENT_MAX == 2000
    embeds = body.get("embeds", [])
    assert len(embeds) <= limits.EMBEDS_MAX == 10
    total = 0
    for embed in embeds:
        assert _count(embed.get("title")) <= limits.TITLE_MAX == 256
        assert _count(embed.get("description")) <= limits.DESCRIPTION_MAX == 4096
        fields = embed.get("fields", [])
        assert len(fields) <= limits.FIELDS_MAX == 25
        for field in fields:
            assert 0 < _count(field["name"]) <= limits.FIELD_NAME_MAX == 256
            assert 0 < _count(field["value"]) <= limits.FIELD_VALUE_MAX == 1024
        footer = embed.get("footer", {}).get("text")
        author = embed.get("author", {}).get("name")
        assert _count(footer) <= limits.FOOTER_TEXT_MAX == 2048
        assert _count(author) <= limits.AUTHOR_NAME_MAX == 256
        total += _count(embed.get("title")) + _count(embed.get("description"))
        total += sum(_count(f["name"]) + _count(f["value"]) for f in fields)
        total += _count(footer) + _count(author)
    assert total <= limits.EMBED_TOTAL_MAX == 6000
    assert total == limits.embed_total(embeds)


@pytest.fixture
def within_limits() -> Callable[[dict[str, Any]], None]:
    """The :func:`assert_within_limits` check as a fixture."""
    return assert_within_limits
