"""Discord limits, markdown escaping and mention safety of message bodies."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from wanderer_console.delivery.embeds import (
    KillContext,
    Names,
    build_message,
    rally_message,
    render_character,
    render_kill,
    render_rally,
    render_system,
)
from wanderer_console.domain.discord_limits import (
    ELLIPSIS,
    PLACEHOLDER,
    embed_total,
    enforce_limits,
    escape_markdown,
    truncate,
)
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.map_events import AddSystem, CharacterAdded, RallyPointAdded
from wanderer_console.sim.discord import FakeDiscord, webhook_url
from wanderer_console.sim.server import AppServer

Check = Callable[[dict[str, Any]], None]
LONG = 2000
NOW = datetime(2026, 1, 10, 19, 0, tzinfo=UTC)


def long_kill(name: str) -> Killmail:
    """A killmail whose victim, attackers, corps and ships all carry ``name``-based long names."""
    party = {
        "corporation_id": 98000001,
        "corporation_name": "C" * LONG,
        "corporation_ticker": "T" * LONG,
        "alliance_ticker": "A" * LONG,
        "ship_type_id": 12013,
        "ship_name": "S" * LONG,
    }
    return Killmail.from_wire(
        {
            "killmail_id": 1,
            "kill_time": "2026-01-10T18:20:41Z",
            "system_id": 31002238,
            "solar_system_name": "Y" * LONG,
            "victim": {**party, "character_id": 2119876543, "character_name": name},
            "attackers": [
                {**party, "character_id": 2112233445 + i, "character_name": name, "damage_done": i}
                for i in range(30)
            ],
            "zkb": {"totalValue": 1e9},
        }
    )


# --- every limit --------------------------------------------------------------------------------


def test_kill_with_2000_character_names_fits(within_limits: Check) -> None:
    km = long_kill("V" * LONG)
    ctx = KillContext(
        map_name="M" * LONG, role="loss", system_name="X" * LONG, custom_system_name="Z" * LONG
    )
    body = build_message([render_kill(km, ctx)], content="c" * 3000, username="u" * 200)
    within_limits(body)
    assert len(body["username"]) <= 80
    assert body["embeds"][0]["description"].endswith("<t:1768069241:R>")  # the value line survives


def test_ten_long_kills_in_one_message_fit_the_total(within_limits: Check) -> None:
    km = long_kill("V" * LONG)
    names = Names(names={i: "N" * LONG for i in range(10)})
    embeds = [render_kill(km, KillContext("M" * LONG, "neutral", names=names)) for _ in range(12)]
    body = build_message(embeds)
    within_limits(body)
    assert len(body["embeds"]) == 10


def test_other_renderers_with_2000_character_names_fit(within_limits: Check) -> None:
    big = "W" * LONG
    system = render_system(
        AddSystem(solar_system_id=31001503, name=big),
        map_name=big,
        system_name=big,
        static_info={"region_name": big, "effect_name": big, "class_title": big, "statics": [big]},
    )
    character = render_character(
        CharacterAdded(name=big),
        eve_id=2119876543,
        name=big,
        corporation=(1, big, big),
        alliance=(2, big, None),
        map_name=big,
    )
    rally = RallyPointAdded(
        solar_system_id=1, character_name=big, system_name=big, message=big * 3, rally_point_id=big
    )
    for embed in (system, character, render_rally(rally, system_display_name=big, now=NOW)):
        within_limits(build_message([embed]))
    within_limits(
        build_message([system, character, render_rally(rally, system_display_name=big, now=NOW)])
    )
    within_limits(rally_message(rally, system_display_name=big, now=NOW, role_mentions=["1"] * 300))


def test_hostile_body_is_brought_within_every_limit(within_limits: Check) -> None:
    field = {"name": "n" * 999, "value": "v" * 9999, "inline": True}
    embed: dict[str, Any] = {
        "title": "t" * 999,
        "description": "d" * 9999,
        "fields": [field] * 30,
        "footer": {"text": "f" * 9999},
        "author": {"name": "a" * 999},
    }
    body: dict[str, Any] = {"content": "x" * 9999, "embeds": [embed] * 11}
    result = enforce_limits(body)
    within_limits(result)
    assert len(result["embeds"]) == 10
    assert all(len(e["fields"]) == 25 for e in result["embeds"])
    assert body["embeds"][0]["title"] == "t" * 999  # the input is not modified


# --- escaping and mentions ----------------------------------------------------------------------

BOLD = re.compile(r"(?<!\\)\*\*bold")


def test_markdown_in_names_does_not_render() -> None:
    data = {
        "killmail_id": 7,
        "system_id": 31002238,
        "victim": {"character_id": 2119876543, "character_name": "**bold** _x_ [a](http://e)"},
        "attackers": [{"character_id": 2112233445, "character_name": "`code` ~~s~~ > q"}],
    }
    embed = render_kill(Killmail.from_wire(data), KillContext(map_name="m", role="neutral"))
    description = embed["description"]
    assert not BOLD.search(description)
    assert r"\*\*bold\*\* \_x\_ \[a\]\(http://e\)" in description
    assert r"\`code\` \~\~s\~\~ \> q" in description


def test_everyone_in_a_name_cannot_ping() -> None:
    data = {
        "killmail_id": 7,
        "system_id": 31002238,
        "victim": {"character_id": 2119876543, "character_name": "@everyone"},
        "attackers": [{"character_id": 2112233445, "character_name": "@here <@123>"}],
    }
    body = build_message(
        [render_kill(Killmail.from_wire(data), KillContext(map_name="m", role="neutral"))]
    )
    assert body["allowed_mentions"] == {"parse": []}
    assert "content" not in body
    description = body["embeds"][0]["description"]
    assert "@everyone" not in description
    assert "@here" not in description
    assert "@\u200beveryone" in description
    assert r"\<@123\>" in description


def test_escape_markdown_characters() -> None:
    assert escape_markdown(r"\*_~`|>[]()") == r"\\\*\_\~\`\|\>\[\]\(\)"
    assert escape_markdown("@EveryOne and @here") == "@\u200bEveryOne and @\u200bhere"
    assert escape_markdown("Plain Name 123") == "Plain Name 123"


def test_mention_here_is_the_only_way_to_parse_everyone() -> None:
    body = build_message([], content="Priority system! @everyone", mention_here=True)
    assert body["content"] == "@here Priority system! @\u200beveryone"
    assert body["allowed_mentions"] == {"parse": ["everyone"]}
    plain = build_message([], content="@here hi")
    assert plain["content"] == "@\u200bhere hi"
    assert plain["allowed_mentions"] == {"parse": []}


def test_user_mentions_and_invalid_ids() -> None:
    body = build_message([], content="kill", user_mentions=["42", "42"])
    assert body["content"] == "<@42> kill"
    assert body["allowed_mentions"] == {"parse": [], "users": ["42"]}
    with pytest.raises(ValueError, match="snowflake"):
        build_message([], role_mentions=["everyone"])


# --- truncate and enforce_limits edge cases -----------------------------------------------------


def test_truncate_edges() -> None:
    assert truncate("a" * 10, 10) == "a" * 10
    cut = truncate("a" * 11, 10)
    assert cut == "a" * 9 + ELLIPSIS
    assert len(cut) == 10
    assert truncate("abc def", 5) == "abc" + ELLIPSIS  # no space before the ellipsis
    assert truncate("abc", 0) == ""
    assert truncate("abc", 1) == ELLIPSIS
    with pytest.raises(ValueError, match="limit"):
        truncate("abc", -1)


def test_exactly_at_limits_is_unchanged() -> None:
    embed = {
        "title": "t" * 256,
        "description": "d" * 4096,
        "fields": [{"name": "n" * 256, "value": "v" * 1024, "inline": False}],
        "footer": {"text": "f" * 368},
    }
    body = {"content": "c" * 2000, "embeds": [embed]}
    assert embed_total([embed]) == 6000
    assert enforce_limits(body) == body


def test_over_each_limit_ends_with_ellipsis() -> None:
    embed = {
        "title": "t" * 257,
        "fields": [{"name": "n" * 257, "value": "v" * 1025}],
        "author": {"name": "a" * 257},
    }
    result = enforce_limits({"content": "c" * 2001, "embeds": [embed]})
    fixed = result["embeds"][0]
    for text, limit in [
        (result["content"], 2000),
        (fixed["title"], 256),
        (fixed["fields"][0]["name"], 256),
        (fixed["fields"][0]["value"], 1024),
        (fixed["author"]["name"], 256),
    ]:
        assert len(text) == limit
        assert text.endswith(ELLIPSIS)


def test_whitespace_is_not_counted() -> None:
    body = {"embeds": [{"title": "   " + "t" * 256 + "\n\n"}]}
    assert enforce_limits(body)["embeds"][0]["title"] == "t" * 256


def test_blank_content_and_username_are_dropped() -> None:
    body = enforce_limits({"content": "  ", "username": "", "embeds": [{"title": "t"}]})
    assert body == {"embeds": [{"title": "t"}]}


def test_eleven_embeds_become_ten() -> None:
    body = {"embeds": [{"title": str(i)} for i in range(11)]}
    assert [e["title"] for e in enforce_limits(body)["embeds"]] == [str(i) for i in range(10)]


def test_empty_fields_get_a_placeholder() -> None:
    body = {"embeds": [{"fields": [{"name": "", "value": "  "}, {"name": None, "value": "x"}]}]}
    fields = enforce_limits(body)["embeds"][0]["fields"]
    assert fields == [
        {"name": PLACEHOLDER, "value": PLACEHOLDER},
        {"name": PLACEHOLDER, "value": "x"},
    ]
    assert "\u200b" not in PLACEHOLDER


def test_total_over_6000_shrinks_descriptions_first_largest_first() -> None:
    embeds = [
        {"title": "a", "description": "x" * 4000, "fields": [{"name": "n", "value": "v" * 500}]},
        {"title": "b", "description": "y" * 2000},
    ]
    result = enforce_limits({"embeds": copy.deepcopy(embeds)})["embeds"]
    assert embed_total(result) <= 6000
    assert result[0]["description"].endswith(ELLIPSIS)
    assert result[1]["description"] == "y" * 2000  # the smaller one is untouched
    assert result[0]["fields"][0]["value"] == "v" * 500  # field values only after descriptions


def test_total_over_6000_then_shrinks_field_values() -> None:
    fields = [{"name": str(i), "value": "v" * 1024} for i in range(8)]
    embeds = [{"title": "t", "description": "d" * 100, "fields": fields}]
    result = enforce_limits({"embeds": embeds})["embeds"][0]
    assert embed_total([result]) <= 6000
    assert "description" not in result  # shrunk away first
    values = [len(f["value"]) for f in result["fields"]]
    assert max(values) - min(values) <= 1  # largest first levels them out
    assert all(v.endswith(ELLIPSIS) for v in (f["value"] for f in result["fields"]))


_MENTION = re.compile(r"<@(&?)(\d+)>")


async def test_a_rally_pinging_more_than_fits_is_accepted_by_discord() -> None:
    """101 rally roles (``rally_group_ids`` has no cap) and 50 pilots in voice: Discord takes at
    most 100 ids per ``allowed_mentions`` list and 2,000 characters of content. The message must
    still be accepted, and every mention in it whole and allowed (a mention cut by the limit
    pings nobody and shows as garbage)."""
    roles = [str(1_100_000_000_000_000_000 + i) for i in range(101)]
    users = [str(1_200_000_000_000_000_000 + i) for i in range(50)]
    rally = RallyPointAdded(solar_system_id=30000142, character_name="Pilot", system_name="Jita")
    body = rally_message(
        rally, system_display_name=None, now=NOW, role_mentions=roles, user_mentions=users
    )
    fake = FakeDiscord(webhook_limit=100)
    server = AppServer(fake.app)
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            answer = await client.post(webhook_url(server.url, "1"), json=body)
    finally:
        await server.stop()
    assert answer.status_code == 204, answer.text
    content = fake.received[0].body["content"]
    mentioned = _MENTION.findall(content)
    allowed = body["allowed_mentions"]
    assert {i for amp, i in mentioned if amp} == set(allowed["roles"])
    assert {i for amp, i in mentioned if not amp} == set(allowed.get("users", []))
    rest = _MENTION.sub("", content).strip(" ")  # the text after the mentions may be cut
    assert "Rally point created!".startswith(rest.removesuffix(ELLIPSIS))
    assert allowed["roles"] == roles[: len(allowed["roles"])]  # the first roles configured
