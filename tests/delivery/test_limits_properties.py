"""Properties of Discord message safety (hypothesis): whatever goes in, what comes out fits every
Discord limit (the real constants of ``domain/discord_limits.py``, checked one by one by
:func:`tests.delivery.conftest.assert_within_limits`) and can never ping by accident."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.delivery.conftest import assert_within_limits
from wanderer_console.delivery.embeds import (
    KillContext,
    Names,
    build_message,
    build_template,
    rally_message,
    render_character,
    render_kill,
    render_rally,
    render_system,
)
from wanderer_console.domain.discord_limits import (
    CONTENT_MAX,
    EMBED_TOTAL_MAX,
    EMBEDS_MAX,
    FIELD_VALUE_MAX,
    FIELDS_MAX,
    FOOTER_TEXT_MAX,
    MENTION_IDS_MAX,
    USERNAME_MAX,
    _enforce_embed,
    embed_total,
    enforce_limits,
    truncate,
)
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.map_events import AddSystem, CharacterAdded, RallyPointAdded

PROPERTY = settings(
    max_examples=60,
    database=None,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NOW = datetime(2026, 1, 10, 19, 0, tzinfo=UTC)

# Short text of any kind, plus long text made by repeating a short piece (cheap to generate),
# with the characters that matter here: whitespace (trimmed), markdown, mentions, wide unicode.
_PIECES = st.text(max_size=6) | st.sampled_from(
    [
        " ",
        "\n",
        "\t",
        "\u3000",
        "\u200b",
        "*_~`|>",
        "@everyone",
        "@here",
        "<@1>",
        "é",
        "😀",
        "\U0001f1eb\U0001f1f7",
    ]
)
texts = st.one_of(
    st.text(max_size=40),
    st.builds(lambda piece, n: piece * n, _PIECES, st.integers(0, 2500)),
    st.lists(_PIECES, max_size=30).map("".join),
)
maybe_texts = st.none() | texts
long_texts = st.builds(
    lambda piece, n: piece * n, _PIECES.filter(str.strip), st.integers(300, 3000)
)
"""Text that is long once trimmed: a few of them overflow the 6000 total of a message."""
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)

fields = st.fixed_dictionaries(
    {"name": maybe_texts, "value": maybe_texts | long_texts}, optional={"inline": st.booleans()}
)
embeds = st.fixed_dictionaries(
    {},
    optional={
        "title": maybe_texts,
        "description": maybe_texts | long_texts,
        "url": st.just("https://zkillboard.com/kill/1/"),
        "color": st.integers(0, 0xFFFFFF),
        "fields": st.lists(fields, max_size=FIELDS_MAX + 5),
        "footer": st.fixed_dictionaries({"text": maybe_texts}),
        "author": st.fixed_dictionaries({"name": maybe_texts}),
    },
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "content": maybe_texts,
        "username": maybe_texts,
        "embeds": st.lists(embeds, max_size=EMBEDS_MAX + 3),
    },
)
snowflakes = st.integers(1, 2**63 - 1).map(str)

_RAW_MENTION = re.compile(r"@(everyone|here)", re.IGNORECASE)


@pytest.mark.slow
@PROPERTY
@given(body=bodies)
def test_enforce_limits_fits_every_limit_and_leaves_the_input_alone(body: dict[str, Any]) -> None:
    before = copy.deepcopy(body)
    result = enforce_limits(body)
    assert_within_limits(result)
    assert body == before
    assert enforce_limits(result) == result  # already fitting: nothing more to cut


@pytest.mark.slow
@PROPERTY
@given(body=bodies)
def test_nothing_is_dropped_or_cut_that_fits(body: dict[str, Any]) -> None:
    result = enforce_limits(body)
    # Fields are never dropped below the cap, embeds never below theirs.
    got = result.get("embeds", [])
    assert len(got) == min(len(body.get("embeds", [])), EMBEDS_MAX)
    for sent, kept in zip(body.get("embeds", []), got, strict=False):
        assert len(kept.get("fields", [])) == min(len(sent.get("fields", [])), FIELDS_MAX)
    content = (body.get("content") or "").strip()
    if content and len(content) <= CONTENT_MAX:
        assert result["content"] == content
    elif content:
        assert len(result["content"]) <= CONTENT_MAX
        assert result["content"].endswith("…")
    else:
        assert "content" not in result  # blank content is an error for Discord: it is left out


@pytest.mark.slow
@PROPERTY
@given(
    embeds_in=st.lists(embeds, max_size=EMBEDS_MAX + 2),
    content=maybe_texts,
    username=maybe_texts,
    roles=st.lists(snowflakes, max_size=30) | st.lists(snowflakes, min_size=90, max_size=120),
    users=st.lists(snowflakes, max_size=30) | st.lists(snowflakes, min_size=90, max_size=120),
    mention_here=st.booleans(),
)
def test_build_message_fits_and_pings_only_what_it_was_asked_to(
    embeds_in: list[dict[str, Any]],
    content: str | None,
    username: str | None,
    roles: list[str],
    users: list[str],
    mention_here: bool,
) -> None:
    before = copy.deepcopy(embeds_in)
    body = build_message(
        embeds_in,
        content=content,
        username=username,
        role_mentions=roles,
        user_mentions=users,
        mention_here=mention_here,
    )
    assert_within_limits(body)
    assert embeds_in == before  # the caller's embeds are left alone (each is copied to fit)
    assert enforce_limits(body) == body
    assert len(body.get("username", "")) <= USERNAME_MAX
    allowed = body["allowed_mentions"]
    assert allowed["parse"] == (["everyone"] if mention_here else [])
    # Mentions are kept whole, in order, as many as Discord takes: all when they fit.
    roles, users = list(dict.fromkeys(roles)), list(dict.fromkeys(users))
    kept_roles, kept_users = allowed.get("roles", []), allowed.get("users", [])
    assert kept_roles == roles[: len(kept_roles)]
    assert kept_users == users[: len(kept_users)]
    assert len(kept_roles) <= MENTION_IDS_MAX
    assert len(kept_users) <= MENTION_IDS_MAX
    # The content starts with exactly the kept mentions, each whole.
    tokens = body.get("content", "").split(" ")[1 if mention_here else 0 :]
    pings = [f"<@&{i}>" for i in kept_roles] + [f"<@{i}>" for i in kept_users]
    assert tokens[: len(pings)] == pings
    wanted = len(
        " ".join(
            ["@here"] * mention_here + [f"<@&{i}>" for i in roles] + [f"<@{i}>" for i in users]
        )
    )
    if wanted <= CONTENT_MAX and max(len(roles), len(users), 0) <= MENTION_IDS_MAX:
        assert (kept_roles, kept_users) == (roles, users)
    text = body.get("content", "")
    if mention_here:
        assert text.startswith("@here")
        text = text.removeprefix("@here")
    assert not _RAW_MENTION.search(text)
    for embed in body.get("embeds", []):
        assert len(embed.get("fields", [])) <= FIELDS_MAX
        assert all(len(f["value"]) <= FIELD_VALUE_MAX for f in embed.get("fields", []))


@st.composite
def killmails(draw: st.DrawFn) -> Killmail:
    """A killmail whose every name is drawn text and whose numbers are any valid ones."""
    ids = st.none() | st.integers(1, 2**62)

    def party(**extra: Any) -> dict[str, Any]:
        return {
            "character_id": draw(ids),
            "corporation_id": draw(ids),
            "ship_type_id": draw(ids),
            "character_name": draw(maybe_texts),
            "corporation_name": draw(maybe_texts),
            "corporation_ticker": draw(maybe_texts),
            "ship_name": draw(maybe_texts),
            **extra,
        }

    attackers = [
        party(damage_done=draw(st.integers(0, 10**9)), final_blow=draw(st.booleans()))
        for _ in range(draw(st.integers(0, 6)))
    ]
    return Killmail.from_wire(
        {
            "killmail_id": draw(st.integers(1, 2**62)),
            "system_id": draw(st.integers(1, 2**62)),
            "solar_system_name": draw(maybe_texts),
            "kill_time": draw(st.none() | st.datetimes(timezones=st.just(UTC)).map(str)),
            "attacker_count": draw(st.none() | st.integers(0, 10**6)),
            "victim": party(),
            "attackers": attackers,
            "zkb": {"totalValue": draw(st.none() | st.floats())},
        }
    )


@pytest.mark.slow
@PROPERTY
@given(
    km=killmails(),
    map_name=texts,
    role=st.sampled_from(["kill", "loss", "neutral"]),
    system_name=maybe_texts,
    custom=maybe_texts,
    names=st.dictionaries(st.integers(1, 50), texts, max_size=5),
    copies=st.integers(1, EMBEDS_MAX + 2),
)
def test_any_kill_renders_within_limits(
    km: Killmail,
    map_name: str,
    role: Any,
    system_name: str | None,
    custom: str | None,
    names: dict[int, str],
    copies: int,
) -> None:
    ctx = KillContext(
        map_name=map_name,
        role=role,
        system_name=system_name,
        custom_system_name=custom,
        names=Names(names=names, tickers=names, ship_names=names),
    )
    embed = render_kill(km, ctx)
    assert_within_limits(build_message([embed] * copies, username=map_name, mention_here=True))


@pytest.mark.slow
@PROPERTY
@given(
    system_id=st.integers(1, 2**62) | st.sampled_from([31000005, 31002238, 30000142, 30002187]),
    name=maybe_texts,
    system_name=maybe_texts,
    map_name=texts,
    static_info=st.none() | st.dictionaries(texts, json_values, max_size=4),
    known=st.fixed_dictionaries(
        {},
        optional={
            "security": st.floats() | texts,
            "region_name": texts,
            "effect_name": texts,
            "class_title": texts,
            "statics": st.lists(texts, max_size=4),
            "static_details": st.lists(json_values, max_size=3),
            "is_shattered": st.booleans(),
            "type_description": texts,
        },
    ),
)
def test_any_new_system_renders_within_limits(
    system_id: int,
    name: str | None,
    system_name: str | None,
    map_name: str,
    static_info: dict[str, Any] | None,
    known: dict[str, Any],
) -> None:
    info = {**(static_info or {}), **known}
    embed = render_system(
        AddSystem(solar_system_id=system_id, name=name),
        map_name=map_name,
        system_name=system_name,
        static_info=info,
    )
    assert_within_limits(build_message([embed]))


org = st.none() | st.tuples(st.integers(1, 2**62), maybe_texts, maybe_texts)


@PROPERTY
@given(
    payload_name=maybe_texts,
    payload_eve_id=st.none() | texts | st.integers(),
    eve_id=st.none() | st.integers(1, 2**62),
    name=maybe_texts,
    corporation=org,
    alliance=org,
    map_name=maybe_texts,
)
def test_any_new_character_renders_within_limits(
    payload_name: str | None,
    payload_eve_id: str | int | None,
    eve_id: int | None,
    name: str | None,
    corporation: tuple[int, str | None, str | None] | None,
    alliance: tuple[int, str | None, str | None] | None,
    map_name: str | None,
) -> None:
    embed = render_character(
        CharacterAdded(name=payload_name, character_eve_id=payload_eve_id),
        eve_id=eve_id,
        name=name,
        corporation=corporation,
        alliance=alliance,
        map_name=map_name,
    )
    assert_within_limits(build_message([embed]))


@PROPERTY
@given(
    pilot=maybe_texts,
    system_name=maybe_texts,
    display=maybe_texts,
    message=maybe_texts,
    rally_id=maybe_texts,
    eve_id=st.none() | texts | st.integers(),
    map_name=maybe_texts,
    roles=st.lists(snowflakes, max_size=300),
    mention_here=st.booleans(),
)
def test_any_rally_renders_within_limits(
    pilot: str | None,
    system_name: str | None,
    display: str | None,
    message: str | None,
    rally_id: str | None,
    eve_id: str | int | None,
    map_name: str | None,
    roles: list[str],
    mention_here: bool,
) -> None:
    payload = RallyPointAdded(
        solar_system_id=31002238,
        character_name=pilot,
        system_name=system_name,
        message=message,
        rally_point_id=rally_id,
        character_eve_id=eve_id,
    )
    embed = render_rally(payload, system_display_name=display, now=NOW, map_name=map_name)
    assert_within_limits(build_message([embed]))
    body = rally_message(
        payload,
        system_display_name=display,
        now=NOW,
        role_mentions=roles,
        mention_here=mention_here,
        username=map_name,
        map_name=map_name,
    )
    assert_within_limits(body)


@PROPERTY
@given(text=texts, limit=st.integers(0, 3000))
def test_truncate_never_exceeds_its_limit_and_keeps_a_prefix(text: str, limit: int) -> None:
    cut = truncate(text, limit)
    assert len(cut) <= limit
    if len(text) <= limit:
        assert cut == text
    elif limit:
        assert cut.endswith("…")
        assert text.startswith(cut[:-1])


@pytest.mark.slow
@PROPERTY
@given(
    embeds_in=st.lists(embeds, min_size=1, max_size=3),
    footers=st.lists(maybe_texts | long_texts, min_size=1, max_size=4),
    content=maybe_texts,
)
def test_a_template_with_another_footer_is_the_message_built_with_it(
    embeds_in: list[dict[str, Any]], footers: list[str | None], content: str | None
) -> None:
    """:meth:`MessageTemplate.with_footer` gives exactly what :func:`build_message` builds with
    that footer, or ``None``, and ``None`` only where the 6,000 total shortened (or would
    shorten) a text: a kill's message for hundreds of maps is built once and re-footered."""
    first = [dict(embed, footer={"text": "Killmail ID: 1 • Map: a"}) for embed in embeds_in[:1]]
    first += embeds_in[1:]
    template = build_template(first, content=content, username="Wanderer")
    assert template.body == build_message(first, content=content, username="Wanderer")
    for text in footers:
        other = [dict(first[0], footer={"text": text}), *first[1:]]
        built = build_message(other, content=content, username="Wanderer")
        got = template.with_footer("" if text is None else text)
        if got is not None:
            assert got == built
            assert_within_limits(got)
        else:
            # Only a total over the limit (this body's or the new one's) is built whole.
            plain = [dict(first[0], footer={"text": text}), *first[1:]]
            over_before = template.room < 0
            over_after = sum(_unshrunk_total(e) for e in plain[:EMBEDS_MAX]) > EMBED_TOTAL_MAX
            assert over_before or over_after


