"""Discord message safety (its documented limits): escape user text, limit pings, make bodies fit.

A body Discord rejects with a 400 is a lost notification, so every message goes through
:func:`enforce_limits` before it is queued. Discord counts characters after trimming leading and
trailing whitespace; this module trims embed texts first so that ``len`` is exactly what Discord
counts. Everything here is pure: no I/O, inputs are never mutated.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

__all__ = [
    "AUTHOR_NAME_MAX",
    "CONTENT_MAX",
    "DESCRIPTION_MAX",
    "ELLIPSIS",
    "EMBEDS_MAX",
    "EMBED_TOTAL_MAX",
    "FIELDS_MAX",
    "FIELD_NAME_MAX",
    "FIELD_VALUE_MAX",
    "FOOTER_TEXT_MAX",
    "MENTION_IDS_MAX",
    "PLACEHOLDER",
    "MessageTemplate",
    "TITLE_MAX",
    "USERNAME_MAX",
    "avatar_url_problem",
    "build_message",
    "build_template",
    "color_problem",
    "embed_total",
    "enforce_limits",
    "escape_markdown",
    "neutralize_mass_mentions",
    "snowflake_problem",
    "truncate",
    "webhook_username_problem",
]

CONTENT_MAX: Final = 2000
"""Characters of the message ``content``."""
EMBEDS_MAX: Final = 10
"""Embeds per message."""
TITLE_MAX: Final = 256
"""Characters of an embed title."""
DESCRIPTION_MAX: Final = 4096
"""Characters of an embed description."""
FIELDS_MAX: Final = 25
"""Fields per embed."""
FIELD_NAME_MAX: Final = 256
"""Characters of a field name."""
FIELD_VALUE_MAX: Final = 1024
"""Characters of a field value."""
FOOTER_TEXT_MAX: Final = 2048
"""Characters of the footer text."""
AUTHOR_NAME_MAX: Final = 256
"""Characters of the author name."""
EMBED_TOTAL_MAX: Final = 6000
"""Title + description + field names and values + footer text + author name, over all embeds."""
USERNAME_MAX: Final = 80
"""Characters of a webhook ``username`` override."""
MENTION_IDS_MAX: Final = 100
"""Ids in ``allowed_mentions.roles``, and in ``allowed_mentions.users``."""

ELLIPSIS: Final = "…"
"""Marks text cut by :func:`truncate` (one character)."""
PLACEHOLDER: Final = "—"
"""Replaces an empty field name or value, which Discord rejects."""

_MARKDOWN = re.compile(r"([\\*_~`|>\[\]()<#])")
_MASS_MENTION = re.compile(r"@(everyone|here)", re.IGNORECASE)
_ZWSP = "\u200b"
_SNOWFLAKE = re.compile(r"^[0-9]{1,20}$")
_SNOWFLAKE_MAX = 2**63 - 1
"""Discord parses ids as signed 64-bit integers; a larger one is "not snowflake" (50035)."""
_USERNAME_BANNED_WORDS = ("discord", "clyde")
"""Substrings Discord refuses in a webhook username, in any case (PROTOCOLS.md §5.1)."""
_USERNAME_BANNED_MARKS = ("@", "#", ":", "```")
"""Substrings Discord's username rules refuse; webhooks have accepted some of them at times, but
a name that depends on that can start failing any day, so they are refused here."""
_USERNAME_RESERVED = ("everyone", "here", "system message")
"""Whole names Discord reserves (compared case-insensitively after trimming)."""
_COLOR_MAX = 0xFFFFFF


def escape_markdown(text: str) -> str:
    r"""Make user-supplied text (pilot, corp, ship or system names) render literally.

    Backslash-escapes ``\ * _ ~ ` | > [ ] ( )`` and also ``<`` (mention and timestamp syntax) and
    ``#`` (headings). ``@everyone`` and ``@here`` get a zero-width space after the ``@`` so that
    they can never ping, even if the text ends up in ``content``.
    """
    return neutralize_mass_mentions(_MARKDOWN.sub(r"\\\1", text))


def neutralize_mass_mentions(text: str) -> str:
    """Put a zero-width space after the ``@`` of ``@everyone`` and ``@here`` so they never ping."""
    return _MASS_MENTION.sub(lambda m: f"@{_ZWSP}{m.group(1)}", text)


def truncate(text: str, limit: int) -> str:
    """Return ``text`` unchanged if it has at most ``limit`` characters, else cut it with "…".

    The result never has more than ``limit`` characters. A cut never leaves trailing whitespace
    before the ellipsis.
    """
    if limit < 0:
        raise ValueError("limit must be >= 0")
    if len(text) <= limit:
        return text
    if limit == 0:
        return ""
    return text[: limit - 1].rstrip() + ELLIPSIS


def _clean(value: Any, limit: int, *, placeholder: str | None = None) -> str:
    text = ("" if value is None else str(value)).strip()
    if not text and placeholder is not None:
        text = placeholder
    return truncate(text, limit)


class _Slot:
    """One countable text inside a body, with a way to write it back."""

    __slots__ = ("floor", "get", "set")

    def __init__(self, get: Callable[[], str], set_: Callable[[str], None], floor: int) -> None:
        self.get = get
        self.set = set_
        self.floor = floor


def _setter(container: dict[str, Any], key: str) -> Callable[[str], None]:
    def assign(value: str) -> None:
        container[key] = value

    return assign


def _getter(container: dict[str, Any], key: str) -> Callable[[], str]:
    def read() -> str:
        return str(container.get(key) or "")

    return read


def _slots(embeds: list[dict[str, Any]], phase: str) -> Iterator[_Slot]:
    for embed in embeds:
        if phase == "description" and embed.get("description"):
            yield _Slot(_getter(embed, "description"), _setter(embed, "description"), 0)
        elif phase == "value":
            for field in embed.get("fields", []):
                yield _Slot(_getter(field, "value"), _setter(field, "value"), 1)
        elif phase == "rest":
            for field in embed.get("fields", []):
                yield _Slot(_getter(field, "name"), _setter(field, "name"), 1)
            if embed.get("title"):
                yield _Slot(_getter(embed, "title"), _setter(embed, "title"), 1)
            for key in ("footer", "author"):
                part = embed.get(key)
                attr = "text" if key == "footer" else "name"
                if isinstance(part, dict) and part.get(attr):
                    yield _Slot(_getter(part, attr), _setter(part, attr), 1)


def _shrink(slots: list[_Slot], excess: int) -> int:
    """Cut the largest texts first ("water filling") by about ``excess``; return what is left."""
    lengths = [len(slot.get()) for slot in slots]
    if excess <= 0 or not slots:
        return excess

    def reduction(level: int) -> int:
        return sum(
            max(0, length - max(level, slot.floor))
            for length, slot in zip(lengths, slots, strict=True)
        )

    low, high = 0, max(lengths)
    # Largest level whose cuts remove at least ``excess`` characters (0 if even that is not enough).
    while low < high:
        mid = (low + high + 1) // 2
        if reduction(mid) >= excess:
            low = mid
        else:
            high = mid - 1
    level = low
    removed = 0
    for length, slot in zip(lengths, slots, strict=True):
        target = max(level, slot.floor)
        if length > target:
            new = truncate(slot.get(), target)
            slot.set(new)
            removed += length - len(new)
    return excess - removed


def embed_total(embeds: list[dict[str, Any]]) -> int:
    """Characters Discord counts against the 6000 total, over all ``embeds``."""
    total = 0
    for embed in embeds:
        total += len(str(embed.get("title") or "").strip())
        total += len(str(embed.get("description") or "").strip())
        for field in embed.get("fields", []):
            total += len(str(field.get("name") or "").strip())
            total += len(str(field.get("value") or "").strip())
        footer = embed.get("footer")
        if isinstance(footer, dict):
            total += len(str(footer.get("text") or "").strip())
        author = embed.get("author")
        if isinstance(author, dict):
            total += len(str(author.get("name") or "").strip())
    return total


def _enforce_embed(embed: dict[str, Any]) -> dict[str, Any]:
    """Apply the per-embed limits in place (the caller passes its own copy)."""
    for key, limit in (("title", TITLE_MAX), ("description", DESCRIPTION_MAX)):
        if key in embed:
            text = _clean(embed[key], limit)
            if text:
                embed[key] = text
            else:
                del embed[key]
    if "fields" in embed:
        fields = []
        for field in list(embed["fields"])[:FIELDS_MAX]:
            fixed = dict(field)
            fixed["name"] = _clean(field.get("name"), FIELD_NAME_MAX, placeholder=PLACEHOLDER)
            fixed["value"] = _clean(field.get("value"), FIELD_VALUE_MAX, placeholder=PLACEHOLDER)
            fields.append(fixed)
        embed["fields"] = fields
    for key, attr, limit in (
        ("footer", "text", FOOTER_TEXT_MAX),
        ("author", "name", AUTHOR_NAME_MAX),
    ):
        part = embed.get(key)
        if isinstance(part, dict) and attr in part:
            part[attr] = _clean(part[attr], limit, placeholder=PLACEHOLDER)
    return embed


def enforce_limits(body: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of a message body that satisfies every Discord limit.

    Trims and truncates ``content``, ``username`` and each embed text to its own limit, keeps the
    first 10 embeds and 25 fields per embed, and replaces empty field names or values with "—".
    If the embeds together still exceed 6000 characters, descriptions are shortened (largest
    first), then field values, then titles, field names, footers and author names, until the total
    fits. The input is not modified.
    """
    # Bodies are JSON by construction; a JSON round trip copies them ~10x faster than deepcopy.
    return _enforce_owned(orjson.loads(orjson.dumps(body)))


def _own_embed(embed: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``embed`` that :func:`_enforce_embed` may change: the embed and the parts it
    changes in place (footer, author); its fields are rebuilt there, the rest it only reads."""
    copy = dict(embed)
    for key in ("footer", "author"):
        part = copy.get(key)
        if isinstance(part, dict):
            copy[key] = dict(part)
    return copy


def _enforce_owned(result: dict[str, Any]) -> dict[str, Any]:
    """:func:`enforce_limits` on a body the caller owns whole (changed in place, returned)."""
    return _enforce_counted(result)[0]


def _enforce_counted(result: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """:func:`_enforce_owned`, and the room the total limit left its embeds before any text
    was shortened for it (negative: by that much they were over, and shortened)."""
    room = EMBED_TOTAL_MAX
    for key, limit in (("content", CONTENT_MAX), ("username", USERNAME_MAX)):
        if key in result:
            text = truncate(str(result[key] or "").strip(), limit)
            if text:
                result[key] = text
            else:
                del result[key]  # blank content or username is an error, absent is not
    if "embeds" in result:
        embeds = [_enforce_embed(embed) for embed in list(result["embeds"])[:EMBEDS_MAX]]
        excess = embed_total(embeds) - EMBED_TOTAL_MAX
        room = -excess
        for phase in ("description", "value", "rest"):
            if excess <= 0:
                break
            excess = _shrink(list(_slots(embeds, phase)), excess)
        for embed in embeds:
            if embed.get("description") == "":
                del embed["description"]
        result["embeds"] = embeds
    return result, room


def webhook_username_problem(name: str) -> str | None:
    """Why Discord would refuse ``name`` as a webhook ``username``, or None when it accepts it.

    Discord answers 400 (50035) to every message carrying a refused name, so the configuration
    refuses it instead. A blank name is fine: it is never sent (the webhook's own name shows).
    Discord trims the name and counts what is left (1 to 80 characters).
    """
    text = " ".join(name.split())  # Discord collapses and trims whitespace before its checks
    if not text:
        return None
    lowered = text.casefold()
    if len(text) > USERNAME_MAX:
        return (
            f"must be at most {USERNAME_MAX} characters (Discord refuses longer), has {len(text)}"
        )
    for word in _USERNAME_BANNED_WORDS:
        if word in lowered:
            return f"must not contain {word!r} in any case: Discord refuses such webhook names"
    for mark in _USERNAME_BANNED_MARKS:
        if mark in text:
            return f"must not contain {mark!r}: Discord refuses it in usernames"
    if lowered in _USERNAME_RESERVED:
        return f"must not be {text!r}: Discord reserves that name"
    if any(unicodedata.category(c) == "Cc" for c in text):
        return "must not contain control characters (tabs, line breaks)"
    if all(unicodedata.category(c) in ("Cf", "Zs") for c in text):
        return "must contain a visible character (Discord strips zero-width ones)"
    return None


def snowflake_problem(value: str, kind: str = "Discord") -> str | None:
    """Why ``value`` is not an id Discord accepts (ASCII digits, 1 to 2**63-1), or None."""
    if not _SNOWFLAKE.match(value):
        return f"a {kind} id is made of digits 0-9 (Discord's developer mode copies it)"
    if not 0 < int(value) <= _SNOWFLAKE_MAX:
        return f"{value} is not a {kind} id: Discord ids are between 1 and {_SNOWFLAKE_MAX}"
    return None


def avatar_url_problem(url: str) -> str | None:
    """Why Discord would refuse ``url`` as a webhook ``avatar_url`` (http(s) only), or None."""
    if not url.startswith(("https://", "http://")) or len(url) <= len("https://"):
        return "must be an http:// or https:// URL of an image"
    if any(c.isspace() for c in url):
        return "must not contain spaces (percent-encode them as %20)"
    return None


def color_problem(value: int) -> str | None:
    """Why ``value`` is not an embed ``color`` Discord accepts (0 to 0xFFFFFF), or None."""
    if isinstance(value, bool) or not 0 <= value <= _COLOR_MAX:
        return f"must be an RGB colour from 0 to 0xFFFFFF ({_COLOR_MAX}), e.g. 0x3498DB"
    return None


def _snowflakes(ids: Sequence[str], kind: str) -> list[str]:
    cleaned = [str(value).strip() for value in ids]
    for value in cleaned:
        if not _SNOWFLAKE.match(value):
            raise ValueError(f"{kind} id must be a Discord snowflake (digits), got {value!r}")
    return list(dict.fromkeys(cleaned))


def _fitting_mentions(
    prefix: list[str], roles: list[str], users: list[str]
) -> tuple[list[str], list[str]]:
    """The first ``roles`` and ``users`` whose mentions Discord takes after ``prefix``.

    Discord refuses a message listing more than 100 ids in ``allowed_mentions.roles`` or
    ``.users`` (a 400: the notification would be lost), and content is cut at 2,000 characters,
    which would leave a mention half written: it pings nobody and shows as garbage. So the
    mentions that fit are kept whole, in order (roles first: they were configured for this
    message), the rest left out; the text after them is what gets cut.
    """
    roles, users = roles[:MENTION_IDS_MAX], users[:MENTION_IDS_MAX]
    used = len(" ".join(prefix))
    kept: dict[str, list[str]] = {"&": [], "": []}
    for sigil, ids in (("&", roles), ("", users)):
        for snowflake in ids:
            size = len(f"<@{sigil}{snowflake}>") + (1 if used else 0)
            if used + size > CONTENT_MAX:
                return kept["&"], kept[""]
            kept[sigil].append(snowflake)
            used += size
    return kept["&"], kept[""]


def build_message(
    embeds: list[dict[str, Any]],
    *,
    content: str | None = None,
    username: str | None = None,
    role_mentions: Sequence[str] = (),
    mention_here: bool = False,
    user_mentions: Sequence[str] = (),
    mention_everyone: bool = False,
) -> dict[str, Any]:
    """A Discord message body that pings only what is asked for, within every limit.

    ``allowed_mentions`` is ``{"parse": []}`` unless ``role_mentions`` (``<@&id>`` prefixes,
    listed under ``roles``), ``user_mentions`` (``<@id>``, e.g. pilots in voice, under ``users``)
    or ``mention_here`` (content starts with ``@here``; ``parse`` becomes ``["everyone"]``) ask
    for more; ``mention_everyone`` starts it with ``@everyone`` instead (a tracker's ping).
    ``@everyone``/``@here`` inside ``content`` itself are neutralised. Mentions beyond what
    Discord takes (100 ids per ``allowed_mentions`` list, 2,000 characters of content) are left
    out whole, roles before users, see :func:`_fitting_mentions`. Raises ``ValueError`` for a
    mention id that is not a snowflake.
    """
    return build_template(
        embeds,
        content=content,
        username=username,
        role_mentions=role_mentions,
        mention_here=mention_here,
        user_mentions=user_mentions,
        mention_everyone=mention_everyone,
    ).body


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    """A body :func:`build_message` built, and what :meth:`with_footer` needs to build the same
    message with another footer at a fraction of the cost: a kill notifying hundreds of maps
    differs from map to map only in its footer ("Map: <name>").

    Bodies are shared, not copied, below what :meth:`with_footer` replaces: like every built
    body, they are read (serialised, shown), never changed.
    """

    body: dict[str, Any]
    room: int
    """Characters the embeds' 6,000 total left before any text was shortened for it (negative:
    they were over by that much, and shortened)."""

    def with_footer(self, text: str) -> dict[str, Any] | None:
        """The body :func:`build_message` builds from the same arguments with the first embed's
        footer text ``text`` instead; ``None`` when that cannot be told without building it
        whole: the total limit shortened this body's texts, or would shorten the new one's
        (the caller builds it then), or the first embed has no footer text."""
        embeds = self.body.get("embeds")
        if not embeds or self.room < 0:
            return None
        embed = embeds[0]
        footer = embed.get("footer")
        if not isinstance(footer, dict) or "text" not in footer:
            return None
        new = _clean(text, FOOTER_TEXT_MAX, placeholder=PLACEHOLDER)  # as _enforce_embed does
        if len(new) - len(footer["text"]) > self.room:
            return None
        own = dict(embed)
        own["footer"] = {**footer, "text": new}
        body = dict(self.body)
        body["embeds"] = [own, *embeds[1:]]
        return body


def build_template(
    embeds: list[dict[str, Any]],
    *,
    content: str | None = None,
    username: str | None = None,
    role_mentions: Sequence[str] = (),
    mention_here: bool = False,
    user_mentions: Sequence[str] = (),
    mention_everyone: bool = False,
) -> MessageTemplate:
    """What :func:`build_message` builds (its arguments), as a :class:`MessageTemplate`."""
    roles = _snowflakes(role_mentions, "role")
    users = _snowflakes(user_mentions, "user")
    prefix = ["@everyone"] if mention_everyone else ["@here"] if mention_here else []
    mention_here = mention_here or mention_everyone  # both are allowed by parse "everyone"
    roles, users = _fitting_mentions(prefix, roles, users)
    prefix += [f"<@&{role}>" for role in roles] + [f"<@{user}>" for user in users]
    text = (neutralize_mass_mentions(content).strip() if content else "") or None
    allowed: dict[str, Any] = {"parse": ["everyone"] if mention_here else []}
    if roles:
        allowed["roles"] = roles
    if users:
        allowed["users"] = users
    body: dict[str, Any] = {}
    if username and username.strip():
        body["username"] = username.strip()
    mentions = " ".join(prefix)
    if text:  # cut to the room the mentions leave, so that truncation never reaches a mention
        text = truncate(text, max(0, CONTENT_MAX - len(mentions) - (1 if mentions else 0)))
    if mentions or text:
        body["content"] = " ".join(part for part in (mentions, text) if part)
    if embeds:
        # Each embed copied as far as the limits change it (not a JSON round trip of the
        # whole body: a kill is built for every map it notifies).
        body["embeds"] = [_own_embed(embed) for embed in embeds]
    body["allowed_mentions"] = allowed
    return MessageTemplate(*_enforce_counted(body))
