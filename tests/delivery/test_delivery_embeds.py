"""Embed renderers: golden files for every layout, plus the behaviour the goldens rely on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from wanderer_console.delivery.embeds import (
    KILL_COLOR,
    LOSS_COLOR,
    KillContext,
    Names,
    build_message,
    format_isk,
    isk_color,
    kill_color,
    kill_role,
    kill_story,
    rally_message,
    render_character,
    render_kill,
    render_rally,
    render_system,
)
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.map_events import AddSystem, CharacterAdded, RallyPointAdded

Golden = Callable[[str, Any], None]

KILL_TIME = "2026-01-10T18:20:41Z"
NOW = datetime(2026, 1, 10, 19, 0, 0, tzinfo=UTC)

VICTIM_ID = 2119876543
ATTACKER_ID = 2112233445
TOP_ID = 2113344556
VICTIM_CORP = 98765432
ATTACKER_CORP = 98000001
TOP_CORP = 98000002


def wire_kill(*, with_names: bool = True, attackers: int = 3) -> dict[str, Any]:
    """The PROTOCOLS.md §4 killmail, with a third attacker that did the most damage."""
    victim: dict[str, Any] = {
        "character_id": VICTIM_ID,
        "corporation_id": VICTIM_CORP,
        "alliance_id": 99012345,
        "ship_type_id": 11377,
        "damage_taken": 9120,
    }
    final: dict[str, Any] = {
        "character_id": ATTACKER_ID,
        "corporation_id": ATTACKER_CORP,
        "ship_type_id": 12013,
        "damage_done": 3120,
        "final_blow": True,
        "security_status": -2.3,
    }
    top: dict[str, Any] = {
        "character_id": TOP_ID,
        "corporation_id": TOP_CORP,
        "ship_type_id": 17738,
        "damage_done": 6000,
        "final_blow": False,
    }
    npc = {"corporation_id": 1000125, "ship_type_id": 34495, "damage_done": 0, "final_blow": False}
    if with_names:
        victim |= {"character_name": "Some Pilot", "corporation_ticker": "ABCD"}
        victim |= {"ship_name": "Nemesis"}
        final |= {"character_name": "Other Pilot", "corporation_ticker": "EFGH"}
        final |= {"ship_name": "Sabre"}
        top |= {"character_name": "Third Pilot", "ship_name": "Machariel"}
    party = [final, top, npc][:attackers]
    data: dict[str, Any] = {
        "killmail_id": 128734512,
        "kill_time": KILL_TIME,
        "system_id": 31002238,
        "attacker_count": len(party),
        "victim": victim,
        "attackers": party,
        "zkb": {
            "totalValue": 1_570_000_000.0,
            "droppedValue": 120_000_000.0,
            "hash": "3f9e0c1d2b7a4e55aa01b2c3d4e5f60718293a4b",
        },
    }
    if with_names:
        data["solar_system_name"] = "J154624"
    return data


LOOKUP = Names(
    names={
        VICTIM_ID: "Lookup Victim",
        ATTACKER_ID: "Lookup Attacker",
        TOP_ID: "Lookup Top",
        31002238: "J154624",
    },
    tickers={VICTIM_CORP: "VICT", ATTACKER_CORP: "ATTK", TOP_CORP: "TOPD"},
    ship_names={11377: "Nemesis", 12013: "Sabre", 17738: "Machariel", 34495: "Drifter Battleship"},
)


# --- kill goldens -------------------------------------------------------------------------------


def test_kill_with_embedded_names(golden: Golden) -> None:
    km = Killmail.from_wire(wire_kill())
    ctx = KillContext(map_name="Home Chain", role=kill_role(km, {VICTIM_ID}))
    body = build_message([render_kill(km, ctx)], username="Wanderer")
    golden("kill_embedded_names", body)
    embed = body["embeds"][0]
    assert embed["title"] == "Nemesis destroyed in J154624"
    assert embed["author"]["name"] == "Loss"
    assert embed["color"] == LOSS_COLOR
    assert embed["description"].endswith("Value: 1.57B ISK • <t:1768069241:R>")
    assert "ISK ISK" not in embed["description"]
    assert embed["timestamp"] == KILL_TIME


def test_kill_names_from_lookup(golden: Golden) -> None:
    km = Killmail.from_wire(wire_kill(with_names=False))
    ctx = KillContext(map_name="Home Chain", role=kill_role(km, {ATTACKER_ID}), names=LOOKUP)
    embed = render_kill(km, ctx)
    golden("kill_lookup_names", embed)
    assert embed["title"] == "Nemesis destroyed in J154624"
    assert embed["author"]["name"] == "Kill"
    assert embed["color"] == KILL_COLOR
    assert "Lookup Victim" in embed["description"]
    assert "Top Damage was done by **[Lookup Top]" in embed["description"]


def test_kill_without_any_names_uses_fallbacks(golden: Golden) -> None:
    km = Killmail.from_wire(wire_kill(with_names=False, attackers=1))
    embed = render_kill(km, KillContext(map_name="", role="neutral"))
    golden("kill_fallbacks", embed)
    assert embed["title"] == "Unknown Ship destroyed in System 31002238"
    assert (
        "**[Unknown Pilot](https://zkillboard.com/character/2119876543/)**"
        in (embed["description"])
    )
    assert "solo." in embed["description"]
    assert "????" not in embed["description"]
    assert embed["footer"] == {"text": "Killmail ID: 128734512"}


def test_embedded_names_win_over_lookup() -> None:
    km = Killmail.from_wire(wire_kill())
    embed = render_kill(km, KillContext(map_name="m", role="neutral", names=LOOKUP))
    assert "Some Pilot" in embed["description"]
    assert "Lookup" not in embed["description"]
    assert "(ABCD)" not in embed["description"]  # the ticker is a link
    assert "[ABCD](https://zkillboard.com/corporation/98765432/)" in embed["description"]


def test_custom_system_name_is_the_title() -> None:
    km = Killmail.from_wire(wire_kill())
    ctx = KillContext(
        map_name="m", role="neutral", system_name="J154624", custom_system_name="Home"
    )
    assert render_kill(km, ctx)["title"] == "Nemesis destroyed in Home"
    ctx = KillContext(map_name="m", role="neutral", system_name="J999999")
    assert render_kill(km, ctx)["title"] == "Nemesis destroyed in J999999"


def test_one_story_renders_every_map_as_rendering_each_alone() -> None:
    """A kill notifying many maps is told once (:func:`kill_story`) and dressed per map: the
    embeds are those each map would get rendered on its own."""
    km = Killmail.from_wire(wire_kill(with_names=False))
    notable = [{"name": "Pithum C-Type Medium Shield Booster", "quantity": 1, "value": 2.1e9}]
    story = kill_story(km, LOOKUP, notable)
    contexts = [
        KillContext(map_name="Home", role="loss", names=LOOKUP, notable_items=notable),
        KillContext(
            map_name="Staging",
            role="kill",
            system_name="J154624",
            custom_system_name="Home hole",
            names=LOOKUP,
            notable_items=notable,
        ),
        KillContext(map_name="", role="neutral", names=LOOKUP, notable_items=notable),
    ]
    shared = [render_kill(km, ctx, story) for ctx in contexts]
    assert shared == [render_kill(km, ctx) for ctx in contexts]
    assert "Pithum C-Type" in shared[0]["description"]
    assert len({e["footer"]["text"] for e in shared}) == 3
    assert [e["author"]["name"] for e in shared] == ["Loss", "Kill", "Killmail"]
    assert shared[1]["title"] == "Nemesis destroyed in Home hole"


def test_kill_role_uses_the_given_tracked_characters() -> None:
    km = Killmail.from_wire(wire_kill())
    assert kill_role(km, {VICTIM_ID, ATTACKER_ID}) == "loss"  # a tracked victim wins
    assert kill_role(km, {TOP_ID}) == "kill"
    assert kill_role(km, set()) == "neutral"
    assert kill_role(km, {12345}) == "neutral"


@pytest.mark.parametrize(
    ("value", "color"),
    [
        (5e9, 0xFF0000),
        (4.99e9, 0xFF6600),
        (1e9, 0xFF6600),
        (1e8, 0xFFFF00),
        (1e7, 0x00FF00),
        (9_999_999, 0x808080),
        (None, 0x808080),
    ],
)
def test_isk_colour_scale(value: float | None, color: int) -> None:
    assert isk_color(value) == color


def test_neutral_colour_uses_dropped_then_total_value() -> None:
    data = wire_kill()
    assert kill_color(Killmail.from_wire(data), "neutral") == 0xFFFF00  # dropped 120M
    data["zkb"] = {"totalValue": 6e9}
    assert kill_color(Killmail.from_wire(data), "neutral") == 0xFF0000
    assert kill_color(Killmail.from_wire(data), "loss") == LOSS_COLOR


def test_unknown_value_and_time_still_render() -> None:
    data = wire_kill()
    data.pop("zkb")
    data.pop("kill_time")
    embed = render_kill(Killmail.from_wire(data), KillContext(map_name="m", role="neutral"))
    assert "Value" not in embed["description"]
    assert "timestamp" not in embed


def test_structure_victim_and_no_attackers() -> None:
    data = wire_kill()
    data["victim"] = {
        "corporation_id": VICTIM_CORP,
        "corporation_name": "Owners",
        "ship_type_id": 35832,
    }
    data["attackers"] = []
    data.pop("attacker_count")
    embed = render_kill(Killmail.from_wire(data), KillContext(map_name="m", role="neutral"))
    assert embed["description"].startswith(
        "**[Owners](https://zkillboard.com/corporation/98765432/)** lost their **Unknown Ship**"
        " to unknown attackers."
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (84_523_000.5, "84.5M"),
        (1_570_000_000, "1.57B"),
        (950_000, "950.0K"),
        (None, "Unknown"),
        (999_960_000, "1.00B"),
        (512, "512"),
        (0, "0"),
    ],
)
def test_format_isk(value: float | None, text: str) -> None:
    assert format_isk(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(1e300, "1.00e+300"), (-1e300, "-1.00e+300"), (1e15, "1.00e+15"), (999.994e12, "999.99T")],
)
def test_a_huge_isk_value_stays_short(value: float, text: str) -> None:
    """A bogus total of 1e300 ISK rendered as a 293-character number in the kill's value line
    (and could push a Recent Kills field past 1,024 characters, cutting its last kill); past
    999.99T the value is written in scientific notation."""
    assert format_isk(value) == text
    data = wire_kill()
    data["zkb"] = {**data["zkb"], "totalValue": value}
    embed = render_kill(Killmail.from_wire(data), KillContext(map_name="m", role="neutral"))
    assert f"Value: {text} ISK • <t:" in embed["description"]


# --- system goldens -----------------------------------------------------------------------------

WORMHOLE_STATIC = {
    "data": {
        "solar_system_id": 31001503,
        "solar_system_name": "J155416",
        "region_name": "D-R00018",
        "security": "-1.0",
        "class_title": "C4",
        "type_description": "Class 4",
        "effect_name": "Pulsar",
        "is_shattered": False,
        "statics": ["C247", "P060"],
        "static_details": [
            {"name": "C247", "destination": {"id": "c3", "name": "Class 3", "short_name": "C3"}},
            {"name": "P060", "destination": {"id": "c1", "name": "Class 1", "short_name": "C1"}},
        ],
    }
}


def test_system_wormhole_with_static_info(golden: Golden) -> None:
    payload = AddSystem(solar_system_id=31001503, name="J155416")
    embed = render_system(
        payload, map_name="Home Chain", system_name=None, static_info=WORMHOLE_STATIC
    )
    golden("system_wormhole", embed)
    assert embed["title"] == "New System Tracked: J155416"
    assert embed["description"] == "A new Class 4 wormhole system has been added to tracking."
    assert [f["name"] for f in embed["fields"]] == [
        "System",
        "Class",
        "Static Wormholes",
        "Region",
        "Effect",
    ]


def test_system_kspace(golden: Golden) -> None:
    payload = AddSystem(solar_system_id=30002537)
    static = {"solar_system_name": "Amamake", "security": "0.37", "region_name": "Heimatar"}
    embed = render_system(payload, map_name="Home Chain", system_name=None, static_info=static)
    golden("system_kspace", embed)
    assert embed["description"] == "A new low-sec system has been added to tracking."
    assert {"name": "Security", "value": "0.4 (Low-sec)", "inline": True} in embed["fields"]


def test_system_without_any_name(golden: Golden) -> None:
    embed = render_system(
        AddSystem(solar_system_id=31000999), map_name="Home", system_name=None, static_info=None
    )
    golden("system_no_name", embed)
    assert embed["title"] == "New System Tracked: System 31000999"


@pytest.mark.parametrize(
    ("security", "value", "color"),
    [
        ("0.946", "0.9 (High-sec)", 0x00FF00),
        ("-0.04", "0.0 (Null-sec)", 0xFF0000),
        # EVE shows a positive security under 0.05 as 0.1: those systems are low-sec.
        ("0.03", "0.1 (Low-sec)", 0xFFFF00),
        # Half rounds up, as in the client (Python's round gave 0.2 and 0.4).
        ("0.25", "0.3 (Low-sec)", 0xFFFF00),
        ("0.45", "0.5 (High-sec)", 0x00FF00),
        ("0.4499", "0.4 (Low-sec)", 0xFFFF00),
    ],
)
def test_system_security_bands(security: str, value: str, color: int) -> None:
    embed = render_system(
        AddSystem(solar_system_id=30000142, name="X"),
        map_name="m",
        system_name=None,
        static_info={"security": security},
    )
    assert embed["color"] == color
    assert {"name": "Security", "value": value, "inline": True} in embed["fields"]


@pytest.mark.parametrize("security", ["NaN", "nan", "inf", "-Infinity", "1e400"])
def test_a_security_that_is_not_a_number_is_unknown(security: str) -> None:
    """Static info whose security is not a finite number (a string "NaN" reads as a float in
    Python) showed "nan (Null-sec)" in a red null-sec embed; the security is unknown instead."""
    embed = render_system(
        AddSystem(solar_system_id=30000142, name="X"),
        map_name="m",
        system_name=None,
        static_info={"security": security},
    )
    assert embed["color"] == 0x3498DB  # unknown band
    assert embed["description"] == "A new system has been added to tracking."
    assert all(f["name"] != "Security" for f in embed["fields"])


def test_system_name_precedence() -> None:
    payload = AddSystem(solar_system_id=31001503, name="Payload")
    kwargs: dict[str, Any] = {"map_name": "m", "static_info": WORMHOLE_STATIC}
    assert render_system(payload, system_name="Given", **kwargs)["title"].endswith(": Given")
    assert render_system(payload, system_name=None, **kwargs)["title"].endswith(": Payload")
    bare = AddSystem(solar_system_id=31001503)
    assert render_system(bare, system_name=None, **kwargs)["title"].endswith(": J155416")


# --- character goldens --------------------------------------------------------------------------


def test_character_with_corp_and_alliance(golden: Golden) -> None:
    payload = CharacterAdded(id="5a1c6d9e-uuid", name="Some Pilot")
    embed = render_character(
        payload,
        eve_id=2119876543,
        name="Some Pilot",
        corporation=(98765432, "Some Corp", "ABCD"),
        alliance=(99012345, "Some Alliance", None),
    )
    golden("character_full", embed)
    values = {f["name"]: f["value"] for f in embed["fields"]}
    assert values["Corporation"] == "[ABCD](https://zkillboard.com/corporation/98765432/)"
    assert values["Alliance"] == "[Some Alliance](https://zkillboard.com/alliance/99012345/)"
    assert values["Status"] == "🟢 Tracked"


def test_character_without_corp_or_alliance(golden: Golden) -> None:
    payload = CharacterAdded(id="5a1c6d9e-uuid", name="Lone Pilot", character_eve_id="95000001")
    embed = render_character(payload, eve_id=None, name=None, corporation=None, alliance=None)
    golden("character_minimal", embed)
    assert [f["name"] for f in embed["fields"]] == ["Character", "Corporation", "Status"]
    assert embed["fields"][1]["value"] == "Unknown Corporation"
    assert embed["footer"] == {"text": "Character ID: 95000001"}


# --- rally goldens ------------------------------------------------------------------------------

RALLY = RallyPointAdded(
    rally_point_id="0b9c6f7e-rally",
    solar_system_id=31001503,
    character_name="Some Pilot",
    character_eve_id="2119876543",
    system_name="J155416",
    message="Form up on the Nestor, bring links",
)


def test_rally_with_message_and_roles(golden: Golden) -> None:
    body = rally_message(
        RALLY, system_display_name="Home", now=NOW, role_mentions=["111222333444555666", "777"]
    )
    golden("rally_with_message_roles", body)
    assert body["content"] == "<@&111222333444555666> <@&777> Rally point created!"
    assert body["allowed_mentions"] == {"parse": [], "roles": ["111222333444555666", "777"]}
    assert body["embeds"][0]["timestamp"] == "2026-01-10T19:00:00Z"


def test_rally_without_message(golden: Golden) -> None:
    payload = RALLY.model_copy(update={"message": None})
    embed = render_rally(payload, system_display_name=None, now=NOW)
    golden("rally_no_message", embed)
    assert embed["description"] == "**Some Pilot** has created a rally point in **J155416**"


def test_rally_without_roles_has_plain_content() -> None:
    body = rally_message(RALLY, system_display_name=None, now=NOW)
    assert body["content"] == "Rally point created!"
    assert body["allowed_mentions"] == {"parse": []}


# --- Recent Kills (the notifier's field on new-system notifications) ---------------------------

RECENT = [
    {"killmail_id": 128734512, "kill_time": 1768069241.0, "ship": "Nemesis", "value": 1.57e9},
    {"killmail_id": 128734400, "kill_time": 1768060000.0, "ship": None, "value": 84_500_000.0},
    {"killmail_id": 128734399, "kill_time": None, "ship": "Sabre [*bold*]", "value": None},
]


def test_system_with_recent_kills(golden: Golden) -> None:
    payload = AddSystem(solar_system_id=31001503, name="J155416")
    embed = render_system(
        payload,
        map_name="Home Chain",
        system_name=None,
        static_info=WORMHOLE_STATIC,
        recent_kills=RECENT,
    )
    golden("system_recent_kills", embed)
    field = embed["fields"][-1]
    assert field["name"] == "Recent Kills"
    assert field["inline"] is False
    lines = field["value"].split("\n")
    assert lines[0] == (
        "[Nemesis](https://zkillboard.com/kill/128734512/) • 1.57B ISK • <t:1768069241:R>"
    )
    assert lines[1].startswith("[Unknown Ship](")
    assert "\\*bold\\*" in lines[2]  # a ship name cannot inject markdown
    assert lines[2].endswith("• Unknown ISK")


def test_system_recent_kills_none_and_unknown() -> None:
    payload = AddSystem(solar_system_id=31001503, name="J155416")
    common: dict[str, Any] = {"map_name": "", "system_name": None, "static_info": None}
    empty = render_system(payload, recent_kills=[], **common)
    assert empty["fields"][-1] == {
        "name": "Recent Kills",
        "value": "No recent kills",
        "inline": False,
    }
    unknown = render_system(payload, recent_kills=None, **common)
    assert all(f["name"] != "Recent Kills" for f in unknown["fields"])


# --- the plain-text form (targets configured to receive text only) -----------------------------


def test_plain_text_kill_keeps_the_ping_and_drops_the_embed(golden: Golden) -> None:
    from wanderer_console.delivery.plain_text import plain_text

    km = Killmail.from_wire(wire_kill())
    ctx = KillContext(map_name="Home Chain", role=kill_role(km, {VICTIM_ID}))
    body = plain_text(build_message([render_kill(km, ctx)], username="Wanderer", mention_here=True))
    golden("plain_kill", body)
    assert "embeds" not in body
    assert body["username"] == "Wanderer"
    assert body["allowed_mentions"] == {"parse": ["everyone"]}
    first, title, *_ = body["content"].split("\n")
    assert first == "@here"
    assert title == "**Nemesis destroyed in J154624** <https://zkillboard.com/kill/128734512/>"
    assert "Value: 1.57B ISK • <t:1768069241:R>" in body["content"]


def test_plain_text_system_with_recent_kills(golden: Golden) -> None:
    from wanderer_console.delivery.plain_text import plain_text

    payload = AddSystem(solar_system_id=31001503, name="J155416")
    embed = render_system(
        payload,
        map_name="Home Chain",
        system_name=None,
        static_info=WORMHOLE_STATIC,
        recent_kills=RECENT[:2],
    )
    body = plain_text(build_message([embed], username="Wanderer"))
    golden("plain_system", body)
    lines = body["content"].split("\n")
    assert lines[0] == "**New System Tracked: J155416**"
    assert "Class: C4" in lines
    assert lines[lines.index("Recent Kills:") + 1].startswith("[Nemesis](")
    assert lines[-1] == "-# System ID: 31001503 • Map: Home Chain"


def test_plain_text_rally_keeps_its_role_mentions(golden: Golden) -> None:
    from wanderer_console.delivery.plain_text import plain_text

    body = plain_text(
        rally_message(RALLY, system_display_name="Home", now=NOW, role_mentions=["777"])
    )
    golden("plain_rally", body)
    assert body["content"].startswith("<@&777> Rally point created!\n**")
    assert body["allowed_mentions"] == {"parse": [], "roles": ["777"]}


def test_plain_text_neutralises_mass_mentions_and_fits_the_limit() -> None:
    from wanderer_console.delivery.plain_text import plain_text

    long = {"title": "@everyone look", "description": "x" * 5000}
    body = plain_text({"embeds": [long], "allowed_mentions": {"parse": []}})
    assert len(body["content"]) <= 2000
    assert "@everyone" not in body["content"]
    assert body["content"].endswith("…")


def test_plain_text_never_cuts_the_mentions_it_starts_with() -> None:
    """A text-only rally whose role mentions fill the 2,000 characters (87 roles of 18 digits,
    23 characters each with the space): the rally's text has to give way, never a mention. A
    mention cut in half pings nobody, and the role it was for is left out of the rally."""
    import re

    from wanderer_console.delivery.plain_text import plain_text

    roles = [str(10**17 + i) for i in range(87)]
    body = rally_message(RALLY, system_display_name="Home", now=NOW, role_mentions=roles)
    assert len(body["content"]) == 2000  # the mentions alone fill the content
    text = plain_text(body)["content"]
    assert len(text) <= 2000
    assert re.findall(r"<@&(\d+)>", text) == roles == body["allowed_mentions"]["roles"]


# --- notable loot (Janice) ---------------------------------------------------------------------

NOTABLE = [
    {"name": "Abyssal Damage Control", "quantity": 1, "value": 412_000_000.0},
    {"name": "Pithum A-Type Medium Shield Booster", "quantity": 2, "value": 96_500_000.0},
]


def test_kill_with_notable_items(golden: Golden) -> None:
    km = Killmail.from_wire(wire_kill())
    ctx = KillContext(map_name="Home Chain", role="neutral", notable_items=NOTABLE)
    embed = render_kill(km, ctx)
    golden("kill_notable_items", embed)
    story, notable, value = embed["description"].split("\n\n")
    assert notable.split("\n") == [
        "**Notable Items:**",
        "• Abyssal Damage Control (~412.0M ISK)",
        "• Pithum A-Type Medium Shield Booster x2 (~96.5M ISK)",
    ]
    assert value == "Value: 1.57B ISK • <t:1768069241:R>"
    assert story.startswith("**[Some Pilot]")
    without = render_kill(km, KillContext(map_name="Home Chain", role="neutral"))
    assert "Notable Items" not in without["description"]


def test_appraisal_parsing_and_the_notable_rule() -> None:
    from wanderer_console.enrich.notable import parse_appraisal

    body = {
        "items": [
            {"amount": 3, "itemType": {"name": "Nanite Repair Paste"}, "effectivePrices": {}},
            {"amount": 1, "itemType": {"name": "X"}, "immediatePrices": {"buyPriceTotal": 5.0}},
        ]
    }
    assert parse_appraisal(body) == [
        {"name": "Nanite Repair Paste", "quantity": 3, "value": None},
        {"name": "X", "quantity": 1, "value": 5.0},
    ]
    with pytest.raises(ValueError, match="no items list"):
        parse_appraisal({"error": "nope"})