def _unshrunk_total(embed: dict[str, Any]) -> int:
    """An embed's count toward the 6,000 total after its own limits, before the total's."""
    return embed_total([_enforce_embed(copy.deepcopy(embed))])


def test_a_template_is_refootered_without_a_new_build_when_it_fits() -> None:
    """The common case takes the short way (a test above would pass if it never did)."""
    embed = {"title": "Loki destroyed in Jita", "description": "x" * 500, "footer": {"text": "a"}}
    template = build_template([embed], username="Wanderer")
    got = template.with_footer("  Killmail ID: 1 • Map: " + "b" * 3000)
    assert got is not None
    assert got["embeds"][0]["footer"]["text"].endswith("…")
    assert len(got["embeds"][0]["footer"]["text"]) == FOOTER_TEXT_MAX
    assert got["embeds"][0]["description"] is template.body["embeds"][0]["description"]
    assert template.body["embeds"][0]["footer"] == {"text": "a"}  # the template is untouched


def _embed_of(total: int) -> dict[str, Any]:
    """An embed counting ``total`` toward the 6,000 (its own limits kept), a 20-character
    footer included."""
    rest, values = total - 20 - 4000, []
    while rest > 1:  # each field: a one-character name and a value of at most 1,024
        values.append(min(rest - 1, FIELD_VALUE_MAX))
        rest -= 1 + values[-1]
    return {
        "description": "d" * 4000,
        "fields": [{"name": "n", "value": "v" * value} for value in values],
        "footer": {"text": "a" * 20},
    }


@pytest.mark.parametrize(
    ("total", "footer"),
    [
        pytest.param(
            EMBED_TOTAL_MAX - 10, "b" * 40, id="the-template-fits-the-new-footer-does-not"
        ),
        pytest.param(
            EMBED_TOTAL_MAX + 100, "b" * 40, id="the-template-was-shortened-longer-footer"
        ),
        pytest.param(EMBED_TOTAL_MAX + 100, "b", id="the-template-was-shortened-shorter-footer"),
        pytest.param(EMBED_TOTAL_MAX + 10, "b", id="the-template-was-shortened-the-new-one-fits"),
    ],
)
def test_a_footer_near_the_total_limit_is_left_to_a_whole_build(total: int, footer: str) -> None:
    """Where the 6,000 total shortens a text, how much depends on the footer's length: the
    template cannot tell, and says so (the caller builds the message whole)."""
    embed = _embed_of(total)
    assert _unshrunk_total(embed) == total
    template = build_template([embed])
    built = build_message([dict(embed, footer={"text": footer})])
    assert embed_total(built["embeds"]) <= EMBED_TOTAL_MAX
    assert built != template.body
    assert template.with_footer(footer) is None
